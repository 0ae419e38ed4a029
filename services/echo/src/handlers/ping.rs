use serde_json::value::RawValue;
use shared::{Action, ActionError, Ctx};

use crate::actions::Ping;

/// Returns the data it was given.
pub async fn ping(action: Action<Ping>, _ctx: Ctx) -> Result<Box<RawValue>, ActionError> {
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
            .process(Action::new(tenant, Ping::new(&json!({"hi": [1, 2]}))))
            .await
            .expect("echoed");
        assert_eq!(out.get(), r#"{"hi":[1,2]}"#);
    }
}
