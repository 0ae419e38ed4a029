//! `/v1/documents`: upload, list, get, delete.

use std::time::Duration;

use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header::CONTENT_TYPE};
use platform::http::{ApiError, ApiJson, Authenticated};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use shared::{Action, ActionError, TenantId};

use super::{Api, QUERY_TIMEOUT};
use crate::actions::{DocumentDeleted, IngestDocument, check_metadata};
use crate::documents::DocumentRecord;
use crate::extract::sample::{Sample, check_whole};
use crate::extract::{DocumentKind, ExtractError};
use crate::handlers::remove_document;
use crate::original::{OriginalWriter, WriteError};
use crate::submit::{Accepted, StoredFile, duplicate, submit, submit_stored};
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
        (status = 413, description = "A file is too large (`DA_INGEST_MAX_BYTES`); refused \
            while it streams in, nothing of it stored"),
        (status = 415, description = "Unsupported file type"),
        (status = 422, description = "A file is plainly unreadable (not UTF-8, blank, a \
            truncated PDF, a zip without word/document.xml); deeper problems fail the task"),
        (status = 429, description = "The tenant already has as many uploads in progress \
            as it may at once (`DA_INGEST_UPLOADS_PER_TENANT`); retry after `Retry-After` \
            seconds"),
        (status = 503, description = "NATS unreachable"),
        (status = 507, description = "`insufficient_storage`: the documents store is full \
            (`DA_INGEST_STORE_MAX_BYTES`): nothing is evicted to make room; retry after \
            `Retry-After` seconds, once documents are deleted or the bound raised. \
            `quota_exceeded` (no `Retry-After`): the upload would take the tenant past its \
            stored bytes (`stored_bytes`), checked while it streams in, nothing of it \
            stored; delete documents to make room"),
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
    // The text's size is known now; a URL's only once fetched, where the worker holds it
    // to what is left (the task then fails `quota_exceeded`): here only a tenant already
    // at its limit is refused.
    let size = new.text.as_ref().map_or(0, |t| t.len() as u64);
    let (used, limit) = api.service.quotas.stored(&auth.tenant).await?;
    if limit > 0 && (used.saturating_add(size) > limit || used >= limit) {
        return Err(api
            .service
            .quotas
            .refuse_stored(&auth.tenant, used, limit, size, AT)
            .into());
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

/// One file part, streamed into the object store as it arrives and checked from what was
/// kept of it; stored for good only once every part of the request passed.
struct Staged {
    document_id: String,
    file_name: Option<String>,
    content_type: Option<String>,
    writer: OriginalWriter,
    /// `None` when the sample could not tell (a large zip): the stored file is read back.
    checked: Option<Result<DocumentKind, ExtractError>>,
}

/// A checked file to claim and submit; `writer` is `None` once its object is ended.
struct Ready {
    document_id: String,
    file_name: Option<String>,
    content_type: Option<String>,
    content_hash: String,
    /// Its bytes, counted in the tenant's stored bytes until it ends up not stored.
    size: u64,
    writer: Option<OriginalWriter>,
}

/// The form's other fields.
#[derive(Default)]
struct Fields {
    collection: Option<String>,
    title: Option<String>,
    metadata: Map<String, Value>,
}

/// Streams every file part to the object store (never holding a file whole), checks every
/// file (size, type, readable, not empty) and only if all pass ends their objects and
/// submits each. A refused request (or a client gone) leaves nothing in the store.
async fn upload(
    api: &Api,
    tenant: &TenantId,
    multipart: Multipart,
) -> Result<Vec<Accepted>, ApiError> {
    let quotas = &api.service.quotas;
    let (used, limit) = quotas.stored(tenant).await?;
    let room = Room { used, limit };
    let mut staged = Vec::new();
    let fields = match read_parts(api, tenant, room, multipart, &mut staged).await {
        Ok(fields) => fields,
        Err(err) => {
            abort(staged).await;
            return Err(err);
        }
    };
    let collection = match check_fields(&fields, &staged) {
        Ok(collection) => collection,
        Err(err) => {
            abort(staged).await;
            return Err(err);
        }
    };
    // Counted before anything is stored for good: of two uploads at once, the one that
    // does not fit any more is refused here, nothing of it stored.
    let total: u64 = staged.iter().map(|file| file.writer.size()).sum();
    if let Err(err) = quotas.reserve_stored(tenant, total, AT).await {
        abort(staged).await;
        return Err(err.into());
    }
    // Large zips could not be checked from their sample: stored, read back, checked whole.
    let mut ready = Vec::new();
    let mut stored = Vec::new();
    for file in staged {
        if file.checked.is_some() {
            ready.push(file);
            continue;
        }
        let Staged {
            document_id,
            file_name,
            content_type,
            writer,
            ..
        } = file;
        let size = writer.size();
        let checked = match writer.finish().await {
            Ok(written) => check_stored(api, tenant, &document_id, &file_name, &content_type)
                .await
                .map(|()| written.content_hash),
            Err(err) => Err(write_error(err)),
        };
        let content_hash = checked.as_ref().cloned().unwrap_or_default();
        stored.push(Ready {
            document_id,
            file_name,
            content_type,
            content_hash,
            size,
            writer: None,
        });
        if let Err(err) = checked {
            abort(ready).await;
            for Ready { document_id, .. } in &stored {
                // Best effort: the refusal is the answer either way.
                let _ = api
                    .service
                    .documents
                    .delete_original(tenant, document_id)
                    .await;
            }
            quotas.release_stored(tenant, total).await;
            return Err(err);
        }
    }
    let ready = ready.into_iter().map(|file| Ready {
        content_hash: file.writer.content_hash(),
        size: file.writer.size(),
        document_id: file.document_id,
        file_name: file.file_name,
        content_type: file.content_type,
        writer: Some(file.writer),
    });
    let mut accepted = Vec::new();
    let mut unsettled = total;
    for file in stored.into_iter().chain(ready) {
        unsettled -= file.size;
        match claim_and_submit(api, tenant, &fields, &collection, file).await {
            Ok(file) => accepted.push(file),
            Err(err) => {
                // The files after this one are dropped unstored: their bytes go back.
                quotas.release_stored(tenant, unsettled).await;
                return Err(err);
            }
        }
    }
    Ok(accepted)
}

/// Where refusals of the tenant's stored bytes are counted in `/metrics`.
const AT: &str = "gateway";

/// A tenant's stored bytes when its upload began, and its limit (0: none).
#[derive(Debug, Clone, Copy)]
struct Room {
    used: u64,
    limit: u64,
}

impl Room {
    /// Whether `size` more bytes still fit.
    fn fits(self, size: u64) -> bool {
        self.limit == 0 || self.used.saturating_add(size) <= self.limit
    }
}

/// Reads the form, streaming each file part into `staged`; fails at the first refusal,
/// among them the request's files outgrowing the tenant's `room` (its stored bytes).
async fn read_parts(
    api: &Api,
    tenant: &TenantId,
    room: Room,
    mut multipart: Multipart,
    staged: &mut Vec<Staged>,
) -> Result<Fields, ApiError> {
    let mut fields = Fields::default();
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        if !matches!(name.as_str(), "file" | "files" | "files[]") {
            let bytes = field.bytes().await.map_err(multipart_error)?;
            let text = || String::from_utf8_lossy(&bytes).trim().to_owned();
            match name.as_str() {
                "collection" => fields.collection = Some(text()),
                "title" => fields.title = Some(text()),
                "metadata" => {
                    fields.metadata = serde_json::from_slice(&bytes)
                        .map_err(|err| ApiError::bad_request(format!("metadata: {err}")))?;
                    check_metadata(&fields.metadata)?;
                }
                other => {
                    return Err(ApiError::bad_request(format!("unexpected field {other:?}")));
                }
            }
            continue;
        }
        let earlier: u64 = staged.iter().map(|file| file.writer.size()).sum();
        let document_id = uuid::Uuid::now_v7().to_string();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        staged.push(Staged {
            writer: api.service.documents.writer(tenant, &document_id),
            document_id,
            file_name,
            content_type,
            checked: None,
        });
        let Some(file) = staged.last_mut() else {
            continue;
        };
        let limit = api.service.limits.max_bytes as u64;
        let mut sample = Sample::default();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            let size = sample.size() + chunk.len() as u64;
            if size > limit {
                let name = file.file_name.as_deref().unwrap_or("the file");
                return Err(ApiError::payload_too_large(format!(
                    "{name} has more than {limit} bytes, the limit"
                )));
            }
            if !room.fits(earlier + size) {
                let quotas = &api.service.quotas;
                let refused =
                    quotas.refuse_stored(tenant, room.used, room.limit, earlier + size, AT);
                return Err(refused.into());
            }
            sample.push(&chunk);
            file.writer.write(&chunk).await.map_err(write_error)?;
        }
        let checked = sample.check(file.file_name.as_deref(), file.content_type.as_deref());
        if let Some(Err(err)) = &checked {
            return Err(refusal(file.file_name.as_deref(), err));
        }
        file.checked = checked;
    }
    Ok(fields)
}

