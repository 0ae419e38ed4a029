use std::sync::Arc;

use shared::{Action, ActionError, Ctx};

use crate::QueryService;
use crate::actions::{Delete, Deleted, check_name};
use crate::service::store_error;
use crate::store::Scope;

/// Deletes a document's chunks, or a whole collection, of the action's tenant only.
pub async fn delete(
    action: Action<Delete>,
    ctx: Ctx,
    service: Arc<QueryService>,
) -> Result<Deleted, ActionError> {
    let Delete {
        collection,
        document_id,
    } = &action.data;
    check_name("collection", collection)?;
    if let Some(document_id) = document_id {
        check_name("document_id", document_id)?;
    }
    let deleted = service
        .store
        .delete(Scope {
            tenant: ctx.tenant(),
            collection: Some(collection),
            document_id: document_id.as_deref(),
        })
        .await
        .map_err(store_error)?;
    Ok(Deleted { deleted })
}
