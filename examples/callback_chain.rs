//! A callback chain across two services: `orders.place` hands the shipping to the
//! `shipping` service as a durable follow-up, with the result sent back to
//! `orders.<tenant>.callbacks`, where the orders service's result handler picks it up.
//! Both durable legs survive a worker restart. The order's id travels in the payloads, so
//! the result handler knows which order shipped.
//!
//! ```text
//! NATS_URL=nats://127.0.0.1:4222 cargo run --example callback_chain
//! ```

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::{
    Action, ActionError, ActionPayload, ActionResult, CallbackSubject, Ctx, Dispatcher, Domain,
    Publisher, TenantId, Worker,
};
use tokio::sync::mpsc;

/// `orders.place`: an order to ship.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct Place {
    item: String,
}

/// What `orders.place` answers at once: the order is accepted, shipping follows.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct Accepted {
    shipping_requested: bool,
}

impl ActionPayload for Place {
    const ACTION_TYPE: &'static str = "orders.place";
    type Output = Accepted;
}

/// `shipping.ship`: what to send, for which order.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct Ship {
    order_id: String,
    item: String,
}

/// What `shipping.ship` answers.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct Shipped {
    order_id: String,
    tracking: String,
}

impl ActionPayload for Ship {
    const ACTION_TYPE: &'static str = "shipping.ship";
    type Output = Shipped;
}

/// orders: accept the order and ask shipping, durably, to answer on our callbacks.
async fn place(action: Action<Place>, ctx: Ctx) -> Result<Accepted, ActionError> {
    let orders = Domain::new("orders").map_err(|e| ActionError::handler(e.to_string()))?;
    let ship = ctx
        .follow_up(Ship {
            order_id: action.action_id.to_string(),
            item: action.data.item,
        })
        .with_callback(&CallbackSubject::callbacks(&orders, ctx.tenant()));
    ctx.enqueue(&ship).await?;
    Ok(Accepted {
        shipping_requested: true,
    })
}

/// shipping: ship it.
async fn ship(action: Action<Ship>, _ctx: Ctx) -> Result<Shipped, ActionError> {
    Ok(Shipped {
        order_id: action.data.order_id,
        tracking: format!("TRACK-{}", action.data.item.to_uppercase()),
    })
}

/// Where the orders service records shipped orders (a database in a real service).
struct Done(mpsc::UnboundedSender<(String, String)>);

/// orders: shipping's result arrives on `orders.<tenant>.callbacks`.
async fn shipped(
    result: Action<ActionResult<Shipped>>,
    _ctx: Ctx,
    done: Arc<Done>,
) -> Result<(), ActionError> {
    let shipped = result.data.into_result()?;
    let _ = done.0.send((shipped.order_id, shipped.tracking));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let nats = async_nats::connect(&url).await?;
    let (done, mut finished) = mpsc::unbounded_channel();
    let orders = Dispatcher::new("orders")
        .on::<Place, _>(place)
        .on_result::<Ship, _>(shipped)
        .with_state(Done(done));
    let shipping: Dispatcher = Dispatcher::new("shipping").on::<Ship, _>(ship);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for dispatcher in [orders, shipping] {
        let domain = dispatcher.domain().clone();
        workers.push(tokio::spawn(
            Worker::new(nats.clone(), dispatcher).run(shutdown.clone()),
        ));
        shared::worker::wait_until_serving(&nats, &domain, Duration::from_secs(10)).await;
    }

    let order = Action::new(
        TenantId::new("acme")?,
        Place {
            item: "teapot".into(),
        },
    );
    let order_id = order.action_id.to_string();
    Publisher::new(nats).enqueue(&order).await?;
    let (shipped_id, tracking) = tokio::time::timeout(Duration::from_secs(10), finished.recv())
        .await?
        .ok_or("the orders service stopped")?;
    assert_eq!(shipped_id, order_id, "the result names the order");
    println!("order {order_id} shipped: {tracking}");

    shutdown.cancel();
    for worker in workers {
        worker.await??;
    }
    Ok(())
}
