//! `domain-actions bench`: our path against a hand-written async-nats baseline, same steps,
//! same server, same run, with the ratio printed.
//!
//! `--suite` picks what is measured: `framework` (the default, below), `embedding` (the
//! local model against sentence-transformers, see [`embedding`]), `search` (the embedded
//! vector store at 10k and 100k chunks, see [`search`]), `ingest` (documents through the
//! whole ingestion pipeline, see [`ingest`]), `fairness` (see [`fairness`]) or `rag` (how well
//! the offline default finds and answers, see [`rag`]).
//!
//! | scenario | our steps | baseline steps |
//! |---|---|---|
//! | durable, inbox | `Publisher::enqueue` (JetStream, ack awaited) → `Worker` + echo dispatcher → result on an inbox | `publish_with_headers` + ack → pull consumer, `for_each_concurrent(64)` → core publish → ack |
//! | durable, callbacks stream | same, result stored in `echo.bench.callbacks` (JetStream, ack awaited before the request's ack) | same with a JetStream result publish, ack awaited |
//! | rpc | `Publisher::request` (typed result) → the worker's rpc endpoint (queue subscription, micro discovery) + echo dispatcher | `request_with_headers` → queue subscription, `for_each_concurrent(64)` → publish to reply |
//! | rpc against the limit | the same | the wire's limit: `request` → queue subscription answering every request with the same bytes, nothing parsed on either side |
//!
//! Every scenario is a closed loop: N lanes each send one action and wait for its result
//! before sending the next, so "in flight" is exactly N. Both sides parse the action and
//! build a result action of the same shape. Unless `--external`, a fresh nats-server is
//! started with the shipped `nats/server.conf` on a temporary store.

mod baseline;
mod embedding;
mod fairness;
mod harness;
mod ingest;
mod ours;
mod pipeline;
mod rag;
mod search;

use std::path::PathBuf;
use std::time::Duration;

use platform::nats_server::{LocalServer, ServerOptions};
use serde::Serialize;

use crate::exit::{Failure, Outcome, connect};
use harness::Measured;

/// The tenant every framework scenario sends as, on both sides.
const TENANT: &str = "bench";

/// Flags of `bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Seconds to measure each side of each scenario (after a warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Warm-up seconds before each measurement (spread over the rounds).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Rounds per scenario: the sides take turns, each measuring `seconds / rounds` per
    /// round, so a machine that speeds up or slows down during the run weighs on both alike.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Use the server at NATS_URL instead of starting a fresh one.
    #[arg(long)]
    pub external: bool,
    /// Run only scenarios whose name contains this text (e.g. rpc).
    #[arg(long)]
    pub only: Option<String>,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Suite::Framework)]
    pub suite: Suite,
    /// `--suite ingest` and `rag`: the directory of documents (default: Debian's PostgreSQL 15
    /// manual, /usr/share/doc/postgresql-doc-15/html); `embedding`: of Markdown for the real
    /// texts (default: /usr/share/doc/nodejs/api).
    #[arg(long, value_name = "DIR")]
    pub corpus: Option<PathBuf>,
    /// `--suite ingest`: how many documents of the corpus to ingest (the first by name).
    #[arg(long, default_value_t = 100)]
    pub docs: usize,
    /// `--suite fairness`: how many actions the noisy tenant queues at once.
    #[arg(long, default_value_t = 20_000)]
    pub backlog: usize,
}

/// The benchmark suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// Actions through the framework against raw async-nats.
    Framework,
    /// all-MiniLM-L6-v2 texts/s against sentence-transformers on the same CPU.
    Embedding,
    /// Qdrant Edge search latency at 10k and 100k chunks, and index throughput.
    Search,
    /// Documents through extract, chunk, embed and index: documents/s, chunks/s, stage shares.
    Ingest,
    /// A quiet tenant's round trips while a noisy tenant's backlog drains.
    Fairness,
    /// Retrieval and answers on the PostgreSQL manual's SQL reference: hit@1, hit@3, MRR,
    /// answers with a key phrase and citing the right page, answer latency.
    Rag,
}

