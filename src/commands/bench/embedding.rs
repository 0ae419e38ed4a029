//! `bench --suite embedding`: all-MiniLM-L6-v2 on candle against sentence-transformers.
//!
//! Both sides embed the same texts (about 40 words each, written to a file the reference
//! script reads) at batch 1 and batch 32, after a warm-up, for `--seconds` each. The
//! reference runs when a Python with sentence-transformers is found: `DA_REFERENCE_PYTHON`,
//! else `.venv-reference/bin/python` (made by `scripts/reference-venv`; torch is large, so
//! nothing else installs it). Without it, only our figures are printed, and it says so.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use embedding::minilm::{MiniLm, model_dir};
use serde::Serialize;
use shared::Settings;

use super::{Args, write_json};
use crate::exit::{Failure, Outcome};

/// Distinct texts cycled through.
const TEXTS: usize = 256;
/// Words per text.
const WORDS: usize = 40;

/// The words texts are made of (the reference script's vocabulary).
const VOCAB: &[&str] = &[
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "that",
    "this",
    "it",
    "be",
    "are",
    "was",
    "search",
    "index",
    "query",
    "vector",
    "embedding",
    "model",
    "token",
    "document",
    "passage",
    "rank",
    "score",
    "fast",
    "slow",
    "large",
    "small",
    "new",
    "old",
    "data",
    "system",
    "user",
    "server",
    "client",
    "network",
    "memory",
    "river",
    "mountain",
    "city",
    "garden",
    "coffee",
    "music",
    "paper",
    "window",
    "light",
    "night",
    "morning",
    "build",
    "test",
    "run",
    "write",
    "read",
    "send",
    "store",
    "load",
    "find",
    "compute",
    "measure",
    "compare",
];

/// One row of the report.
#[derive(Debug, Serialize)]
struct Row {
    batch: usize,
    ours_texts_per_s: f64,
    reference_texts_per_s: Option<f64>,
    ratio: Option<f64>,
}

/// What the reference script prints.
#[derive(Debug, serde::Deserialize)]
struct Reference {
    batch_1_texts_per_s: f64,
    batch_32_texts_per_s: f64,
    torch_threads: u64,
}

/// Runs the suite.
pub async fn run(args: &Args) -> Outcome {
    let settings = Settings::from_env().map_err(Failure::usage)?;
    let dir = model_dir(settings.var("DA_MINILM_DIR").map(std::path::Path::new))
        .map_err(Failure::runtime)?;
    let model = MiniLm::load(&dir).map_err(Failure::runtime)?;
    let texts = texts();
    let seconds = args.seconds.max(0.1);
    println!(
        "bench: all-MiniLM-L6-v2 ({}), {TEXTS} texts of {WORDS} words, {seconds:.1}s per batch size",
        dir.display()
    );

    let ours: Vec<(usize, f64)> = [1, 32]
        .into_iter()
        .map(|batch| Ok((batch, throughput(&model, &texts, batch, seconds)?)))
        .collect::<Result<_, Failure>>()?;
    let reference = reference(&texts, seconds).await;
    match &reference {
        Ok(r) => println!(
            "reference: sentence-transformers, torch threads {}",
            r.torch_threads
        ),
        Err(why) => println!("reference: not run ({why})"),
    }
    println!();
    println!(
        "{:>6} {:>12} {:>22} {:>6}",
        "batch", "ours/s", "sentence-transformers/s", "ratio"
    );
    let mut rows = Vec::new();
    for (batch, ours) in ours {
        let theirs = reference.as_ref().ok().map(|r| match batch {
            1 => r.batch_1_texts_per_s,
            _ => r.batch_32_texts_per_s,
        });
        let ratio = theirs.filter(|t| *t > 0.0).map(|t| ours / t);
        println!(
            "{batch:>6} {ours:>12.1} {:>22} {:>6}",
            theirs.map_or("-".to_owned(), |t| format!("{t:.1}")),
            ratio.map_or("-".to_owned(), |r| format!("{r:.2}"))
        );
        rows.push(Row {
            batch,
            ours_texts_per_s: ours,
            reference_texts_per_s: theirs,
            ratio,
        });
    }
    write_json(args.json.as_deref(), &rows)
}

/// Deterministic texts: a small linear congruential generator over [`VOCAB`].
fn texts() -> Vec<String> {
    let mut state: u64 = 42;
    (0..TEXTS)
        .map(|_| {
            let words: Vec<&str> = (0..WORDS)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    VOCAB[(state >> 33) as usize % VOCAB.len()]
                })
                .collect();
            format!("{}.", words.join(" "))
        })
        .collect()
}

/// Texts per second at `batch`, after one warm-up batch.
fn throughput(
    model: &MiniLm,
    texts: &[String],
    batch: usize,
    seconds: f64,
) -> Result<f64, Failure> {
    let take = |i: usize| -> Vec<String> {
        (0..batch)
            .map(|k| texts[(i + k) % texts.len()].clone())
            .collect()
    };
    model.embed(&take(0)).map_err(Failure::runtime)?;
    let (start, mut done) = (Instant::now(), 0usize);
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        model.embed(&take(done)).map_err(Failure::runtime)?;
        done += batch;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

/// Runs the reference script on the same texts, if sentence-transformers is installed.
async fn reference(texts: &[String], seconds: f64) -> Result<Reference, String> {
    let root = platform::nats_server::repo_root();
    let python = std::env::var_os("DA_REFERENCE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-reference/bin/python"));
    if !python.is_file() {
        return Err(format!(
            "{} not found: run ./scripts/reference-venv or set DA_REFERENCE_PYTHON",
            python.display()
        ));
    }
    let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::fs::write(
        file.path(),
        serde_json::to_vec(texts).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let output = tokio::process::Command::new(&python)
        .arg(root.join("services/embedding/reference/bench_reference.py"))
        .args(["--seconds", &seconds.to_string(), "--texts"])
        .arg(file.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .await
        .map_err(|e| format!("running {}: {e}", python.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        return Err(format!("the reference script failed: {last}"));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("reference output: {e}"))
}
