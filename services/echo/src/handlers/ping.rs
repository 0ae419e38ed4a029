use serde_json::Value;
use shared::{Action, ActionError, Ctx};

use crate::actions::Ping;

/// Returns the data it was given.
pub async fn ping(action: Action<Ping>, _ctx: Ctx) -> Result<Value, ActionError> {
    Ok(action.data.0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shared::{Action, TenantId};

    use crate::actions::Ping;

    #[tokio::test]
    async fn returns_its_data() {
        let tenant = TenantId::new("acme").unwrap();
        let out = crate::dispatcher()
            .process(Action::new(tenant, Ping(json!({"hi": [1, 2]}))))
            .await;
        assert_eq!(out, Ok(json!({"hi": [1, 2]})));
    }
}
