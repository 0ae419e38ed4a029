//! `bench --suite embedding`: all-MiniLM-L6-v2 as the embedding service runs it
//! (`DA_MINILM_RUNTIME`, OpenVINO by default) against sentence-transformers.
//!
//! Both sides embed the same texts, written to a file the reference script reads, at batch 1
//! and batch 32, after a warm-up, for `--seconds` each, on two corpora:
//! - `synthetic`: 256 texts of 40 words drawn from a small vocabulary;
//! - `real`: [`REAL_TEXTS`] pieces of 100, 200, 400 and 800 characters, in turn, of the
//!   Markdown files in `--corpus` (default: Debian's Node.js API documentation,
//!   `/usr/share/doc/nodejs/api`).
//!
//! On the real corpus the reference also returns its vectors for every text, and the
//! report gives the lowest cosine between ours and theirs. The reference runs when a Python
//! with sentence-transformers is found: `DA_REFERENCE_PYTHON`, else
//! `.venv-reference/bin/python` (made by `scripts/reference-venv`; torch is large, so
//! nothing else installs it). Without it, only our figures are printed, and it says so.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use embedding::minilm::{MiniLm, Runtime, model_dir};
use serde::Serialize;
use shared::Settings;

use super::{Args, write_json};
use crate::exit::{Failure, Outcome};

/// Distinct synthetic texts cycled through.
const TEXTS: usize = 256;
/// Pieces of the real corpus: the parity check covers every one.
const REAL_TEXTS: usize = 1024;
/// The lengths of the real pieces, in characters, taken in turn.
const PIECE_CHARS: [usize; 4] = [100, 200, 400, 800];
/// Where the real corpus is read from unless `--corpus` says otherwise.
const REAL_CORPUS: &str = "/usr/share/doc/nodejs/api";
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
    corpus: &'static str,
    batch: usize,
    ours_texts_per_s: f64,
    reference_texts_per_s: Option<f64>,
    ratio: Option<f64>,
}

/// The report as JSON.
#[derive(Debug, Serialize)]
struct Report {
    runtime: String,
    rows: Vec<Row>,
    /// The lowest cosine between our vector and the reference's, over the real corpus.
    min_cosine: Option<f32>,
    parity_texts: usize,
}

/// What the reference script prints.
#[derive(Debug, serde::Deserialize)]
struct Reference {
    batch_1_texts_per_s: f64,
    batch_32_texts_per_s: f64,
    torch_threads: u64,
    /// Every text's vector, when asked for.
    #[serde(default)]
    vectors: Option<Vec<Vec<f32>>>,
}

