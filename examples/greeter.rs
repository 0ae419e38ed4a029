//! A new service in a domain the framework has never heard of: `greeter`.
//!
//! One payload type, one handler, one worker. The worker creates the `GREETER` stream and
//! its shared consumers from the framework's per-domain template (nats/template/) at start,
//! so nothing outside this file changes. Then this program sends one action each way and
//! prints the results:
//!
//! ```text
//! NATS_URL=nats://127.0.0.1:4222 cargo run --example greeter
//! ```
//!
//! From any NATS client, while the worker runs:
//!
//! ```text
//! nats req greeter.acme.rpc '{"data":{"name":"Ada"}}' -H action_type:greeter.greet
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::{Action, ActionError, ActionPayload, Ctx, Dispatcher, Publisher, TenantId, Worker};

/// `greeter.greet`: whom to greet.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct Greet {
    name: String,
}

/// What `greeter.greet` answers.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Debug)]
struct Greeting {
    text: String,
}

impl ActionPayload for Greet {
    const ACTION_TYPE: &'static str = "greeter.greet";
    type Output = Greeting;
}

/// The handler: an async function from the action to its output.
async fn greet(action: Action<Greet>, ctx: Ctx) -> Result<Greeting, ActionError> {
    if action.data.name.trim().is_empty() {
        return Err(ActionError::invalid("name is empty"));
    }
    Ok(Greeting {
        text: format!("Hello, {} (from tenant {})", action.data.name, ctx.tenant()),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let nats = async_nats::connect(&url).await?;

    // The service: a dispatcher for the domain, a worker serving it (durable and rpc).
    let dispatcher = Dispatcher::new("greeter").on::<Greet, _>(greet);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(Worker::new(nats.clone(), dispatcher).run(shutdown.clone()));
    let domain = shared::Domain::new("greeter")?;
    shared::worker::wait_until_serving(&nats, &domain, Duration::from_secs(10)).await;

    // A client: rpc, then durable with the result awaited on the tenant's inbox.
    let publisher = Publisher::new(nats);
    let acme = TenantId::new("acme")?;
    let greeting = publisher
        .request(
            &Action::new(acme.clone(), Greet { name: "Ada".into() }),
            Duration::from_secs(5),
        )
        .await?;
    println!("rpc:     {}", greeting.text);
    let (stored, result) = publisher
        .enqueue_and_wait(
            Action::new(
                acme.clone(),
                Greet {
                    name: "Grace".into(),
                },
            ),
            Duration::from_secs(5),
        )
        .await?;
    let result = result.ok_or("no result within 5 s")?;
    println!(
        "durable: stored as {} #{}, result {}",
        stored.stream, stored.sequence, result.data
    );
    let refused = publisher
        .request(
            &Action::new(acme, Greet { name: " ".into() }),
            Duration::from_secs(5),
        )
        .await
        .expect_err("an empty name is refused");
    println!("refused: {}: {}", refused.code, refused.message);

    shutdown.cancel();
    worker.await??;
    Ok(())
}
