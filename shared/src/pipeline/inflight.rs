//! [`InFlight`]: the handlers of one path, driven by the task that receives their messages.
//!
//! Each path (a durable consumer, the rpc endpoint) polls its handlers itself instead of
//! spawning a task per message. What that buys is batching on the connection: when a burst
//! of messages arrives, their handlers run one after the other in a single poll, so their
//! results and acknowledgements are all queued before the connection's writer wakes and
//! goes out in one write. With a task per message, the writer was woken after each handler
//! and wrote one message per system call, which cost a third of the throughput at 64 in
//! flight. This is what a hand-written `for_each_concurrent` worker does too.
//!
//! Handlers are futures: CPU-heavy work belongs in `spawn_blocking` (as the embedding and
//! ingestion services do), which is also what keeps it off the runtime's threads in
//! general. A panic escaping a handler future is caught here, logged, and costs only that
//! message (it is redelivered when its ack wait ends), as a panicking task did before.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

/// Handler futures in flight on one path.
#[derive(Default)]
pub(crate) struct InFlight {
    handlers: FuturesUnordered<BoxFuture<'static, ()>>,
}

impl InFlight {
    /// Starts `work`: it is first polled the next time [`InFlight::next`] is.
    pub fn push(&mut self, work: impl Future<Output = ()> + Send + 'static) {
        self.handlers
            .push(AssertUnwindSafe(work).catch_unwind().map(log_panic).boxed());
    }

    /// How many handlers are running.
    pub fn len(&self) -> usize {
        self.handlers.len()
    }

    /// Whether none is running.
    pub fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }

    /// Runs the handlers until one finishes; `None` at once when none is running.
    pub async fn next(&mut self) -> Option<()> {
        self.handlers.next().await
    }

    /// Runs every handler to its end.
    pub async fn finish(&mut self) {
        while self.next().await.is_some() {}
    }

    /// Leaves the remaining handlers running on their own task (after a drain timeout,
    /// when nobody waits for them any more but they may still acknowledge).
    pub fn detach(mut self) {
        if !self.is_empty() {
            tokio::spawn(async move { self.finish().await });
        }
    }
}

fn log_panic(outcome: std::thread::Result<()>) {
    if let Err(panic) = outcome {
        tracing::error!(
            panic = crate::dispatcher::panic_message(&*panic),
            "a message handler panicked; its message will be redelivered"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_handlers_and_survives_a_panic() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut inflight = InFlight::default();
        for i in 0..3 {
            let tx = tx.clone();
            inflight.push(async move {
                if i == 1 {
                    panic!("boom");
                }
                let _ = tx.send(i);
            });
        }
        assert_eq!(inflight.len(), 3);
        inflight.finish().await;
        assert!(inflight.is_empty());
        drop(tx);
        let mut done = Vec::new();
        while let Some(i) = rx.recv().await {
            done.push(i);
        }
        done.sort();
        assert_eq!(done, vec![0, 2]);
        assert!(inflight.next().await.is_none());
    }
}
