use std::sync::Arc;

use shared::{Action, ActionError, Ctx};

use crate::actions::{Generate, Generated};
use crate::embedder::EmbeddingService;

/// Embeds the texts in batches; a text that cannot be embedded fails alone.
///
/// A model the action names, other than the one configured, must be one of the tenant's
/// allowed models (`forbidden` otherwise, before any model runs): on an embedding API it
/// is the operator who pays for it.
pub async fn generate(
    action: Action<Generate>,
    ctx: Ctx,
    service: Arc<EmbeddingService>,
) -> Result<Generated, ActionError> {
    let named = action
        .data
        .model
        .as_deref()
        .filter(|m| *m != service.model());
    ctx.check_model(named).await?;
    service.generate(action.data).await
}
