//! The offline answerer: no model, no network, the same answer every time.
//!
//! It scores every sentence of the retrieved passages by how many of the question's words
//! (lower-cased, without stop words, compared by their Snowball English stems, so `refund`
//! meets `Refunds`) it contains, weighted by the passage's search score,
//! and quotes the best few, each followed by the `[n]` of its passage. It never invents
//! anything: every word of an answer comes from a cited passage. When no sentence mentions
//! any of the question's words, it says so instead of quoting unrelated text.

use std::collections::HashSet;
use std::sync::LazyLock;

use async_trait::async_trait;
use query_contract::{Answered, Usage};
use rust_stemmers::{Algorithm, Stemmer};
use shared::ActionError;
use unicode_segmentation::UnicodeSegmentation;

use crate::{Answerer, Question, citation};

/// The name results report as their model.
pub const MODEL: &str = "extractive";

/// The answer when the search found nothing (every offline answerer says the same).
pub const NO_PASSAGES: &str = "No indexed passage matches the question.";

/// Sentences quoted at most.
const MAX_SENTENCES: usize = 3;

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractiveAnswerer;

#[async_trait]
impl Answerer for ExtractiveAnswerer {
    async fn answer(&self, question: Question<'_>) -> Result<Answered, ActionError> {
        Ok(answer(question.query, question.passages))
    }
}

/// The extractive answer to `query` from `passages` (best first).
pub fn answer(query: &str, passages: &[crate::ScoredChunk]) -> Answered {
    // The question's words in order, once each, for the "not found" answer.
    let mut asked: Vec<String> = Vec::new();
    for word in words(query).filter(|w| !is_stop_word(w)) {
        if !asked.contains(&word) {
            asked.push(word);
        }
    }
    let terms: HashSet<String> = asked.iter().map(|w| stem(w)).collect();
    // (score, passage position, sentence position, sentence)
    let mut candidates: Vec<(f32, usize, usize, &str)> = Vec::new();
    // Scores relative to the best passage's, so a cosine and a fused rank score (a few
    // hundredths) weigh passages alike.
    let best = passages
        .iter()
        .map(|p| p.score)
        .fold(f32::MIN, f32::max)
        .max(f32::EPSILON);
    for (p, passage) in passages.iter().enumerate() {
        let weight = 1.0 + (passage.score / best).max(0.0);
        for (s, sentence) in sentences(&passage.chunk.text).enumerate() {
            let matched = words(sentence)
                .map(|w| stem(&w))
                .filter(|w| terms.contains(w))
                .collect::<HashSet<_>>()
                .len();
            if matched > 0 {
                candidates.push((matched as f32 * weight, p, s, sentence));
            }
        }
    }
    // Best first; ties keep passage and sentence order, so the answer is deterministic.
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    candidates.truncate(MAX_SENTENCES);
    // Quote in reading order: by passage rank, then by position in the passage.
    candidates.sort_by(|a, b| a.1.cmp(&b.1).then(a.2.cmp(&b.2)));

    let mut cited: Vec<usize> = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    for (_, p, _, sentence) in &candidates {
        let number = match cited.iter().position(|c| c == p) {
            Some(i) => i + 1,
            None => {
                cited.push(*p);
                cited.len()
            }
        };
        parts.push(format!("{} [{number}]", sentence.trim()));
    }
    let answer = if passages.is_empty() {
        NO_PASSAGES.to_owned()
    } else if parts.is_empty() {
        not_found(&asked)
    } else {
        parts.join(" ")
    };
    Answered {
        answer,
        citations: cited
            .iter()
            .enumerate()
            .map(|(i, &p)| citation(i + 1, &passages[p]))
            .collect(),
        usage: Usage::default(),
        model: MODEL.to_owned(),
    }
}

