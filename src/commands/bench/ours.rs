//! Our side: `Publisher` → JetStream → `Worker` running the echo dispatcher → result.

use std::time::Duration;

use async_nats::Client;
use echo::actions::Ping;
use shared::{Action, CallbackSubject, Domain, Publisher, TenantId, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

use super::harness::{Measured, Router, closed_loop, payload};
use super::{Path, Timing};

/// Runs one scenario through the framework.
pub async fn run(
    caller: &Client,
    worker_client: &Client,
    path: Path,
    in_flight: usize,
    timing: &Timing,
) -> Result<Measured, String> {
    let shutdown = CancellationToken::new();
    let worker =
        Worker::new(worker_client.clone(), echo::dispatcher()).config(WorkerConfig::default());
    let stop = shutdown.clone();
    let running = tokio::spawn(async move { worker.run(stop).await });
    let echo = Domain::new("echo").map_err(|e| e.to_string())?;
    if !shared::worker::wait_until_serving(caller, &echo, Duration::from_secs(10)).await {
        return Err("the echo worker did not start within 10s".into());
    }

    let publisher = Publisher::new(caller.clone());
    let tenant = TenantId::new(super::TENANT).map_err(|e| e.to_string())?;
    let measured = match path {
        Path::DurableInbox | Path::DurableCallbacks => {
            let callback = match path {
                Path::DurableInbox => {
                    CallbackSubject::inbox(caller.new_inbox()).map_err(|e| e.to_string())?
                }
                _ => CallbackSubject::callbacks(&echo, &tenant),
            };
            let results = caller
                .subscribe(callback.as_str().to_owned())
                .await
                .map_err(|e| e.to_string())?;
            let router = Router::start(results);
            closed_loop(in_flight, timing, move |seq| {
                let (publisher, router, tenant, callback) = (
                    publisher.clone(),
                    router.clone(),
                    tenant.clone(),
                    callback.clone(),
                );
                async move {
                    let action =
                        Action::new(tenant, Ping::new(&payload(seq))).with_callback(&callback);
                    let result = router.expect(action.action_id.to_string());
                    publisher
                        .enqueue(&action)
                        .await
                        .map_err(|e| e.to_string())?;
                    result.await.map_err(|e| e.to_string())
                }
            })
            .await
        }
        Path::Rpc | Path::RpcLimit => {
            closed_loop(in_flight, timing, move |seq| {
                let (publisher, tenant) = (publisher.clone(), tenant.clone());
                async move {
                    let action = Action::new(tenant, Ping::new(&payload(seq)));
                    publisher
                        .request(&action, Duration::from_secs(10))
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(())
                }
            })
            .await
        }
    };
    shutdown.cancel();
    running
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    measured
}