/// Runs the suite.
pub async fn run(args: &Args) -> Outcome {
    let settings = Settings::from_env().map_err(Failure::usage)?;
    let dir = model_dir(settings.var("DA_MINILM_DIR").map(std::path::Path::new))
        .map_err(Failure::runtime)?;
    let runtime = Runtime::from_settings(&settings).map_err(Failure::usage)?;
    let model = MiniLm::load(&dir, &runtime).map_err(Failure::runtime)?;
    let seconds = args.seconds.max(0.1);
    let source = args
        .corpus
        .clone()
        .unwrap_or_else(|| PathBuf::from(REAL_CORPUS));
    let mut corpora = vec![("synthetic", synthetic_texts())];
    match real_texts(&source) {
        Ok(texts) => corpora.push(("real", texts)),
        Err(why) => println!("real corpus: not used ({why}); pass --corpus DIR"),
    }
    println!(
        "bench: all-MiniLM-L6-v2 on {runtime:?} ({}), {seconds:.1}s per batch size",
        dir.display()
    );
    println!(
        "corpora: synthetic = {TEXTS} texts of {WORDS} words; real = {REAL_TEXTS} pieces of {PIECE_CHARS:?} characters of {}",
        source.display()
    );

    let mut rows = Vec::new();
    let mut parity = None;
    let mut torch_threads = None;
    for (corpus, texts) in &corpora {
        let ours: Vec<(usize, f64)> = [1, 32]
            .into_iter()
            .map(|batch| Ok((batch, throughput(&model, texts, batch, seconds)?)))
            .collect::<Result<_, Failure>>()?;
        let with_vectors = *corpus == "real";
        let reference = reference(texts, seconds, with_vectors).await;
        match &reference {
            Ok(r) => torch_threads = Some(r.torch_threads),
            Err(why) => println!("reference on {corpus}: not run ({why})"),
        }
        if let Ok(Reference {
            vectors: Some(theirs),
            ..
        }) = &reference
        {
            parity = Some(min_cosine(&model, texts, theirs)?);
        }
        for (batch, ours) in ours {
            let theirs = reference.as_ref().ok().map(|r| match batch {
                1 => r.batch_1_texts_per_s,
                _ => r.batch_32_texts_per_s,
            });
            rows.push(Row {
                corpus,
                batch,
                ours_texts_per_s: ours,
                reference_texts_per_s: theirs,
                ratio: theirs.filter(|t| *t > 0.0).map(|t| ours / t),
            });
        }
    }

    if let Some(threads) = torch_threads {
        println!("reference: sentence-transformers, torch threads {threads}");
    }
    println!();
    println!(
        "{:>10} {:>6} {:>12} {:>24} {:>6}",
        "corpus", "batch", "ours/s", "sentence-transformers/s", "ratio"
    );
    for row in &rows {
        println!(
            "{:>10} {:>6} {:>12.1} {:>24} {:>6}",
            row.corpus,
            row.batch,
            row.ours_texts_per_s,
            row.reference_texts_per_s
                .map_or("-".to_owned(), |t| format!("{t:.1}")),
            row.ratio.map_or("-".to_owned(), |r| format!("{r:.2}"))
        );
    }
    let parity_texts = if parity.is_some() { REAL_TEXTS } else { 0 };
    if let Some(cosine) = parity {
        println!();
        println!(
            "parity: lowest cosine to sentence-transformers over {parity_texts} real texts: {cosine:.5}"
        );
    }
    write_json(
        args.json.as_deref(),
        &Report {
            runtime: format!("{runtime:?}"),
            rows,
            min_cosine: parity,
            parity_texts,
        },
    )
}

/// Deterministic texts: a small linear congruential generator over [`VOCAB`].
fn synthetic_texts() -> Vec<String> {
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

/// [`REAL_TEXTS`] pieces of the Markdown files in `dir` (by name), whitespace collapsed,
/// each as many whole words as reach [`PIECE_CHARS`] characters, in turn.
fn real_texts(dir: &Path) -> Result<Vec<String>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|err| format!("{}: {err}", dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    files.sort();
    let mut words = files
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
    let mut texts = Vec::with_capacity(REAL_TEXTS);
    while texts.len() < REAL_TEXTS {
        let chars = PIECE_CHARS[texts.len() % PIECE_CHARS.len()];
        let mut piece = String::new();
        for word in words.by_ref() {
            if !piece.is_empty() {
                piece.push(' ');
            }
            piece.push_str(&word);
            if piece.chars().count() >= chars {
                break;
            }
        }
        if piece.is_empty() {
            return Err(format!(
                "{} holds {} pieces of Markdown, fewer than {REAL_TEXTS}",
                dir.display(),
                texts.len()
            ));
        }
        texts.push(piece);
    }
    Ok(texts)
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

/// The lowest cosine between our vector of each text (embedded 32 at a time) and theirs.
fn min_cosine(model: &MiniLm, texts: &[String], theirs: &[Vec<f32>]) -> Result<f32, Failure> {
    if theirs.len() != texts.len() {
        return Err(Failure::runtime(format!(
            "the reference returned {} vectors for {} texts",
            theirs.len(),
            texts.len()
        )));
    }
    let mut lowest = f32::MAX;
    for (batch, reference) in texts.chunks(32).zip(theirs.chunks(32)) {
        let ours = model.embed(batch).map_err(Failure::runtime)?;
        for (a, b) in ours.vectors.iter().zip(reference) {
            let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            lowest = lowest.min(dot / (norm(a) * norm(b)));
        }
    }
    Ok(lowest)
}

/// Runs the reference script on the same texts, if sentence-transformers is installed;
/// `with_vectors` also returns its vector of every text.
async fn reference(
    texts: &[String],
    seconds: f64,
    with_vectors: bool,
) -> Result<Reference, String> {
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
    let mut command = tokio::process::Command::new(&python);
    command
        .arg(root.join("services/embedding/reference/bench_reference.py"))
        .args(["--seconds", &seconds.to_string(), "--texts"])
        .arg(file.path())
        .env("HF_HUB_OFFLINE", "1");
    if with_vectors {
        command.arg("--vectors");
    }
    let output = command
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
