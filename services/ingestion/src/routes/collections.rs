//! `/v1/collections`: chunking settings per collection.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use platform::http::{ApiError, ApiJson, Authenticated};
use serde::Serialize;
use shared::ActionError;

use super::Api;
use crate::collections::{CollectionRecord, CollectionSettings};

/// One collection as listed: its chunking (the defaults when it has no settings) and how
/// many documents it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CollectionSummary {
    /// The collection.
    pub collection: String,
    /// Tokens per chunk for new documents.
    pub chunk_tokens: usize,
    /// Tokens shared by neighbouring chunks for new documents.
    pub chunk_overlap: usize,
    /// Documents in it (any status).
    pub documents: usize,
}

/// `{collections: [...]}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CollectionList {
    /// By name.
    pub collections: Vec<CollectionSummary>,
}

/// `GET /v1/collections`: the tenant's collections with settings or documents (there is
/// no other record of a collection: one exists once used).
#[utoipa::path(
    get,
    path = "/v1/collections",
    tag = "collections",
    operation_id = "collections_list",
    summary = "The tenant's collections with their chunking and document count",
    responses(
        (status = 200, description = "The collections, by name", body = CollectionList),
        (status = 401, description = "No or bad API key"),
        (status = 503, description = "NATS unreachable"),
    ),
    security(("api_key" = [])),
)]
pub async fn list(
    State(api): State<Api>,
    auth: Authenticated,
) -> Result<ApiJson<CollectionList>, ApiError> {
    let service = &api.service;
    let defaults = CollectionSettings {
        chunk_tokens: service.limits.chunk_tokens,
        chunk_overlap: service.limits.chunk_overlap,
    };
    let mut all: BTreeMap<String, (CollectionSettings, usize)> = BTreeMap::new();
    for record in service
        .collections
        .list(&auth.tenant)
        .await
        .map_err(ActionError::from)?
    {
        all.insert(record.collection, (record.settings, 0));
    }
    for document in service
        .documents
        .list(&auth.tenant, None)
        .await
        .map_err(ActionError::from)?
    {
        all.entry(document.collection).or_insert((defaults, 0)).1 += 1;
    }
    let collections = all
        .into_iter()
        .map(|(collection, (settings, documents))| CollectionSummary {
            collection,
            chunk_tokens: settings.chunk_tokens,
            chunk_overlap: settings.chunk_overlap,
            documents,
        })
        .collect();
    Ok(ApiJson(CollectionList { collections }))
}

/// `PUT /v1/collections/{name}`: sets how new documents of the collection are chunked
/// (documents already indexed keep their chunks until ingested again).
#[utoipa::path(
    put,
    path = "/v1/collections/{collection}",
    tag = "collections",
    operation_id = "collections_put",
    summary = "Set a collection's chunking: tokens per chunk and overlap",
    params(("collection" = String, Path, description = "Any name of 1 to 256 bytes without \
        control characters (percent-encoded)")),
    request_body(content = CollectionSettings, content_type = "application/json"),
    responses(
        (status = 200, description = "The stored settings", body = CollectionRecord),
        (status = 400, description = "chunk_tokens not 16 to 8192, chunk_overlap not less \
            than chunk_tokens, or a bad name"),
        (status = 401, description = "No or bad API key"),
        (status = 503, description = "NATS unreachable"),
    ),
    security(("api_key" = [])),
)]
pub async fn put(
    State(api): State<Api>,
    auth: Authenticated,
    Path(collection): Path<String>,
    ApiJson(settings): ApiJson<CollectionSettings>,
) -> Result<ApiJson<CollectionRecord>, ApiError> {
    let record = api
        .service
        .collections
        .put(&auth.tenant, &collection, settings)
        .await
        .map_err(ActionError::from)?;
    Ok(ApiJson(record))
}
