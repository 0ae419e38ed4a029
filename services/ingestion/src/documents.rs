//! Documents: the originals in the JetStream object store `documents`
//! (`<tenant>/<document_id>`), their records in the KV bucket `documents`
//! (`<tenant>.<document_id>`), and a content index in `document_hashes`
//! (`<tenant>.<collection>.<sha256>`) so the same content is never indexed twice in a
//! collection.

use std::time::Duration;

use async_nats::jetstream::{self, object_store};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::TenantId;
use tokio::io::AsyncReadExt;

use crate::bucket::{JsonBucket, StateError};
use crate::original::OriginalWriter;
use crate::task::TaskStatus;

/// What is known about one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DocumentRecord {
    /// Its id.
    pub document_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its collection.
    pub collection: String,
    /// Its title, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The file name it came with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Its format (`pdf`, `html`…), once detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Where it came from, when fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Size of the original.
    pub size_bytes: u64,
    /// SHA-256 of the original (hex).
    pub content_hash: String,
    /// Chunks indexed.
    pub chunks: usize,
    /// Its ingestion's status.
    pub status: TaskStatus,
    /// Its ingestion task.
    pub task_id: String,
    /// When it arrived (RFC 3339).
    pub created_at: String,
}

/// The hex SHA-256 of `bytes`.
pub fn content_hash(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `bytes` as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The documents' stores.
#[derive(Clone)]
pub struct Documents {
    records: JsonBucket<DocumentRecord>,
    hashes: JsonBucket<String>,
    originals: object_store::ObjectStore,
}

impl Documents {
    /// Opens the buckets and the object store, creating any that is missing with `replicas`
    /// copies (`Settings::stream_replicas`, so originals survive losing a cluster node); an
    /// existing one is opened as it is, its replicas unchanged. The object store holds at
    /// most `max_bytes` and refuses what does not fit instead of evicting older originals
    /// (an existing store is given that bound too, unless it already holds more).
    pub async fn open(
        js: &jetstream::Context,
        replicas: usize,
        max_bytes: u64,
    ) -> Result<Self, StateError> {
        let records = JsonBucket::open(
            js,
            "documents",
            "Ingested documents, per tenant",
            Duration::ZERO,
            replicas,
        )
        .await?;
        let hashes = JsonBucket::open(
            js,
            "document_hashes",
            "Content hash to document id, per tenant and collection",
            Duration::ZERO,
            replicas,
        )
        .await?;
        let max_bytes = i64::try_from(max_bytes).unwrap_or(i64::MAX);
        let originals = match js.get_object_store("documents").await {
            Ok(store) => {
                bound_existing(js, max_bytes).await?;
                store
            }
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: "documents".to_owned(),
                    description: Some(
                        "Originals of ingested documents: <tenant>/<document_id>".to_owned(),
                    ),
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: replicas,
                    max_bytes,
                    ..Default::default()
                })
                .await
                .map_err(|err| nats("documents object store", err))?,
        };
        Ok(Self {
            records,
            hashes,
            originals,
        })
    }

    fn key(tenant: &TenantId, document_id: &str) -> String {
        format!("{tenant}.{document_id}")
    }

    fn object(tenant: &TenantId, document_id: &str) -> String {
        format!("{tenant}/{document_id}")
    }

    fn hash_key(tenant: &TenantId, collection: &str, hash: &str) -> String {
        let collection = hex(&Sha256::digest(collection.as_bytes())[..8]);
        format!("{tenant}.{collection}.{hash}")
    }

    /// Stores an original (chunked by the object store, so size is bounded only by limits).
    pub async fn put_original(
        &self,
        tenant: &TenantId,
        document_id: &str,
        bytes: &[u8],
    ) -> Result<(), StateError> {
        let mut reader = bytes;
        self.originals
            .put(Self::object(tenant, document_id).as_str(), &mut reader)
            .await
            .map(|_| ())
            .map_err(|err| nats("documents object store", err))
    }

    /// Starts storing an original that arrives in pieces (an upload): see
    /// [`OriginalWriter`]. Nothing is stored unless it is finished.
    pub fn writer(&self, tenant: &TenantId, document_id: &str) -> OriginalWriter {
        OriginalWriter::start(self.originals.clone(), Self::object(tenant, document_id))
    }

    /// Reads an original; `None` if absent.
    pub async fn get_original(
        &self,
        tenant: &TenantId,
        document_id: &str,
    ) -> Result<Option<Bytes>, StateError> {
        let mut object = match self.originals.get(Self::object(tenant, document_id)).await {
            Ok(object) => object,
            Err(err) if err.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(nats("documents object store", err)),
        };
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|err| nats("documents object store", err))?;
        Ok(Some(bytes.into()))
    }

    /// The size of a stored original; `None` if absent.
    pub async fn original_size(
        &self,
        tenant: &TenantId,
        document_id: &str,
    ) -> Result<Option<u64>, StateError> {
        match self.originals.info(Self::object(tenant, document_id)).await {
            Ok(info) if !info.deleted => Ok(Some(info.size as u64)),
            Ok(_) => Ok(None),
            Err(err) if err.kind() == object_store::InfoErrorKind::NotFound => Ok(None),
            Err(err) => Err(nats("documents object store", err)),
        }
    }

    /// Removes an original (nothing if absent); the bytes it held (0 if absent), for the
    /// tenant's stored bytes.
    pub async fn delete_original(
        &self,
        tenant: &TenantId,
        document_id: &str,
    ) -> Result<u64, StateError> {
        let Some(size) = self.original_size(tenant, document_id).await? else {
            return Ok(0);
        };
        match self
            .originals
            .delete(Self::object(tenant, document_id))
            .await
        {
            Ok(()) => Ok(size),
            Err(err) if err.kind() == object_store::DeleteErrorKind::NotFound => Ok(0),
            Err(err) => Err(nats("documents object store", err)),
        }
    }

    /// Claims `hash` in `collection` for `document_id`: `None` if it is now (or already was)
    /// this document's, else the id of the document that already has this content.
    pub async fn claim_content(
        &self,
        tenant: &TenantId,
        collection: &str,
        hash: &str,
        document_id: &str,
    ) -> Result<Option<String>, StateError> {
        let key = Self::hash_key(tenant, collection, hash);
        if self.hashes.create(&key, &document_id.to_owned()).await? {
            return Ok(None);
        }
        match self.hashes.get(&key).await? {
            Some((owner, _)) if owner != document_id => {
                // A claim left by a document since deleted does not count.
                if self.record(tenant, &owner).await?.is_some() {
                    return Ok(Some(owner));
                }
                self.hashes.put(&key, &document_id.to_owned()).await?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Releases a content claim (when its document is deleted).
    pub async fn release_content(
        &self,
        tenant: &TenantId,
        collection: &str,
        hash: &str,
    ) -> Result<(), StateError> {
        self.hashes
            .delete(&Self::hash_key(tenant, collection, hash))
            .await
    }

    /// A document of `tenant`; `None` if absent (or another tenant's).
    pub async fn record(
        &self,
        tenant: &TenantId,
        document_id: &str,
    ) -> Result<Option<DocumentRecord>, StateError> {
        Ok(self
            .records
            .get(&Self::key(tenant, document_id))
            .await?
            .map(|(v, _)| v))
    }

    /// Writes a record.
    pub async fn put_record(&self, record: &DocumentRecord) -> Result<(), StateError> {
        let tenant = TenantId::new(&record.tenant_id).map_err(|err| StateError::Corrupt {
            bucket: "documents",
            key: record.document_id.clone(),
            reason: err.to_string(),
        })?;
        self.records
            .put(&Self::key(&tenant, &record.document_id), record)
            .await
            .map(|_| ())
    }

    /// Changes a record with compare-and-set.
    pub async fn update_record(
        &self,
        tenant: &TenantId,
        document_id: &str,
        change: impl FnMut(&mut DocumentRecord),
    ) -> Result<DocumentRecord, StateError> {
        self.records
            .update(&Self::key(tenant, document_id), change)
            .await
    }

    /// Removes a record.
    pub async fn delete_record(
        &self,
        tenant: &TenantId,
        document_id: &str,
    ) -> Result<(), StateError> {
        self.records.delete(&Self::key(tenant, document_id)).await
    }

    /// The tenant's documents, optionally of one collection.
    pub async fn list(
        &self,
        tenant: &TenantId,
        collection: Option<&str>,
    ) -> Result<Vec<DocumentRecord>, StateError> {
        let mut records = self.records.scan(&format!("{tenant}.")).await?;
        if let Some(collection) = collection {
            records.retain(|r| r.collection == collection);
        }
        Ok(records)
    }
}

/// The name of the object store's stream.
const ORIGINALS_STREAM: &str = "OBJ_documents";

/// Gives a store created before it had a bound (or with another) `max_bytes` and
/// `discard: new`. Not when it already holds more than that: lowering the bound below what
/// is stored would make the server delete originals.
async fn bound_existing(js: &jetstream::Context, max_bytes: i64) -> Result<(), StateError> {
    let mut stream = js
        .get_stream(ORIGINALS_STREAM)
        .await
        .map_err(|err| nats("documents object store", err))?;
    let info = stream
        .info()
        .await
        .map_err(|err| nats("documents object store", err))?;
    let mut config = info.config.clone();
    if config.max_bytes == max_bytes && config.discard == jetstream::stream::DiscardPolicy::New {
        return Ok(());
    }
    let stored = i64::try_from(info.state.bytes).unwrap_or(i64::MAX);
    if stored > max_bytes {
        tracing::warn!(
            stored,
            max_bytes,
            "the documents object store already holds more than DA_INGEST_STORE_MAX_BYTES; \
             its bound is left as it is"
        );
        return Ok(());
    }
    config.max_bytes = max_bytes;
    config.discard = jetstream::stream::DiscardPolicy::New;
    js.update_stream(config)
        .await
        .map(|_| ())
        .map_err(|err| nats("documents object store", err))
}

fn nats(what: &'static str, err: impl std::fmt::Display) -> StateError {
    StateError::Nats {
        bucket: what,
        reason: err.to_string(),
    }
}