/// One scenario's path and concurrency.
#[derive(Debug, Clone, Copy)]
pub enum Path {
    /// JetStream action, result to a core inbox.
    DurableInbox,
    /// JetStream action, result stored in a `…callbacks` stream subject.
    DurableCallbacks,
    /// Core request/reply.
    Rpc,
    /// Core request/reply against the wire's limit: ours is [`Path::Rpc`]; the other side
    /// answers every request with the same bytes and the caller reads nothing, so no
    /// framework could be faster on this server.
    RpcLimit,
}

struct Scenario {
    name: &'static str,
    path: Path,
    in_flight: usize,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "durable round trip, inbox result, 1 in flight",
        path: Path::DurableInbox,
        in_flight: 1,
    },
    Scenario {
        name: "durable round trip, inbox result, 64 in flight",
        path: Path::DurableInbox,
        in_flight: 64,
    },
    Scenario {
        name: "durable round trip, result stored in callbacks stream, 64 in flight",
        path: Path::DurableCallbacks,
        in_flight: 64,
    },
    Scenario {
        name: "rpc, 1 in flight",
        path: Path::Rpc,
        in_flight: 1,
    },
    Scenario {
        name: "rpc, 64 in flight",
        path: Path::Rpc,
        in_flight: 64,
    },
    Scenario {
        name: "rpc against the limit (static-reply request/reply), 64 in flight",
        path: Path::RpcLimit,
        in_flight: 64,
    },
];

/// One row of the report (`--json` writes a list of these).
#[derive(Debug, Serialize)]
pub struct Row {
    scenario: String,
    ours_per_s: f64,
    baseline_per_s: f64,
    ratio: f64,
    p50_us: u64,
    p99_us: u64,
    baseline_p50_us: u64,
    baseline_p99_us: u64,
}

/// Timing of one side.
pub struct Timing {
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Measurement window.
    pub measure: Duration,
}

/// Runs the chosen suite and prints its table.
pub async fn run(url: &str, args: Args) -> Outcome {
    match args.suite {
        Suite::Framework => framework(url, args).await,
        Suite::Embedding => embedding::run(&args).await,
        Suite::Search => search::run(&args).await,
        Suite::Ingest => ingest::run(&args).await,
        Suite::Rag => rag::run(&args).await,
        Suite::Fairness => fairness::run(url, &args).await,
    }
}

