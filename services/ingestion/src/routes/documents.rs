//! `/v1/documents`: upload, list, get, delete.

use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header::CONTENT_TYPE};
use platform::http::{ApiError, ApiJson, Authenticated};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use shared::{Action, ActionError, TenantId};

use super::{Api, QUERY_TIMEOUT};
use crate::actions::{DocumentDeleted, IngestDocument, check_metadata};
use crate::documents::DocumentRecord;
use crate::extract::{self, DocumentKind, ExtractError};
use crate::handlers::remove_document;
use crate::submit::{Accepted, NewFile, submit, submit_file};
use crate::task::check_id;

/// The JSON form of an upload.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewDocument {
    /// The collection to index into.
    pub collection: String,
    /// Inline text…
    pub text: Option<String>,
    /// …or a URL to fetch.
    pub url: Option<String>,
    /// A title.
    pub title: Option<String>,
    /// A file name (helps detect markdown or html in `text`).
    pub file_name: Option<String>,
    /// Kept with every chunk.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// Tokens per chunk (16 to 8192).
    pub chunk_tokens: Option<usize>,
    /// Tokens shared by neighbours (fewer than `chunk_tokens`).
    pub chunk_overlap: Option<usize>,
}

/// `POST /v1/documents`: JSON or multipart. Every such request, JSON or files, is one of
/// its tenant's [`Api::uploads`] until it is answered (or the client goes away).
#[utoipa::path(
    post,
    path = "/v1/documents",
    tag = "documents",
    operation_id = "documents_create",
    summary = "Ingest a document: JSON text or URL, or a multipart upload of one or more files",
    request_body(
        description = "JSON `NewDocument` (exactly one of `text` or `url`), or multipart with a \
            `collection` field, optional `title` and `metadata` (JSON) fields, and one or more \
            `file` parts (txt, md, html, pdf, docx).",
        content(
            (NewDocument = "application/json"),
            (Object = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 202, description = "Accepted; follow `task_id`. Several files answer \
            `{documents: [Accepted]}`", body = Accepted),
        (status = 200, description = "Every file was already in the collection \
            (`duplicate_of` set)", body = Accepted),
        (status = 400, description = "Bad fields: chunk_tokens not 16 to 8192, chunk_overlap \
            not less than chunk_tokens, metadata over 64 KiB, …"),
        (status = 401, description = "No or bad API key"),
        (status = 413, description = "A file is too large"),
        (status = 415, description = "Unsupported file type"),
        (status = 422, description = "A file is plainly unreadable (not UTF-8, blank, a \
            truncated PDF, a zip without word/document.xml); deeper problems fail the task"),
        (status = 429, description = "The tenant already has as many uploads in progress \
            as it may at once (`DA_INGEST_UPLOADS_PER_TENANT`); retry after `Retry-After` \
            seconds"),
        (status = 503, description = "NATS unreachable"),
    ),
    security(("api_key" = [])),
)]
pub async fn create(
    State(api): State<Api>,
    auth: Authenticated,
    request: Request,
) -> Result<(StatusCode, ApiJson<Value>), ApiError> {
    // Held until the answer: while the body is read and stored, whatever the outcome.
    let _slot = api.uploads.acquire(&auth.tenant)?;
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, &api)
            .await
            .map_err(|err| ApiError::new(err.status(), "bad_request", err.body_text()))?;
        let accepted = upload(&api, &auth.tenant, multipart).await?;
        let status = if accepted.iter().all(|a| a.duplicate_of.is_some()) {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        };
        let body = match accepted.as_slice() {
            [one] => json!(one),
            many => json!({ "documents": many }),
        };
        return Ok((status, ApiJson(body)));
    }
    let ApiJson(new) = ApiJson::<NewDocument>::from_request(request, &api).await?;
    query_contract::check_name("collection", &new.collection)?;
    if usize::from(new.text.is_some()) + usize::from(new.url.is_some()) != 1 {
        return Err(ApiError::bad_request("give exactly one of text or url"));
    }
    if let Some(url) = &new.url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ApiError::bad_request(format!(
            "url {url:?} is not http or https"
        )));
    }
    if new.text.as_ref().is_some_and(|t| t.trim().is_empty()) {
        return Err(ApiError::bad_request("text is empty"));
    }
    let ingest = IngestDocument {
        collection: new.collection,
        document_id: None,
        task_id: None,
        text: new.text,
        url: new.url,
        stored: false,
        file_name: new.file_name,
        content_type: None,
        title: new.title,
        metadata: new.metadata,
        chunk_tokens: new.chunk_tokens,
        chunk_overlap: new.chunk_overlap,
    };
    ingest.validate()?;
    let accepted = submit(&api.service, &api.publisher, &auth.tenant, ingest).await?;
    Ok((StatusCode::ACCEPTED, ApiJson(json!(accepted))))
}

/// One uploaded file, read and checked.
struct Upload {
    file_name: Option<String>,
    content_type: Option<String>,
    bytes: bytes::Bytes,
}