/// The collection, once every part is read: a valid collection and at least one file.
fn check_fields(fields: &Fields, staged: &[Staged]) -> Result<String, ApiError> {
    let collection = fields
        .collection
        .clone()
        .ok_or_else(|| ApiError::bad_request("missing field collection"))?;
    query_contract::check_name("collection", &collection)?;
    if staged.is_empty() {
        return Err(ApiError::bad_request("no file part"));
    }
    Ok(collection)
}

/// The upload check on a stored file read back whole (only large zips need it).
async fn check_stored(
    api: &Api,
    tenant: &TenantId,
    document_id: &str,
    file_name: &Option<String>,
    content_type: &Option<String>,
) -> Result<(), ApiError> {
    let bytes = api
        .service
        .documents
        .get_original(tenant, document_id)
        .await
        .map_err(ActionError::from)?
        .ok_or_else(|| ApiError::internal("a stored upload is missing from the store"))?;
    check_whole(&bytes, file_name.as_deref(), content_type.as_deref())
        .map(drop)
        .map_err(|err| refusal(file_name.as_deref(), &err))
}

/// Claims the content in the collection and submits the file, or answers the document
/// that already has it (then `writer`, if the object is not ended yet, is dropped unstored;
/// an ended one is deleted). A file that ends up not stored gives its bytes back to the
/// tenant's stored bytes.
async fn claim_and_submit(
    api: &Api,
    tenant: &TenantId,
    fields: &Fields,
    collection: &str,
    file: Ready,
) -> Result<Accepted, ApiError> {
    let Ready {
        document_id,
        file_name,
        content_type,
        content_hash,
        size,
        writer,
    } = file;
    let documents = &api.service.documents;
    let quotas = &api.service.quotas;
    let claim = documents
        .claim_content(tenant, collection, &content_hash, &document_id)
        .await;
    let claim = match claim {
        Ok(claim) => claim,
        Err(err) => {
            if writer.is_some() {
                // Dropped unstored.
                quotas.release_stored(tenant, size).await;
            }
            return Err(ActionError::from(err).into());
        }
    };
    if let Some(existing) = claim {
        let removed = match writer {
            Some(writer) => {
                writer.abort().await;
                size
            }
            None => documents
                .delete_original(tenant, &document_id)
                .await
                .map_err(ActionError::from)?,
        };
        quotas.release_stored(tenant, removed).await;
        return duplicate(&api.service, tenant, existing, file_name).await;
    }
    if let Some(writer) = writer
        && let Err(err) = writer.finish().await
    {
        quotas.release_stored(tenant, size).await;
        return Err(write_error(err));
    }
    let file = StoredFile {
        document_id,
        collection: collection.to_owned(),
        file_name,
        content_type,
        title: fields.title.clone(),
        metadata: fields.metadata.clone(),
    };
    submit_stored(&api.service, &api.publisher, tenant, file).await
}

