//! `bench --suite rag`: how well the offline default finds and answers, on documentation
//! nobody here wrote.
//!
//! The corpus is the SQL command reference of Debian's PostgreSQL 15 manual (the 189
//! `sql-*.html` pages of `postgresql-doc-15`, or of `--corpus DIR`), ingested through the
//! whole pipeline ([`Pipeline`]) into one collection. Each of the questions in
//! `rag/questions.json`, written from those pages, names the page that answers it and the
//! key phrases an answer should contain. For each question the suite sends `query.search`
//! (top 5) and `query.answer` (top 5) and reports:
//!
//! - hit@1, hit@3 and MRR: where the expected page's first chunk ranks among the hits;
//! - the share of answers containing a key phrase (as a whole word; case-sensitive when the
//!   phrase has capitals, as the manual writes commands), the share citing the page, and the
//!   share doing both;
//! - `query.answer` latency, p50 and p99.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use query::actions::{Answer, Answered, Search};
use serde::{Deserialize, Serialize};
use shared::{Action, Publisher};

use super::ingest::DEFAULT_CORPUS;
use super::pipeline::{Pipeline, bench_tenant, corpus_files};
use super::{Args, write_json};
use crate::commands::ingest::{Candidate, FileStatus};
use crate::exit::{Failure, Outcome};

/// The questions, with their expected page and key phrases.
const QUESTIONS: &str = include_str!("rag/questions.json");
/// The pages ingested: the SQL command reference.
const PAGES: &str = "sql-*.html";
/// Hits and passages per question.
const TOP_K: usize = 5;
/// The collection everything is ingested into.
const COLLECTION: &str = "manual";
/// Per request.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One question of `rag/questions.json`.
#[derive(Debug, Deserialize)]
struct Question {
    question: String,
    /// The file name of the page that answers it.
    document: String,
    key_phrases: Vec<String>,
}

/// How one question went.
#[derive(Debug, Serialize)]
struct Graded {
    question: String,
    document: String,
    /// 1-based rank of the expected page among the hits; none if absent.
    rank: Option<usize>,
    has_key_phrase: bool,
    cites_document: bool,
    answer_ms: f64,
    answer: String,
}

/// The report.
#[derive(Debug, Serialize)]
struct Report {
    corpus: String,
    documents: usize,
    questions: usize,
    hit_at_1: f64,
    hit_at_3: f64,
    mrr: f64,
    key_phrase: f64,
    cites_document: f64,
    /// Both at once: the target's measure.
    key_phrase_and_citation: f64,
    answer_p50_ms: f64,
    answer_p99_ms: f64,
    outcomes: Vec<Graded>,
}

/// Runs the suite.
pub async fn run(args: &Args) -> Outcome {
    let questions: Vec<Question> = serde_json::from_str(QUESTIONS).map_err(Failure::runtime)?;
    let corpus = args
        .corpus
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CORPUS));
    let files = corpus_files(&corpus, &[PAGES], None)?;
    let pipeline = Pipeline::start("da-bench-rag-").await?;
    let outcome = evaluate(args, &corpus, files, &questions, &pipeline).await;
    pipeline.stop().await;
    outcome
}

