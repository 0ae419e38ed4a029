use shared::{Action, ActionError, Ctx};

use crate::actions::{Generate, Generated};
use crate::embedder::EmbeddingService;

/// Embeds the texts in batches; a text that cannot be embedded fails alone.
pub async fn generate(action: Action<Generate>, ctx: Ctx) -> Result<Generated, ActionError> {
    let service = ctx.state::<EmbeddingService>()?;
    service.generate(action.data).await
}