/// Gives up every staged file: once this returns, none of them is in the store.
async fn abort(staged: Vec<Staged>) {
    for file in staged {
        file.writer.abort().await;
    }
}

/// 415 for a type we cannot read, 422 for a file that plainly is not what it claims (not
/// UTF-8, blank, a truncated PDF, a zip without a Word document): answered now. Only
/// cheap, bounded looks run here ([`Sample::check`], [`crate::extract::precheck`]); parsing and
/// decompression happen in the worker, where a hostile file fails its task with a reason
/// instead of tying up (or crashing) the HTTP server.
fn refusal(file_name: Option<&str>, err: &ExtractError) -> ApiError {
    let name = file_name.unwrap_or("the file");
    match err {
        ExtractError::Unsupported(_) => ApiError::unsupported_media_type(format!(
            "{name}: unsupported type (expected text, markdown, html, pdf or docx)"
        )),
        err => ApiError::unprocessable(format!("{name}: {err}")),
    }
}

/// A store that is full is 507 with `Retry-After` (nothing is evicted to make room);
/// other store failures are 503.
fn write_error(err: WriteError) -> ApiError {
    match err {
        WriteError::Full(_) => ApiError::insufficient_storage(
            "the documents store is full; retry after documents are deleted or the store's \
             bound (DA_INGEST_STORE_MAX_BYTES) is raised",
            STORE_FULL_RETRY_AFTER,
        ),
        WriteError::Store(reason) => {
            ApiError::unavailable(format!("documents object store: {reason}"))
        }
    }
}

/// A multipart framing error, or the body past the route's limit (413).
fn multipart_error(err: MultipartError) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large(err.body_text())
    } else {
        ApiError::new(err.status(), "bad_request", err.body_text())
    }
}

/// What a client refused for a full store is told to wait: space comes back only when an
/// operator or a deletion frees it, so not seconds.
const STORE_FULL_RETRY_AFTER: Duration = Duration::from_secs(60);

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
