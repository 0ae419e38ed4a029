use shared::{Action, ActionError, Ctx};

use crate::actions::Panic;

/// Panics: shows that a panicking handler costs one action, not the worker.
pub async fn panic(action: Action<Panic>, _ctx: Ctx) -> Result<(), ActionError> {
    let message = action
        .data
        .message
        .unwrap_or_else(|| "echo.panic was asked to panic".to_owned());
    panic!("{message}")
}

#[cfg(test)]
mod tests {
    use shared::{Action, ErrorCode, TenantId};

    use crate::actions::Panic;

    #[tokio::test]
    async fn panic_becomes_handler_panic() {
        let tenant = TenantId::new("acme").unwrap();
        let err = crate::dispatcher()
            .process(Action::new(
                tenant,
                Panic {
                    message: Some("boom".into()),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::HandlerPanic);
        assert!(err.message.contains("boom"));
    }
}
