//! `bench --suite fairness`: does one tenant's backlog delay another's actions?
//!
//! One echo worker with the default 64 handler slots on a fresh server. Tenant `noisy`
//! queues `--backlog` `echo.sleep {"ms":20}` actions at once; tenant `quiet` sends one
//! `echo.sleep {"ms":20}` every 100 ms and waits for each result. Measured, in this order:
//! 1. noisy alone: how fast its backlog drains (actions/s);
//! 2. quiet alone: its round trips, p50 and p99 (after its first, which also waits for the
//!    worker to start its lane);
//! 3. both: quiet's round trips while noisy's backlog drains, and noisy's rate meanwhile.
//!
//! The targets (issue 14): quiet's p99 during the flood within 3x its p99 alone, and
//! noisy's rate with quiet beside it at least 0.9 of its rate alone. Each side is the
//! framework: the comparison is the same service with and without the other tenant.

use std::time::{Duration, Instant};

use async_nats::Client;
use echo::actions::Sleep;
use futures::{StreamExt, stream};
use hdrhistogram::Histogram;
use shared::{Action, CallbackSubject, Domain, Publisher, TenantId, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

use super::{Args, BenchServer};
use crate::exit::{Failure, Outcome, connect};

/// How long each of noisy's and quiet's actions sleeps in the handler.
const HANDLER_MS: u64 = 20;
/// How often quiet sends.
const QUIET_EVERY: Duration = Duration::from_millis(100);
/// The longest one round trip may take before the run gives up.
const ROUND_TRIP_LIMIT: Duration = Duration::from_secs(60);

/// Runs the fairness scenario and prints its figures.
pub async fn run(url: &str, args: &Args) -> Outcome {
    let server = BenchServer::start(url, args.external).await?;
    let url = server.url.clone();
    let worker_client = connect(&url).await?;
    let client = connect(&url).await?;
    let shutdown = CancellationToken::new();
    let worker = Worker::new(worker_client, echo::dispatcher()).config(WorkerConfig::default());
    let stop = shutdown.clone();
    let running = tokio::spawn(async move { worker.run(stop).await });
    let echo = Domain::new("echo").map_err(Failure::runtime)?;
    if !shared::worker::wait_until_serving(&client, &echo, Duration::from_secs(10)).await {
        return Err(Failure::runtime("the echo worker did not start within 10s"));
    }
    let backlog = args.backlog;
    println!(
        "bench fairness: {url}, one echo worker with 64 slots; noisy queues {backlog} actions of \
         {HANDLER_MS} ms, quiet sends one every {} ms",
        QUIET_EVERY.as_millis()
    );

    let noisy = TenantId::new("noisy").map_err(Failure::runtime)?;
    let quiet = TenantId::new("quiet").map_err(Failure::runtime)?;
    let alone = drain(&client, &noisy, backlog).await?;
    println!(
        "noisy alone: {backlog} actions in {alone:.2?} ({:.0}/s)",
        rate(backlog, alone)
    );

    // Quiet's first action also waits for the worker to find the tenant and start its
    // lane (up to `DISCOVER_EVERY`): shown apart, not counted as a steady round trip.
    let first = round_trips(&client, &quiet, Some(1), None).await?;
    let samples = (args.seconds / QUIET_EVERY.as_secs_f64()).ceil().max(10.0) as usize;
    let unloaded = round_trips(&client, &quiet, Some(samples), None).await?;

    let flood_done = CancellationToken::new();
    let noisy_run = {
        let (client, noisy, done) = (client.clone(), noisy.clone(), flood_done.clone());
        tokio::spawn(async move {
            let took = drain(&client, &noisy, backlog).await;
            done.cancel();
            took
        })
    };
    let loaded = round_trips(&client, &quiet, None, Some(flood_done.clone())).await?;
    let beside = noisy_run.await.map_err(Failure::runtime)??;

    let (p50, p99) = (percentile(&unloaded, 50.0), percentile(&unloaded, 99.0));
    let (f50, f99) = (percentile(&loaded, 50.0), percentile(&loaded, 99.0));
    println!();
    println!(
        "{:<44} {:>9} {:>9} {:>9}",
        "quiet round trip", "samples", "p50 ms", "p99 ms"
    );
    println!(
        "{:<44} {:>9} {:>9.1} {:>9}",
        "first action (the worker starts its lane)",
        first.len(),
        percentile(&first, 50.0),
        "-"
    );
    println!(
        "{:<44} {:>9} {:>9.1} {:>9.1}",
        "alone",
        unloaded.len(),
        p50,
        p99
    );
    println!(
        "{:<44} {:>9} {:>9.1} {:>9.1}",
        "during noisy's backlog",
        loaded.len(),
        f50,
        f99
    );
    println!();
    println!(
        "quiet p99 during the flood / alone: {:.2} (target <= 3)",
        f99 / p99.max(f64::EPSILON)
    );
    println!(
        "noisy: {:.0}/s alone, {:.0}/s beside quiet: {:.2} of alone (target >= 0.9)",
        rate(backlog, alone),
        rate(backlog, beside),
        alone.as_secs_f64() / beside.as_secs_f64().max(f64::EPSILON)
    );

    shutdown.cancel();
    let _ = running.await;
    server.stop().await;
    Ok(())
}

/// Queues `n` actions of `tenant` at once (results to one inbox) and waits until every
/// result is back; returns the time from the first publish to the last result.
async fn drain(client: &Client, tenant: &TenantId, n: usize) -> Result<Duration, Failure> {
    let publisher = Publisher::new(client.clone());
    let inbox = CallbackSubject::inbox(client.new_inbox()).map_err(Failure::runtime)?;
    let mut results = client
        .subscribe(inbox.as_str().to_owned())
        .await
        .map_err(Failure::runtime)?;
    let started = Instant::now();
    let sending = {
        let (publisher, tenant, inbox) = (publisher.clone(), tenant.clone(), inbox.clone());
        tokio::spawn(async move {
            stream::iter(0..n)
                .map(|_| {
                    let action =
                        Action::new(tenant.clone(), Sleep { ms: HANDLER_MS }).with_callback(&inbox);
                    let publisher = publisher.clone();
                    async move { publisher.enqueue(&action).await.map(|_| ()) }
                })
                .buffer_unordered(256)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<()>, _>>()
        })
    };
    for received in 0..n {
        tokio::time::timeout(ROUND_TRIP_LIMIT, results.next())
            .await
            .map_err(|_| Failure::runtime(format!("{tenant}: {received} of {n} results")))?;
    }
    sending
        .await
        .map_err(Failure::runtime)?
        .map_err(Failure::runtime)?;
    Ok(started.elapsed())
}

/// Quiet's round trips, one every [`QUIET_EVERY`]: `count` of them, or until `until` is
/// cancelled. In milliseconds.
async fn round_trips(
    client: &Client,
    tenant: &TenantId,
    count: Option<usize>,
    until: Option<CancellationToken>,
) -> Result<Vec<f64>, Failure> {
    let publisher = Publisher::new(client.clone());
    let mut tick = tokio::time::interval(QUIET_EVERY);
    let mut taken = Vec::new();
    loop {
        if count.is_some_and(|n| taken.len() >= n)
            || until.as_ref().is_some_and(CancellationToken::is_cancelled)
        {
            return Ok(taken);
        }
        tick.tick().await;
        let action = Action::new(tenant.clone(), Sleep { ms: HANDLER_MS });
        let started = Instant::now();
        let (_, result) = publisher
            .enqueue_and_wait(action, ROUND_TRIP_LIMIT)
            .await
            .map_err(Failure::runtime)?;
        if result.is_none() {
            return Err(Failure::runtime(format!(
                "{tenant}: no result within {ROUND_TRIP_LIMIT:?}"
            )));
        }
        taken.push(started.elapsed().as_secs_f64() * 1000.0);
    }
}

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64().max(f64::EPSILON)
}

/// The `p`th percentile of `samples` (ms).
fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut histogram = Histogram::<u64>::new(3).expect("a histogram of 3 significant digits");
    for sample in samples {
        let _ = histogram.record((sample * 1000.0) as u64);
    }
    histogram.value_at_quantile(p / 100.0) as f64 / 1000.0
}
