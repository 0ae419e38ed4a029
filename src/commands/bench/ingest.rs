//! `bench --suite ingest`: documents through the whole pipeline (extract, chunk, embed,
//! index) on one machine, as `domain-actions ingest` sends them.
//!
//! A fresh nats-server with the built-in streams, the embedding, query and ingestion
//! services in-process (their data in a temporary `DA_DATA_DIR`), and the first `--docs`
//! files (by name) of `--corpus` submitted through `submit_file`, [`IN_FLIGHT`] at a
//! time, each followed until its task is final. The default corpus is Debian's PostgreSQL
//! 15 HTML manual (`apt-get install postgresql-doc-15`): real, varied HTML of every size.
//!
//! The report: documents/s and chunks/s over the wall time, total chunks, failures, and
//! where the time goes: each stage's time (as the workers measured it) summed over the
//! tasks, as a share of the four stages' sum. The mean document latency (read to final
//! state, as the client saw it) is printed too: stages overlap across documents.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::pipeline::{Ingested, Pipeline, corpus_files};
use super::{Args, write_json};
use crate::commands::ingest::{self, FileReport, FileStatus, IN_FLIGHT, Totals};
use crate::exit::{Failure, Outcome};

/// Debian's PostgreSQL manual: about 1,170 HTML pages, installed by `postgresql-doc-15`.
pub(super) const DEFAULT_CORPUS: &str = "/usr/share/doc/postgresql-doc-15/html";

/// Only documents count: a manual's directory also holds stylesheets and images, which the
/// text reader would accept (CSS is UTF-8) or skip, and neither says anything about speed.
const DOCUMENT_GLOBS: &[&str] = &[
    "*.html",
    "*.htm",
    "*.md",
    "*.markdown",
    "*.txt",
    "*.pdf",
    "*.docx",
];

/// One stage's share of the time.
#[derive(Debug, Serialize)]
struct Stage {
    stage: &'static str,
    ms: u64,
    share: f64,
}

/// Per-document latency, from reading the file to its task's final state.
#[derive(Debug, Serialize)]
struct Latency {
    mean_s: f64,
    max_s: f64,
}

impl Latency {
    fn of(reports: &[FileReport]) -> Self {
        let done: Vec<f64> = reports
            .iter()
            .filter(|r| r.status == FileStatus::Completed)
            .map(|r| r.seconds)
            .collect();
        let mean_s = if done.is_empty() {
            0.0
        } else {
            done.iter().sum::<f64>() / done.len() as f64
        };
        Self {
            mean_s,
            max_s: done.iter().copied().fold(0.0, f64::max),
        }
    }
}

/// What `--json` writes.
#[derive(Debug, Serialize)]
struct Report {
    corpus: String,
    in_flight: usize,
    totals: Totals,
    latency: Latency,
    stages: Vec<Stage>,
    failures: Vec<FileReport>,
}

/// Runs the suite.
pub async fn run(args: &Args) -> Outcome {
    let corpus = args
        .corpus
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CORPUS));
    let files = corpus_files(&corpus, DOCUMENT_GLOBS, Some(args.docs))?;
    let pipeline = Pipeline::start("da-bench-ingest-").await?;
    let outcome = ingest_corpus(args, &corpus, files, &pipeline).await;
    pipeline.stop().await;
    outcome
}

/// Submits and follows every file, then prints and writes the report.
async fn ingest_corpus(
    args: &Args,
    corpus: &Path,
    files: Vec<ingest::Candidate>,
    pipeline: &Pipeline,
) -> Outcome {
    println!(
        "bench: {} documents of {}, {IN_FLIGHT} in flight; fresh nats-server, embedding + query + ingestion in-process",
        files.len(),
        corpus.display()
    );
    let Ingested { reports, elapsed } = pipeline.ingest(files, "bench").await?;
    let totals = Totals::of(&reports, elapsed);

    let stages = stages(&reports);
    println!();
    println!("{:<34} {:>10} {:>7}", "stage", "ms", "share");
    for stage in &stages {
        println!(
            "{:<34} {:>10} {:>6.1}%",
            stage.stage,
            stage.ms,
            stage.share * 100.0
        );
    }
    println!();
    let latency = Latency::of(&reports);
    println!("{}", totals.line());
    println!(
        "latency per document: mean {:.1}s, max {:.1}s",
        latency.mean_s, latency.max_s
    );
    let failures: Vec<FileReport> = reports
        .into_iter()
        .filter(|r| r.status == FileStatus::Failed)
        .collect();
    for failure in &failures {
        println!(
            "failed: {}: {}",
            failure.file,
            failure.error.as_deref().unwrap_or_default()
        );
    }
    let failed = failures.len();
    write_json(
        args.json.as_deref(),
        &Report {
            corpus: corpus.display().to_string(),
            in_flight: IN_FLIGHT,
            totals,
            latency,
            stages,
            failures,
        },
    )?;
    if failed > 0 {
        return Err(Failure::runtime(format!(
            "{failed} documents failed (listed above)"
        )));
    }
    Ok(())
}

/// Each stage's time summed over the completed tasks, and its share of the four stages'
/// sum. The workers measure the stages: `embed` is the embedding handler's time per batch,
/// which includes waiting for the model (one batch at a time), so with many batches in
/// flight it is mostly queueing and the sum can exceed the run's wall time.
fn stages(reports: &[FileReport]) -> Vec<Stage> {
    let done: Vec<&FileReport> = reports
        .iter()
        .filter(|r| r.status == FileStatus::Completed)
        .collect();
    let sum = |stage: fn(&FileReport) -> u64| done.iter().map(|r| stage(r)).sum::<u64>();
    let measured = [
        ("extract", sum(|r| r.timings.extract_ms)),
        ("chunk", sum(|r| r.timings.chunk_ms)),
        (
            "embed (incl. waiting for the model)",
            sum(|r| r.timings.embed_ms),
        ),
        ("index", sum(|r| r.timings.index_ms)),
    ];
    let total: u64 = measured.iter().map(|(_, ms)| ms).sum();
    let share = |ms: u64| {
        if total > 0 {
            ms as f64 / total as f64
        } else {
            0.0
        }
    };
    measured
        .into_iter()
        .chain([("total", total)])
        .map(|(stage, ms)| Stage {
            stage,
            ms,
            share: share(ms),
        })
        .collect()
}