/// Reads every part, checks every file (type, readable, not empty) before storing any, then
/// stores and submits each.
async fn upload(
    api: &Api,
    tenant: &TenantId,
    mut multipart: Multipart,
) -> Result<Vec<Accepted>, ApiError> {
    let mut collection = None;
    let mut title = None;
    let mut metadata = Map::new();
    let mut files = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|err| ApiError::new(err.status(), "bad_request", err.body_text()))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let bytes = field
            .bytes()
            .await
            .map_err(|err| ApiError::new(err.status(), "bad_request", err.body_text()))?;
        let text = || String::from_utf8_lossy(&bytes).trim().to_owned();
        match name.as_str() {
            "collection" => collection = Some(text()),
            "title" => title = Some(text()),
            "metadata" => {
                metadata = serde_json::from_slice(&bytes)
                    .map_err(|err| ApiError::bad_request(format!("metadata: {err}")))?;
                check_metadata(&metadata)?;
            }
            "file" | "files" | "files[]" => files.push(Upload {
                file_name,
                content_type,
                bytes,
            }),
            other => return Err(ApiError::bad_request(format!("unexpected field {other:?}"))),
        }
    }
    let collection = collection.ok_or_else(|| ApiError::bad_request("missing field collection"))?;
    query_contract::check_name("collection", &collection)?;
    if files.is_empty() {
        return Err(ApiError::bad_request("no file part"));
    }
    for file in &files {
        check_file(api, file)?;
    }
    let mut accepted = Vec::new();
    for file in files {
        let new = NewFile {
            collection: collection.clone(),
            bytes: file.bytes,
            file_name: file.file_name,
            content_type: file.content_type,
            title: title.clone(),
            metadata: metadata.clone(),
        };
        accepted.push(submit_file(&api.service, &api.publisher, tenant, new).await?);
    }
    Ok(accepted)
}

/// 413 past the size limit, 415 for a type we cannot read, 422 for a file that plainly is
/// not what it claims (not UTF-8, blank, a truncated PDF, a zip without a Word document):
/// answered now. Only [`extract::precheck`]'s cheap, bounded looks run here; parsing and
/// decompression happen in the worker, where a hostile file fails its task with a reason
/// instead of tying up (or crashing) the HTTP server.
fn check_file(api: &Api, file: &Upload) -> Result<(), ApiError> {
    let name = file.file_name.as_deref().unwrap_or("the file");
    let limit = api.service.limits.max_bytes;
    if file.bytes.len() > limit {
        return Err(ApiError::payload_too_large(format!(
            "{name} has {} bytes; the limit is {limit}",
            file.bytes.len()
        )));
    }
    let kind = DocumentKind::detect(
        file.file_name.as_deref(),
        file.content_type.as_deref(),
        &file.bytes,
    )
    .ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "{name}: unsupported type (expected text, markdown, html, pdf or docx)"
        ))
    })?;
    match extract::precheck(&file.bytes, kind) {
        Ok(_) => Ok(()),
        Err(err @ ExtractError::Unsupported(_)) => {
            Err(ApiError::unsupported_media_type(format!("{name}: {err}")))
        }
        Err(err) => Err(ApiError::unprocessable(format!("{name}: {err}"))),
    }
}

/// `?collection=`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this collection's documents.
    pub collection: Option<String>,
}

/// `GET /v1/documents`
#[utoipa::path(
    get,
    path = "/v1/documents",
    tag = "documents",
    operation_id = "documents_list",
    summary = "The tenant's documents with status, chunk count and size",
    params(ListQuery),
    responses(
        (status = 200, description = "`{documents: [DocumentRecord]}`", body = Object),
        (status = 401, description = "No or bad API key"),
        (status = 503, description = "NATS unreachable"),
    ),
    security(("api_key" = [])),
)]
pub async fn list(
    State(api): State<Api>,
    auth: Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<ApiJson<Value>, ApiError> {
    let documents = api
        .service
        .documents
        .list(&auth.tenant, query.collection.as_deref())
        .await
        .map_err(ActionError::from)?;
    Ok(ApiJson(json!({ "documents": documents })))
}

/// `GET /v1/documents/{id}`
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}",
    tag = "documents",
    operation_id = "documents_get",
    summary = "One document",
    params(("document_id" = String, Path, description = "`[A-Za-z0-9_-]{1,128}`")),
    responses(
        (status = 200, description = "The document", body = DocumentRecord),
        (status = 400, description = "Malformed id"),
        (status = 401, description = "No or bad API key"),
        (status = 404, description = "No such document"),
    ),
    security(("api_key" = [])),
)]
pub async fn get(
    State(api): State<Api>,
    auth: Authenticated,
    Path(document_id): Path<String>,
) -> Result<ApiJson<DocumentRecord>, ApiError> {
    check_id("document_id", &document_id)?;
    api.service
        .documents
        .record(&auth.tenant, &document_id)
        .await
        .map_err(ActionError::from)?
        .map(ApiJson)
        .ok_or_else(|| ApiError::not_found(format!("no document {document_id}")))
}

/// `DELETE /v1/documents/{id}`
#[utoipa::path(
    delete,
    path = "/v1/documents/{document_id}",
    tag = "documents",
    operation_id = "documents_delete",
    summary = "Delete a document: its original, its chunks, its state",
    params(("document_id" = String, Path, description = "`[A-Za-z0-9_-]{1,128}`")),
    responses(
        (status = 200, description = "`{document_id, chunks_deleted}`", body = Object),
        (status = 400, description = "Malformed id"),
        (status = 401, description = "No or bad API key"),
        (status = 404, description = "No such document"),
        (status = 503, description = "NATS or the vector store unreachable"),
    ),
    security(("api_key" = [])),
)]
pub async fn delete(
    State(api): State<Api>,
    auth: Authenticated,
    Path(document_id): Path<String>,
) -> Result<ApiJson<DocumentDeleted>, ApiError> {
    check_id("document_id", &document_id)?;
    let exists = api
        .service
        .documents
        .record(&auth.tenant, &document_id)
        .await
        .map_err(ActionError::from)?
        .is_some();
    if !exists {
        return Err(ApiError::not_found(format!("no document {document_id}")));
    }
    let publisher = api.publisher.clone();
    let tenant = auth.tenant.clone();
    let deleted = remove_document(
        &api.service,
        &auth.tenant,
        &document_id,
        |delete| async move {
            publisher
                .request(&Action::new(tenant, delete), QUERY_TIMEOUT)
                .await
        },
    )
    .await?;
    Ok(ApiJson(deleted))
}
