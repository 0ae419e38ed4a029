use std::sync::Arc;

use shared::{Action, ActionError, Ctx};

use crate::actions::{Generate, Generated};
use crate::embedder::EmbeddingService;

/// Embeds the texts in batches; a text that cannot be embedded fails alone.
pub async fn generate(
    action: Action<Generate>,
    _ctx: Ctx,
    service: Arc<EmbeddingService>,
) -> Result<Generated, ActionError> {
    service.generate(action.data).await
}