async fn evaluate(
    args: &Args,
    corpus: &Path,
    files: Vec<Candidate>,
    questions: &[Question],
    pipeline: &Pipeline,
) -> Outcome {
    let publisher = Publisher::new(pipeline.client.clone());
    let tenant = bench_tenant()?;
    let documents = files.len();
    println!(
        "bench: {documents} pages ({PAGES}) of {}, {} questions, top {TOP_K}; offline defaults",
        corpus.display(),
        questions.len()
    );
    let reports = pipeline.ingest(files, COLLECTION).await?.reports;
    let failed = reports
        .iter()
        .filter(|r| r.status == FileStatus::Failed)
        .count();
    if failed > 0 {
        return Err(Failure::runtime(format!("{failed} pages failed to ingest")));
    }

    let mut outcomes = Vec::with_capacity(questions.len());
    for q in questions {
        let search = Search {
            query: Some(q.question.clone()),
            vector: None,
            collections: vec![COLLECTION.to_owned()],
            top_k: TOP_K,
            score_threshold: None,
            filter: None,
            retrieval: None,
        };
        let hits = publisher
            .request(&Action::new(tenant.clone(), search), TIMEOUT)
            .await
            .map_err(|err| Failure::runtime(format!("query.search: {err}")))?
            .hits;
        let mut pages: Vec<String> = Vec::new();
        for hit in &hits {
            let page = file_name(&hit.metadata);
            if !pages.contains(&page) {
                pages.push(page);
            }
        }
        let rank = pages.iter().position(|p| *p == q.document).map(|i| i + 1);

        let ask = Answer {
            query: q.question.clone(),
            collections: vec![COLLECTION.to_owned()],
            top_k: TOP_K,
            score_threshold: None,
            system_prompt: None,
            model: None,
            filter: None,
            retrieval: None,
        };
        let started = Instant::now();
        let answered: Answered = publisher
            .request(&Action::new(tenant.clone(), ask), TIMEOUT)
            .await
            .map_err(|err| Failure::runtime(format!("query.answer: {err}")))?;
        let answer_ms = started.elapsed().as_secs_f64() * 1000.0;
        outcomes.push(Graded {
            question: q.question.clone(),
            document: q.document.clone(),
            rank,
            has_key_phrase: q
                .key_phrases
                .iter()
                .any(|phrase| contains_phrase(&answered.answer, phrase)),
            cites_document: answered
                .citations
                .iter()
                .any(|c| c.file_name.as_deref() == Some(q.document.as_str())),
            answer_ms,
            answer: answered.answer,
        });
    }

    let n = outcomes.len().max(1) as f64;
    let share = |f: &dyn Fn(&Graded) -> bool| outcomes.iter().filter(|o| f(o)).count() as f64 / n;
    let mut latencies: Vec<f64> = outcomes.iter().map(|o| o.answer_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(i).copied().unwrap_or_default()
    };
    let report = Report {
        corpus: corpus.display().to_string(),
        documents,
        questions: outcomes.len(),
        hit_at_1: share(&|o| o.rank == Some(1)),
        hit_at_3: share(&|o| o.rank.is_some_and(|r| r <= 3)),
        mrr: outcomes
            .iter()
            .map(|o| o.rank.map_or(0.0, |r| 1.0 / r as f64))
            .sum::<f64>()
            / n,
        key_phrase: share(&|o| o.has_key_phrase),
        cites_document: share(&|o| o.cites_document),
        key_phrase_and_citation: share(&|o| o.has_key_phrase && o.cites_document),
        answer_p50_ms: percentile(0.50),
        answer_p99_ms: percentile(0.99),
        outcomes,
    };

    println!();
    for o in report
        .outcomes
        .iter()
        .filter(|o| o.rank.is_none_or(|r| r > 1) || !o.has_key_phrase || !o.cites_document)
    {
        println!(
            "miss: {:?} (expected {}, rank {}, key phrase {}, cited {}): {}",
            o.question,
            o.document,
            o.rank.map_or("-".to_owned(), |r| r.to_string()),
            o.has_key_phrase,
            o.cites_document,
            o.answer.chars().take(160).collect::<String>()
        );
    }
    println!();
    println!(
        "hit@1 {:.2}  hit@3 {:.2}  MRR {:.2}  answers with a key phrase {:.2}, citing the page {:.2}, both {:.2}",
        report.hit_at_1,
        report.hit_at_3,
        report.mrr,
        report.key_phrase,
        report.cites_document,
        report.key_phrase_and_citation
    );
    println!(
        "query.answer latency: p50 {:.1} ms, p99 {:.1} ms ({} questions, {} pages)",
        report.answer_p50_ms, report.answer_p99_ms, report.questions, report.documents
    );
    write_json(args.json.as_deref(), &report)
}

/// The page a hit came from: its `file_name`, as ingestion indexes it with every chunk.
fn file_name(metadata: &serde_json::Map<String, serde_json::Value>) -> String {
    metadata
        .get("file_name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Whether `text` contains `phrase` as whole words: case-sensitive when the phrase has
/// capitals (the manual writes commands in capitals), else not.
fn contains_phrase(text: &str, phrase: &str) -> bool {
    let sensitive = phrase.chars().any(char::is_uppercase);
    let (text, phrase) = if sensitive {
        (text.to_owned(), phrase.to_owned())
    } else {
        (text.to_lowercase(), phrase.to_lowercase())
    };
    let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
    text.match_indices(&phrase).any(|(at, _)| {
        boundary(text[..at].chars().next_back())
            && boundary(text[at + phrase.len()..].chars().next())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_phrases_match_whole_words_in_the_manuals_case() {
        assert!(contains_phrase("Use LOCK TABLE to lock it.", "LOCK"));
        assert!(!contains_phrase("a code block", "LOCK"));
        assert!(!contains_phrase("lock the table", "LOCK"));
        assert!(contains_phrase(
            "An Anonymous code block.",
            "anonymous code block"
        ));
        assert!(!contains_phrase("REINDEXING", "REINDEX"));
    }

    #[test]
    fn there_are_forty_questions_or_more_each_naming_a_page_and_a_phrase() {
        let questions: Vec<Question> = serde_json::from_str(QUESTIONS).expect("questions");
        assert!(questions.len() >= 40, "{} questions", questions.len());
        for q in &questions {
            assert!(
                q.document.starts_with("sql-") && q.document.ends_with(".html"),
                "{q:?}"
            );
            assert!(!q.key_phrases.is_empty(), "{q:?}");
        }
    }
}
