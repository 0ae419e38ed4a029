use std::time::Duration;

use shared::{Action, ActionError, Ctx};

use crate::actions::{Sleep, Slept};

/// Sleeps, then succeeds; stops early (with an `unavailable` error, so the action is
/// retried elsewhere) if the worker cancels in-flight work at shutdown.
pub async fn sleep(action: Action<Sleep>, ctx: Ctx) -> Result<Slept, ActionError> {
    let ms = action.data.ms;
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok(Slept { slept_ms: ms }),
        _ = ctx.cancellation().cancelled() => Err(ActionError::unavailable("worker shutting down")),
    }
}

#[cfg(test)]
mod tests {
    use shared::{Action, TenantId};

    use crate::actions::{Sleep, Slept};

    #[tokio::test]
    async fn sleeps() {
        let tenant = TenantId::new("acme").unwrap();
        let out = crate::dispatcher()
            .process(Action::new(tenant, Sleep { ms: 5 }))
            .await;
        assert_eq!(out, Ok(Slept { slept_ms: 5 }));
    }
}
