//! An rpc client: ask a running service and wait for its answer, as a user of the framework
//! would from another program. The echo reference service runs in this process so the
//! example is complete; against a real deployment, drop the worker and set `NATS_URL`.
//!
//! ```text
//! NATS_URL=nats://127.0.0.1:4222 cargo run --example rpc_client
//! ```

use std::time::Duration;

use shared::{Action, ErrorCode, Publisher, TenantId, Worker};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let nats = async_nats::connect(&url).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(Worker::new(nats.clone(), echo::dispatcher()).run(shutdown.clone()));
    shared::worker::wait_until_serving(
        &nats,
        &shared::Domain::new("echo")?,
        Duration::from_secs(10),
    )
    .await;

    // The client: typed payloads from the service's crate, one call per request.
    let publisher = Publisher::new(nats);
    let tenant = TenantId::new("acme")?;
    let ping = echo::actions::Ping::new(&serde_json::json!({"hello": "world"}));
    let pong = publisher
        .request(&Action::new(tenant.clone(), ping), Duration::from_secs(5))
        .await?;
    println!("echo.ping answered {pong}");

    // A failure comes back as an error with a code the caller can act on.
    let fail = echo::actions::Fail {
        message: "not today".into(),
        retryable: false,
    };
    let error = publisher
        .request(&Action::new(tenant, fail), Duration::from_secs(5))
        .await
        .expect_err("echo.fail fails");
    assert_eq!(error.code, ErrorCode::HandlerError);
    println!(
        "echo.fail answered {}: {} (retryable: {})",
        error.code, error.message, error.retryable
    );

    shutdown.cancel();
    worker.await??;
    Ok(())
}