/// The answer when passages were found but none of their sentences mentions the question's
/// words: said plainly, naming the words looked for.
fn not_found(asked: &[String]) -> String {
    if asked.is_empty() {
        return "The indexed documents do not seem to answer this question.".to_owned();
    }
    let quoted: Vec<String> = asked
        .iter()
        .map(|w| format!("\u{201c}{w}\u{201d}"))
        .collect();
    format!(
        "The indexed documents do not seem to answer this question: no passage found mentions {}.",
        quoted.join(", ")
    )
}

/// The English stem of a lower-cased word: what question and passage words are compared by.
fn stem(word: &str) -> String {
    static ENGLISH: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));
    ENGLISH.stem(word).into_owned()
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The sentences of `text`, by the Unicode sentence boundaries (UAX #29) within each line: a
/// dot inside `console.time`, `Node.js`, `ASN.1` or `v1.2.3`, or before a lower-case word
/// (`e.g. this`), ends no sentence, where splitting at every dot cut such names in two.
/// A line break always ends one (headings, list items and table rows are lines).
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .flat_map(UnicodeSegmentation::split_sentence_bounds)
        .map(str::trim)
        .filter(|s| s.chars().any(char::is_alphanumeric))
}

fn is_stop_word(word: &str) -> bool {
    const STOP: &[&str] = &[
        "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
        "i", "in", "is", "it", "of", "on", "or", "that", "the", "this", "to", "was", "what",
        "when", "where", "which", "who", "why", "with", "you",
    ];
    STOP.contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::passage;

    #[test]
    fn quotes_matching_sentences_and_cites_them() {
        let passages = [
            passage("cats", "Cats sleep a lot. They purr when happy.", 0.9),
            passage(
                "dogs",
                "Dogs bark. Dogs also sleep, but less than cats.",
                0.5,
            ),
        ];
        let out = answer("How much do cats sleep?", &passages);
        assert_eq!(
            out.answer,
            "Cats sleep a lot. [1] Dogs also sleep, but less than cats. [2]"
        );
        assert_eq!(out.citations.len(), 2);
        assert_eq!(out.citations[0].document_id, "cats");
        assert_eq!(out.citations[1].number, 2);
        assert_eq!(out.model, MODEL);
        // Deterministic.
        assert_eq!(out, answer("How much do cats sleep?", &passages));
    }

    #[test]
    fn names_with_dots_stay_whole() {
        let text = "Use console.time() to start a timer. Node.js 20 ships it.\n\
                    ASN.1 comments begin with --, e.g. this one. Version 4.19.1 fixed it!\n\
                    Heading without a dot";
        assert_eq!(
            sentences(text).collect::<Vec<_>>(),
            [
                "Use console.time() to start a timer.",
                "Node.js 20 ships it.",
                "ASN.1 comments begin with --, e.g. this one.",
                "Version 4.19.1 fixed it!",
                "Heading without a dot",
            ]
        );
        let out = answer("How do ASN comments work?", &[passage("asn", text, 0.8)]);
        assert_eq!(
            out.answer,
            "ASN.1 comments begin with --, e.g. this one. [1]"
        );
    }

    #[test]
    fn words_meet_by_their_stems() {
        let passages = [passage(
            "refunds",
            "Refunds are accepted within 30 days of purchase.",
            0.5,
        )];
        let out = answer("How long do I have to ask for a refund?", &passages);
        assert_eq!(
            out.answer,
            "Refunds are accepted within 30 days of purchase. [1]"
        );
    }

    #[test]
    fn no_passages_no_citations() {
        let out = answer("anything?", &[]);
        assert!(out.citations.is_empty());
        assert_eq!(out.answer, "No indexed passage matches the question.");
        // Passages found, none about the question: said plainly, nothing quoted or cited.
        let out = answer(
            "Where do zebras graze?",
            &[passage("d", "Nothing related here. More.", 0.1)],
        );
        assert_eq!(
            out.answer,
            "The indexed documents do not seem to answer this question: no passage found \
             mentions \u{201c}zebras\u{201d}, \u{201c}graze\u{201d}."
        );
        assert!(out.citations.is_empty());
    }
}