/// Writes `rows` as JSON to `--json`, if given.
fn write_json<T: Serialize>(path: Option<&std::path::Path>, rows: &T) -> Outcome {
    if let Some(path) = path {
        let json = serde_json::to_string_pretty(rows).map_err(Failure::runtime)?;
        std::fs::write(path, json)
            .map_err(|e| Failure::runtime(format!("writing {}: {e}", path.display())))?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}

/// Runs every framework scenario and prints the table.
async fn framework(url: &str, args: Args) -> Outcome {
    let rounds = f64::from(args.rounds);
    let timing = Timing {
        warmup: Duration::from_secs_f64((args.warmup / rounds).max(0.0)),
        measure: Duration::from_secs_f64((args.seconds / rounds).max(0.1)),
    };
    let server = BenchServer::start(url, args.external).await?;
    let url = server.url.clone();
    println!(
        "bench: {url} ({}), {:.1}s per side after {:.1}s warm-up, in {} alternating rounds",
        if args.external {
            "external server"
        } else {
            "fresh nats-server 2.15.1, nats/server.conf"
        },
        args.seconds,
        args.warmup,
        args.rounds
    );
    println!();
    println!(
        "{:<70} {:>10} {:>10} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "scenario", "ours/s", "base/s", "ratio", "p50 us", "base p50", "p99 us", "base p99"
    );

    let mut rows = Vec::new();
    for scenario in SCENARIOS {
        if args
            .only
            .as_deref()
            .is_some_and(|only| !scenario.name.contains(only))
        {
            continue;
        }
        // The sides take turns, baseline first, each on fresh connections; the server is shared.
        let (mut baseline, mut ours) = (None::<Measured>, None::<Measured>);
        for _ in 0..args.rounds {
            let round = measure(Side::Baseline, &url, scenario, &timing).await?;
            baseline = Some(Measured::merged(baseline, round).map_err(Failure::runtime)?);
            let round = measure(Side::Ours, &url, scenario, &timing).await?;
            ours = Some(Measured::merged(ours, round).map_err(Failure::runtime)?);
        }
        let (Some(baseline), Some(ours)) = (baseline, ours) else {
            return Err(Failure::runtime("no round was measured"));
        };
        let row = row(scenario.name, &ours, &baseline);
        println!(
            "{:<70} {:>10.0} {:>10.0} {:>6.2} {:>9} {:>9} {:>9} {:>9}",
            row.scenario,
            row.ours_per_s,
            row.baseline_per_s,
            row.ratio,
            row.p50_us,
            row.baseline_p50_us,
            row.p99_us,
            row.baseline_p99_us
        );
        rows.push(row);
    }
    write_json(args.json.as_deref(), &rows)?;
    server.stop().await;
    Ok(())
}

/// The server a suite measures against: a fresh nats-server with `nats/server.conf` and a
/// temp store, or, with `--external`, the one at NATS_URL.
pub struct BenchServer {
    /// Where to connect.
    pub url: String,
    local: Option<LocalServer>,
    _store: tempfile::TempDir,
}

impl BenchServer {
    /// Starts a fresh server, unless `external` (then `url` is used as it is).
    pub async fn start(url: &str, external: bool) -> Result<Self, Failure> {
        let store = tempfile::Builder::new()
            .prefix("da-bench-")
            .tempdir()
            .map_err(Failure::runtime)?;
        let local = if external {
            None
        } else {
            let options = ServerOptions::single_node(store.path(), None);
            Some(
                LocalServer::start(options)
                    .await
                    .map_err(Failure::runtime)?,
            )
        };
        let url = local
            .as_ref()
            .map_or(url.to_owned(), |s| s.url().to_owned());
        Ok(Self {
            url,
            local,
            _store: store,
        })
    }

    /// Stops the fresh server, if one was started.
    pub async fn stop(self) {
        if let Some(local) = self.local {
            local.stop().await;
        }
    }
}

/// Which implementation runs a scenario.
#[derive(Debug, Clone, Copy)]
enum Side {
    Baseline,
    Ours,
}

/// Runs one side of a scenario on two fresh connections (caller, worker).
async fn measure(
    side: Side,
    url: &str,
    scenario: &Scenario,
    timing: &Timing,
) -> Result<Measured, Failure> {
    let (caller, worker) = (connect(url).await?, connect(url).await?);
    let (path, in_flight) = (scenario.path, scenario.in_flight);
    let measured = match side {
        Side::Baseline => baseline::run(&caller, &worker, path, in_flight, timing).await,
        Side::Ours => ours::run(&caller, &worker, path, in_flight, timing).await,
    };
    let measured =
        measured.map_err(|e| Failure::runtime(format!("{} ({side:?}): {e}", scenario.name)))?;
    forget_stored_results(&caller).await?;
    Ok(measured)
}

/// Purges the results either side stored on callbacks subjects, between rounds. Nothing
/// consumes them (the bench hears them on a plain subscription), so without this they
/// would pile up to the per-subject limit and the publishes of later rounds be refused.
async fn forget_stored_results(client: &async_nats::Client) -> Result<(), Failure> {
    let js = async_nats::jetstream::new(client.clone());
    for (stream, subject) in [
        ("ECHO", format!("echo.{TENANT}.callbacks")),
        ("BENCH", format!("bench.{TENANT}.callbacks")),
    ] {
        if let Ok(stream) = js.get_stream(stream).await {
            stream
                .purge()
                .filter(subject.as_str())
                .await
                .map_err(|e| Failure::runtime(format!("purging {subject}: {e}")))?;
        }
    }
    Ok(())
}

fn row(name: &str, ours: &Measured, baseline: &Measured) -> Row {
    let ratio = if baseline.per_second() > 0.0 {
        ours.per_second() / baseline.per_second()
    } else {
        0.0
    };
    Row {
        scenario: name.to_owned(),
        ours_per_s: ours.per_second(),
        baseline_per_s: baseline.per_second(),
        ratio,
        p50_us: ours.percentile(50.0),
        p99_us: ours.percentile(99.0),
        baseline_p50_us: baseline.percentile(50.0),
        baseline_p99_us: baseline.percentile(99.0),
    }
}
