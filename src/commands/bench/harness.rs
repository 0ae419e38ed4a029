//! The closed-loop driver and result routing shared by both sides.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use tokio::sync::oneshot;

use super::Timing;

/// Operations completed in the measurement window and their latencies (µs).
pub struct Measured {
    count: u64,
    elapsed: Duration,
    latencies: Histogram<u64>,
}

impl Measured {
    /// Throughput.
    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// `round` added to what `so_far` measured (counts, time and latencies summed).
    pub fn merged(so_far: Option<Measured>, round: Measured) -> Result<Measured, String> {
        let Some(mut total) = so_far else {
            return Ok(round);
        };
        total.count += round.count;
        total.elapsed += round.elapsed;
        total
            .latencies
            .add(round.latencies)
            .map_err(|e| e.to_string())?;
        Ok(total)
    }

    /// A latency percentile in µs.
    pub fn percentile(&self, p: f64) -> u64 {
        self.latencies.value_at_percentile(p)
    }
}

/// Runs `lanes` loops of `op` (each waits for its result before the next) through a
/// warm-up and then a measurement window.
pub async fn closed_loop<F, Fut>(lanes: usize, timing: &Timing, op: F) -> Result<Measured, String>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let start = Instant::now();
    let measure_from = start + timing.warmup;
    let end = measure_from + timing.measure;
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
            let mut count = 0u64;
            let mut seq = (lane as u64) << 40;
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                tokio::time::timeout(Duration::from_secs(10), op(seq))
                    .await
                    .map_err(|_| "no result within 10s".to_string())??;
                seq += 1;
                if began >= measure_from {
                    count += 1;
                    let _ = latencies.record(began.elapsed().as_micros().max(1) as u64);
                }
            }
            Ok::<_, String>((count, latencies))
        }));
    }
    let mut total = Measured {
        count: 0,
        elapsed: timing.measure,
        latencies: Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
    };
    for task in tasks {
        let (count, latencies) = task.await.map_err(|e| e.to_string())??;
        total.count += count;
        total.latencies.add(latencies).map_err(|e| e.to_string())?;
    }
    Ok(total)
}

/// Hands results arriving on one subscription to whoever waits for them, by the
/// `correlation_id` header (the request's action id, for a chain's first action).
#[derive(Clone, Default)]
pub struct Router {
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>,
}

impl Router {
    /// Starts routing the messages of `subscription`.
    pub fn start(mut subscription: async_nats::Subscriber) -> Self {
        let router = Router::default();
        let waiting = router.waiting.clone();
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let key = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(shared::headers::CORRELATION_ID))
                    .map(|v| v.as_str().to_owned());
                if let Some(key) = key {
                    let sender = waiting.lock().ok().and_then(|mut w| w.remove(&key));
                    if let Some(sender) = sender {
                        let _ = sender.send(());
                    }
                }
            }
        });
        router
    }

    /// Registers interest in the result correlated to `key`; await the receiver.
    pub fn expect(&self, key: String) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(key, tx);
        }
        rx
    }
}

/// The data each benchmark action carries: ~400 bytes of JSON in all, as in bench-baseline.md.
pub fn payload(seq: u64) -> serde_json::Value {
    serde_json::json!({ "seq": seq, "text": "x".repeat(160) })
}
