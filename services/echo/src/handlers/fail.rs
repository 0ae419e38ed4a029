use shared::{Action, ActionError, Ctx};

use crate::actions::Fail;

/// Fails as asked: `unavailable` (retried) or `handler_error` (final).
pub async fn fail(action: Action<Fail>, _ctx: Ctx) -> Result<(), ActionError> {
    let Fail { retryable, message } = action.data;
    Err(if retryable {
        ActionError::unavailable(message)
    } else {
        ActionError::handler(message)
    })
}

#[cfg(test)]
mod tests {
    use shared::{Action, ErrorCode, TenantId};

    use crate::actions::Fail;

    #[tokio::test]
    async fn fails_as_asked() {
        let tenant = TenantId::new("acme").unwrap();
        let err = crate::dispatcher()
            .process(Action::new(
                tenant,
                Fail {
                    retryable: true,
                    message: "down".into(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code, err.retryable, err.message.as_str()),
            (ErrorCode::Unavailable, true, "down")
        );
    }
}
