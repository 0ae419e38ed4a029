//! Qdrant Edge in process: one on-disk shard under the data dir holding every tenant's chunks.
//!
//! [`EdgeShard`] is synchronous, so every call runs on tokio's blocking pool. Two things about
//! qdrant-edge 0.7.2 shape this module:
//!
//! - Loading a shard does not replay its write-ahead log: only what was flushed to the
//!   segments survives a crash. So every write is flushed before it returns.
//! - [`EdgeShard::flush`] panics if another thread holds the WAL lock, which an update does
//!   for its whole run (and on I/O errors). So writes (update + flush) are serialized by our
//!   own lock, reads never take it, and a flush panic becomes [`StoreError::Backend`].
//!
//! The shard's WAL is file-locked: while one [`EdgeStore`] has a dir open, opening it again
//! (in this process or another) fails. That is the "one writer" the service relies on.
//!
//! qdrant-edge has no background optimizer: new points land in a plain segment that is
//! searched exhaustively (11 ms per search at 100k 384-d chunks on these machines). So a
//! thread of ours runs the optimizers (segment merges, the HNSW index) once writes have
//! been quiet for [`OPTIMIZE_AFTER`], as a Qdrant server does in the background. They run
//! off the write path: writes and searches go on while the index builds
//! ([`Inner::optimize`] says how). The HNSW build uses at most as many threads as the
//! machine has cores (qdrant's own bound), on top of this one.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    CountRequest, CreateIndex, CreateVectorName, DEFAULT_VECTOR_NAME, Distance, EdgeConfig,
    EdgeShard, EdgeSparseVectorParams, EdgeVectorParams, FieldCondition, FieldIndexOperations,
    Filter, Fusion, JsonPath, KeywordIndexParams, Match, Modifier, NamedQuery, OperationError,
    PayloadFieldSchema, PayloadSchemaParams, PayloadSchemaType, PointId, PointInsertOperations,
    PointOperations, PointStructPersisted, Prefetch, QueryEnum, QueryRequest, ScoringQuery,
    SparseVector, UpdateOperation, ValueVariants, VectorInternal, VectorNameOperations,
    VectorPersisted, VectorStructPersisted, WithPayloadInterface, WithVector,
};
use serde_json::{Map, Value};

use super::lexical::{self, LEXICAL_VECTOR, RRF_K, Terms};
use super::{
    ChunkPoint, Scope, ScoredChunk, SearchRequest, StoreError, StoredChunk, VectorStore,
    check_dimensions,
};

/// How long writes must have stopped before the optimizers run.
pub const OPTIMIZE_AFTER: Duration = Duration::from_secs(1);

/// How long a flush is tried again while the optimizer holds the segments.
const FLUSH_PATIENCE: Duration = Duration::from_secs(5);

/// The file qdrant-edge writes its config to; its presence means a shard lives in the dir.
const EDGE_CONFIG_FILE: &str = "edge_config.json";

/// The vector store on a Qdrant Edge shard in a local directory (the default backend).
#[derive(Debug)]
pub struct EdgeStore {
    inner: Arc<Inner>,
    dimensions: usize,
}

/// What the blocking tasks share.
#[derive(Debug)]
struct Inner {
    /// Always `Some` until dropped (see the `Drop` impl).
    shard: Option<EdgeShard>,
    /// Held by every write from its update through its flush (see the module docs).
    writes: Mutex<()>,
    /// Held while the optimizers run: one run at a time (the background thread's or an
    /// [`EdgeStore::optimize`] call's), never two planning the same segments.
    optimizing: Mutex<()>,
    /// When the last write the optimizers have not seen happened, if any.
    unoptimized_write: Mutex<Option<Instant>>,
}

impl EdgeStore {
    /// Opens the shard in `dir`, creating it (and the dir) if there is none yet, and makes
    /// sure the payload indexes exist. Fails if the shard there holds vectors of another
    /// length or distance, since every later write or search would fail or mislead.
    pub fn open(dir: &Path, dimensions: usize) -> Result<Self, StoreError> {
        Self::open_with(dir, dimensions, new_config(dimensions))
    }

    /// [`EdgeStore::open`], creating a new shard with `config` (tests lower its indexing
    /// threshold, so a small shard gets an HNSW index).
    fn open_with(dir: &Path, dimensions: usize, config: EdgeConfig) -> Result<Self, StoreError> {
        if dimensions == 0 {
            return Err(StoreError::Backend(
                "edge store: vectors must have at least one dimension".to_owned(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!("edge store: creating {}: {e}", dir.display()))
        })?;
        let shard = if shard_exists(dir) {
            let shard = EdgeShard::load(dir, None)
                .map_err(|e| backend(&format!("loading the shard at {}", dir.display()), e))?;
            check_config(&shard.config(), dir, dimensions)?;
            shard
        } else {
            EdgeShard::new(dir, config)
                .map_err(|e| backend(&format!("creating a shard at {}", dir.display()), e))?
        };
        // Shards made before hybrid search get the sparse vector; their chunks are found
        // by words once they are indexed again.
        if !shard.config().sparse_vectors.contains_key(LEXICAL_VECTOR) {
            shard
                .update(add_lexical_vector()?)
                .map_err(|e| backend("adding the lexical vector", e))?;
        }
        // Creating an index that exists is a no-op, so shards made before an index was
        // added get it too.
        for operation in payload_indexes()? {
            shard
                .update(operation)
                .map_err(|e| backend("creating payload indexes", e))?;
        }
        flush(&shard)?;
        let inner = Arc::new(Inner {
            shard: Some(shard),
            writes: Mutex::new(()),
            optimizing: Mutex::new(()),
            // Optimize once after opening: a shard written by an older run may not be.
            unoptimized_write: Mutex::new(Some(Instant::now())),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("edge-optimizer".to_owned())
            .spawn(move || optimize_when_quiet(weak))
            .map_err(|e| StoreError::Backend(format!("edge store: starting the optimizer: {e}")))?;
        Ok(Self { inner, dimensions })
    }

    /// Runs the optimizers now (segment merges, HNSW index) and waits for them; the
    /// background thread does this by itself once writes pause.
    pub async fn optimize(&self) -> Result<(), StoreError> {
        self.blocking(|inner| inner.optimize()).await
    }

    /// Runs `f` on the blocking pool, since every shard call blocks on disk.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Backend(format!("edge store: shard task failed: {e}")))?
    }
}

impl Drop for Inner {
    /// qdrant-edge flushes when its shard is dropped and panics if that fails (say, the
    /// directory was removed first, as a test's temp dir is); writes were already flushed
    /// one by one, so such a panic is contained here rather than taking the process down.
    fn drop(&mut self) {
        if let Some(shard) = self.shard.take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(shard)));
        }
    }
}

impl Inner {
    /// The shard; present from `open` until drop.
    fn shard(&self) -> &EdgeShard {
        self.shard
            .as_ref()
            .expect("the shard is only taken out when the store is dropped")
    }

    /// Runs the optimizers beside writes and searches: qdrant-edge's optimizers work on
    /// copies behind proxy segments (as a Qdrant server's do), so writes go on into the
    /// proxies while the HNSW index builds, and only the swap at the end holds the segments
    /// for a moment. Only the final flush is serialized with writes (see the module docs).
    fn optimize(&self) -> Result<(), StoreError> {
        let _alone = self
            .optimizing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Cleared first: a write landing while the optimizers run asks for another pass.
        *self
            .unoptimized_write
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let shard = self.shard();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shard.optimize()))
            .map_err(|_| StoreError::Backend("edge store: the optimizer panicked".to_owned()))?
            .map_err(|e| backend("optimizing", e))?;
        let _serialized = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        flush(shard)
    }

    /// Notes a write the optimizers have not seen yet.
    fn written(&self) {
        *self
            .unoptimized_write
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// Whether writes happened and then paused for [`OPTIMIZE_AFTER`].
    fn optimization_due(&self) -> bool {
        matches!(
            *self.unoptimized_write.lock().unwrap_or_else(PoisonError::into_inner),
            Some(at) if at.elapsed() >= OPTIMIZE_AFTER
        )
    }

    /// Applies one write and flushes it to the segments, so it survives a crash.
    fn write(&self, context: &str, operation: UpdateOperation) -> Result<(), StoreError> {
        let _serialized = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        self.shard()
            .update(operation)
            .map_err(|e| backend(context, e))?;
        self.written();
        flush(self.shard())
    }

    /// How many points match `filter`, exactly.
    fn count(&self, filter: Filter) -> Result<u64, StoreError> {
        let count = self
            .shard()
            .count(CountRequest {
                filter: Some(filter),
                exact: true,
            })
            .map_err(|e| backend("counting", e))?;
        Ok(count as u64)
    }
}

#[async_trait]
impl VectorStore for EdgeStore {
    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn upsert(&self, points: Vec<ChunkPoint>) -> Result<(), StoreError> {
        check_dimensions(self.dimensions, &points)?;
        if points.is_empty() {
            return Ok(());
        }
        let points = points
            .into_iter()
            .map(to_edge_point)
            .collect::<Result<Vec<_>, _>>()?;
        let operation = UpdateOperation::PointOperation(PointOperations::UpsertPoints(
            PointInsertOperations::PointsList(points),
        ));
        self.blocking(move |inner| inner.write("upserting points", operation))
            .await
    }

    async fn search(&self, request: SearchRequest<'_>) -> Result<Vec<ScoredChunk>, StoreError> {
        if request.vector.len() != self.dimensions {
            return Err(StoreError::Dimensions {
                expected: self.dimensions,
                got: request.vector.len(),
            });
        }
        let filter = search_filter(&request)?;
        if request.top_k == 0 {
            return Ok(Vec::new());
        }
        let dense = ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::default_dense(
            request.vector.to_vec(),
        )));
        let threshold = request.score_threshold.map(OrderedFloat);
        let (prefetches, query, score_threshold) = match request.words() {
            None => (Vec::new(), dense, threshold),
            Some(words) => {
                // Each side on its own filter: the tenant bounds both.
                let side = |query, score_threshold| Prefetch {
                    prefetches: Vec::new(),
                    query: Some(query),
                    limit: lexical::candidates(request.top_k),
                    params: None,
                    filter: Some(filter.clone()),
                    score_threshold,
                };
                let fused = ScoringQuery::Fusion(Fusion::Rrf {
                    k: RRF_K,
                    weights: None,
                });
                (
                    vec![side(dense, threshold), side(sparse_query(words), None)],
                    fused,
                    None,
                )
            }
        };
        let query = QueryRequest {
            prefetches,
            query: Some(query),
            filter: Some(filter),
            score_threshold,
            limit: request.top_k,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(true),
        };
        let hits = self
            .blocking(move |inner| {
                inner
                    .shard()
                    .query(query)
                    .map_err(|e| backend("searching", e))
            })
            .await?;
        hits.into_iter()
            .map(|hit| {
                let payload = hit.payload.map(|p| p.0).unwrap_or_default();
                Ok(ScoredChunk {
                    chunk: from_payload(payload)?,
                    score: hit.score,
                })
            })
            .collect()
    }

    async fn delete(&self, scope: Scope<'_>) -> Result<u64, StoreError> {
        let filter = scope_filter(&scope)?;
        self.blocking(move |inner| {
            // Counted under the write lock, so no write of ours lands in between.
            let _serialized = inner.writes.lock().unwrap_or_else(PoisonError::into_inner);
            let count = inner.count(filter.clone())?;
            if count > 0 {
                inner
                    .shard()
                    .update(UpdateOperation::PointOperation(
                        PointOperations::DeletePointsByFilter(filter),
                    ))
                    .map_err(|e| backend("deleting points", e))?;
                inner.written();
                flush(inner.shard())?;
            }
            Ok(count)
        })
        .await
    }

    async fn count(&self, scope: Scope<'_>) -> Result<u64, StoreError> {
        let filter = scope_filter(&scope)?;
        self.blocking(move |inner| inner.count(filter)).await
    }
}

/// An exact-match condition on one metadata entry, shared by both backends so they accept
/// and reject the same filters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MetadataMatch {
    /// A string: keyword match.
    Keyword(String),
    /// An integer that fits in an i64: integer match.
    Integer(i64),
    /// A boolean: bool match.
    Bool(bool),
}

/// One metadata filter entry, checked and ready for either backend.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetadataCondition {
    /// The metadata key, as the caller wrote it (for errors).
    pub(crate) key: String,
    /// Its payload path: `metadata.<key>`, the key quoted when Qdrant's syntax needs it.
    pub(crate) path: String,
    /// The value to match.
    pub(crate) matched: MetadataMatch,
}

/// Checks a metadata filter and turns it into conditions. Floats (no exact match in
/// Qdrant), integers beyond i64, arrays, objects, nulls and keys a path cannot hold are
/// [`StoreError::Filter`].
pub(crate) fn metadata_conditions(
    filter: &Map<String, Value>,
) -> Result<Vec<MetadataCondition>, StoreError> {
    filter
        .iter()
        .map(|(key, value)| {
            let rejected = || StoreError::Filter { key: key.clone() };
            let matched = match value {
                Value::String(s) => MetadataMatch::Keyword(s.clone()),
                Value::Bool(b) => MetadataMatch::Bool(*b),
                Value::Number(n) => MetadataMatch::Integer(n.as_i64().ok_or_else(rejected)?),
                Value::Null | Value::Array(_) | Value::Object(_) => return Err(rejected()),
            };
            Ok(MetadataCondition {
                key: key.clone(),
                path: metadata_path(key).ok_or_else(rejected)?,
                matched,
            })
        })
        .collect()
}

/// The payload path of a metadata key, or `None` if the path syntax cannot express it.
fn metadata_path(key: &str) -> Option<String> {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if plain {
        Some(format!("metadata.{key}"))
    } else if key.contains(['"', '\\']) {
        None
    } else {
        Some(format!("metadata.\"{key}\""))
    }
}

/// Whether `dir` already holds a shard (its config, or any segment).
fn shard_exists(dir: &Path) -> bool {
    dir.join(EDGE_CONFIG_FILE).is_file()
        || std::fs::read_dir(dir.join("segments"))
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false)
}

/// A new shard's config: one unnamed dense cosine vector and the lexical sparse vector
/// (weighted by inverse document frequency at query time), vectors and payload on disk.
fn new_config(dimensions: usize) -> EdgeConfig {
    EdgeConfig::builder()
        .vector(
            DEFAULT_VECTOR_NAME,
            EdgeVectorParams::builder(dimensions, Distance::Cosine)
                .on_disk(true)
                .build(),
        )
        .sparse_vector(
            LEXICAL_VECTOR,
            EdgeSparseVectorParams::builder()
                .modifier(Modifier::Idf)
                .build(),
        )
        .on_disk_payload(true)
        .build()
}

/// The operation adding the lexical sparse vector to a shard made without it (qdrant-edge
/// exports no constructor for its config, so it is read from its JSON form).
fn add_lexical_vector() -> Result<UpdateOperation, StoreError> {
    let config = serde_json::from_value(serde_json::json!({"sparse": {"modifier": "idf"}}))
        .map_err(|e| {
            StoreError::Backend(format!("edge store: the lexical vector's config: {e}"))
        })?;
    Ok(UpdateOperation::VectorNameOperation(
        VectorNameOperations::CreateVectorName(CreateVectorName {
            vector_name: LEXICAL_VECTOR.to_owned(),
            config,
        }),
    ))
}

/// A query for the chunks whose words best match `words` (BM25).
fn sparse_query(words: Terms) -> ScoringQuery {
    ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
        query: VectorInternal::Sparse(SparseVector {
            indices: words.indices,
            values: words.values,
        }),
        using: Some(LEXICAL_VECTOR.to_owned()),
    }))
}

/// Refuses a loaded shard whose vectors do not fit this store.
fn check_config(config: &EdgeConfig, dir: &Path, dimensions: usize) -> Result<(), StoreError> {
    match config.vectors.get(DEFAULT_VECTOR_NAME) {
        Some(params) if params.size == dimensions && params.distance == Distance::Cosine => Ok(()),
        Some(params) => Err(StoreError::Backend(format!(
            "edge store: the shard at {} holds {}-dimension {:?} vectors; \
             this store needs {dimensions}-dimension cosine vectors",
            dir.display(),
            params.size,
            params.distance
        ))),
        None => Err(StoreError::Backend(format!(
            "edge store: the shard at {} has no default vector",
            dir.display()
        ))),
    }
}

/// The index operations for the fields every filter uses: the tenant (marked as the tenant
/// key, so Qdrant can lay segments out by tenant), the collection and the document.
fn payload_indexes() -> Result<Vec<UpdateOperation>, StoreError> {
    let tenant =
        PayloadFieldSchema::FieldParams(PayloadSchemaParams::Keyword(KeywordIndexParams {
            is_tenant: Some(true),
            ..KeywordIndexParams::default()
        }));
    let keyword = PayloadFieldSchema::FieldType(PayloadSchemaType::Keyword);
    [
        ("tenant_id", tenant),
        ("collection", keyword.clone()),
        ("document_id", keyword),
    ]
    .into_iter()
    .map(|(field, schema)| {
        Ok(UpdateOperation::FieldIndexOperation(
            FieldIndexOperations::CreateIndex(CreateIndex {
                field_name: path(field)?,
                field_schema: Some(schema),
            }),
        ))
    })
    .collect()
}

/// The edge form of a point: its UUID, its unnamed dense vector, the sparse vector of its
/// words and the chunk as payload.
fn to_edge_point(point: ChunkPoint) -> Result<PointStructPersisted, StoreError> {
    let payload = match serde_json::to_value(&point.chunk) {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            return Err(StoreError::Backend(format!(
                "edge store: a chunk serialized to {other}, not an object"
            )));
        }
        Err(e) => {
            return Err(StoreError::Backend(format!(
                "edge store: serializing a chunk: {e}"
            )));
        }
    };
    let words = lexical::document_terms(&point.chunk.text);
    let mut vectors = std::collections::HashMap::from([(
        DEFAULT_VECTOR_NAME.to_owned(),
        VectorPersisted::Dense(point.vector),
    )]);
    if !words.is_empty() {
        vectors.insert(
            LEXICAL_VECTOR.to_owned(),
            VectorPersisted::Sparse(SparseVector {
                indices: words.indices,
                values: words.values,
            }),
        );
    }
    Ok(PointStructPersisted {
        id: PointId::Uuid(point.id),
        vector: VectorStructPersisted::Named(vectors),
        payload: Some(qdrant_edge::Payload(payload)),
    })
}

/// Reads a stored payload back into the chunk it was written from.
fn from_payload(payload: Map<String, Value>) -> Result<StoredChunk, StoreError> {
    serde_json::from_value(Value::Object(payload)).map_err(|e| {
        StoreError::Backend(format!("edge store: a stored payload is not a chunk: {e}"))
    })
}

/// The search filter: the tenant, then the collections (any of them), then every metadata
/// match.
fn search_filter(request: &SearchRequest<'_>) -> Result<Filter, StoreError> {
    let mut must = vec![keyword("tenant_id", request.tenant.as_str())?];
    if !request.collections.is_empty() {
        must.push(condition(
            "collection",
            Match::from(request.collections.to_vec()),
        )?);
    }
    if let Some(filter) = request.filter {
        for condition in metadata_conditions(filter)? {
            let value = match condition.matched {
                MetadataMatch::Keyword(s) => ValueVariants::String(s),
                MetadataMatch::Integer(i) => ValueVariants::Integer(i),
                MetadataMatch::Bool(b) => ValueVariants::Bool(b),
            };
            let key = path(&condition.path).map_err(|_| StoreError::Filter {
                key: condition.key.clone(),
            })?;
            must.push(qdrant_edge::Condition::Field(FieldCondition::new_match(
                key,
                Match::new_value(value),
            )));
        }
    }
    Ok(must_all(must))
}

/// The filter for a scope: the tenant always, then the collection and document if given.
fn scope_filter(scope: &Scope<'_>) -> Result<Filter, StoreError> {
    let mut must = vec![keyword("tenant_id", scope.tenant.as_str())?];
    if let Some(collection) = scope.collection {
        must.push(keyword("collection", collection)?);
    }
    if let Some(document_id) = scope.document_id {
        must.push(keyword("document_id", document_id)?);
    }
    Ok(must_all(must))
}

/// A filter requiring every condition.
fn must_all(must: Vec<qdrant_edge::Condition>) -> Filter {
    Filter {
        must: Some(must),
        ..Filter::new()
    }
}

/// `field == value` on a keyword field.
fn keyword(field: &str, value: &str) -> Result<qdrant_edge::Condition, StoreError> {
    condition(field, Match::from(value.to_owned()))
}

/// A match condition on a top-level payload field.
fn condition(field: &str, matched: Match) -> Result<qdrant_edge::Condition, StoreError> {
    Ok(qdrant_edge::Condition::Field(FieldCondition::new_match(
        path(field)?,
        matched,
    )))
}

/// Parses a payload path.
fn path(field: &str) -> Result<JsonPath, StoreError> {
    field
        .parse()
        .map_err(|()| StoreError::Backend(format!("edge store: bad payload path {field:?}")))
}

/// Flushes the WAL and segments to disk. qdrant-edge panics instead of returning an error
/// when that fails, and also when it cannot take the segments at once (the optimizer holds
/// them for a moment while it swaps in what it built); so a panic is tried again for up to
/// [`FLUSH_PATIENCE`], then becomes a backend error.
fn flush(shard: &EdgeShard) -> Result<(), StoreError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shard.flush()))
        else {
            return Ok(());
        };
        if started.elapsed() >= FLUSH_PATIENCE {
            let reason = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown reason");
            return Err(StoreError::Backend(format!(
                "edge store: flushing to disk failed: {reason}"
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The optimizer thread: checks twice a second whether writes paused, runs the optimizers
/// if so, and ends when the store is dropped.
fn optimize_when_quiet(store: Weak<Inner>) {
    loop {
        std::thread::sleep(OPTIMIZE_AFTER / 2);
        let Some(inner) = store.upgrade() else {
            return;
        };
        if inner.optimization_due()
            && let Err(err) = inner.optimize()
        {
            tracing::warn!(error = %err, "edge store: optimizing");
        }
    }
}

/// A backend error with what we were doing.
fn backend(context: &str, error: OperationError) -> StoreError {
    StoreError::Backend(format!("edge store: {context}: {error}"))
}

#[cfg(test)]
mod tests {
    use shared::TenantId;

    use super::*;
    use crate::store::conformance::{self, conformance_tests};

    /// A fresh store in its own temporary dir; the store is dropped before the dir.
    struct Fixture {
        store: EdgeStore,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        fn store(&self) -> &dyn VectorStore {
            &self.store
        }
    }

    async fn fixture() -> Option<Fixture> {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EdgeStore::open(dir.path(), conformance::DIMENSIONS).expect("open store");
        Some(Fixture { store, _dir: dir })
    }

    conformance_tests!(fixture);

    #[tokio::test]
    async fn data_survives_drop_and_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EdgeStore::open(dir.path(), conformance::DIMENSIONS).expect("open store");
        conformance::write_durability_fixture(&store).await;
        drop(store);

        let store = EdgeStore::open(dir.path(), conformance::DIMENSIONS).expect("reopen store");
        conformance::check_durability_fixture(&store).await;
        // Writes after a reopen land too, and a second reopen still sees everything.
        conformance::write_after_reopen(&store).await;
        drop(store);
        let store = EdgeStore::open(dir.path(), conformance::DIMENSIONS).expect("reopen again");
        conformance::check_after_reopen(&store).await;
    }

    /// A shard written before hybrid search (one dense vector, no lexical one) opens: the
    /// lexical vector is added, its chunks are still found by their vectors, and chunks
    /// written from then on are found by their words too.
    #[tokio::test]
    async fn a_shard_from_before_hybrid_search_gets_the_lexical_vector() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tenant = TenantId::new("acme").expect("tenant");
        let chunk = |index: u32, text: &str| StoredChunk {
            tenant_id: tenant.as_str().to_owned(),
            collection: "docs".to_owned(),
            document_id: "manual".to_owned(),
            chunk_index: index,
            text: text.to_owned(),
            metadata: Map::new(),
        };
        {
            let dense_only = EdgeConfig::builder()
                .vector(
                    DEFAULT_VECTOR_NAME,
                    EdgeVectorParams::builder(conformance::DIMENSIONS, Distance::Cosine).build(),
                )
                .build();
            let old = EdgeShard::new(dir.path(), dense_only).expect("an old shard");
            let point = ChunkPoint::new(
                chunk(0, "Vacuum reclaims storage."),
                vec![1.0, 0.0, 0.0, 0.0],
            );
            let payload = match serde_json::to_value(&point.chunk).expect("payload") {
                Value::Object(map) => map,
                other => panic!("a chunk serialized to {other}"),
            };
            old.update(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(vec![
                    PointStructPersisted {
                        id: PointId::Uuid(point.id),
                        vector: VectorStructPersisted::Single(point.vector),
                        payload: Some(qdrant_edge::Payload(payload)),
                    },
                ])),
            ))
            .expect("an old point");
            old.flush();
        }

        let store = EdgeStore::open(dir.path(), conformance::DIMENSIONS).expect("open");
        let point = ChunkPoint::new(
            chunk(1, "pg_dump writes an archive."),
            vec![0.0, 1.0, 0.0, 0.0],
        );
        store.upsert(vec![point]).await.expect("a new point");
        let search = |keywords, vector: &'static [f32]| SearchRequest {
            tenant: &tenant,
            collections: &[],
            vector,
            keywords,
            top_k: 1,
            score_threshold: None,
            filter: None,
        };
        let best = |hits: Vec<ScoredChunk>| hits.first().map(|hit| hit.chunk.chunk_index);
        let old = store.search(search(None, &[1.0, 0.0, 0.0, 0.0])).await;
        assert_eq!(best(old.expect("search")), Some(0), "by its vector");
        let new = store
            .search(search(Some("pg_dump archive"), &[1.0, 0.0, 0.0, 0.0]))
            .await;
        assert_eq!(best(new.expect("search")), Some(1), "by its words");
    }

    /// Set in the child process of [`writes_survive_a_crash`]: the dir to write to.
    const CRASH_DIR: &str = "QUERY_EDGE_CRASH_TEST_DIR";
    /// The child's exit code once it has written everything.
    const CRASHED: i32 = 17;

    /// A crash skips `Drop` and its flush, and qdrant-edge does not replay its WAL on load,
    /// so only the flush after every write keeps the data. The writes happen in a child
    /// process (this test binary again) that exits without dropping anything; the shard's
    /// WAL lock keeps a second open in one process from working.
    #[tokio::test]
    async fn writes_survive_a_crash() {
        if let Some(dir) = std::env::var_os(CRASH_DIR) {
            let store = EdgeStore::open(Path::new(&dir), conformance::DIMENSIONS).expect("open");
            conformance::write_durability_fixture(&store).await;
            std::process::exit(CRASHED);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let this_test = format!(
            "{}::writes_survive_a_crash",
            module_path!().split_once("::").map_or("", |(_, rest)| rest)
        );
        let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([this_test.as_str(), "--exact", "--test-threads=1"])
            .env(CRASH_DIR, dir.path())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run the writing child");
        assert_eq!(
            status.code(),
            Some(CRASHED),
            "the child did not finish writing"
        );

        let store = EdgeStore::open(dir.path(), conformance::DIMENSIONS).expect("reopen store");
        conformance::check_durability_fixture(&store).await;
    }

    /// A deterministic unit vector of [`INDEXED_DIMENSIONS`] for point `i`.
    fn unit_vector(i: u32) -> Vec<f32> {
        let mut state = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let raw: Vec<f32> = (0..INDEXED_DIMENSIONS)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
        raw.into_iter().map(|x| x / norm).collect()
    }

    /// Length of the vectors in [`writes_and_searches_go_on_while_the_index_builds`].
    const INDEXED_DIMENSIONS: usize = 16;

    /// Points `range` of one tenant's document, each with its own vector.
    fn indexed_points(tenant: &TenantId, range: std::ops::Range<u32>) -> Vec<ChunkPoint> {
        range
            .map(|i| {
                let chunk = StoredChunk {
                    tenant_id: tenant.as_str().to_owned(),
                    collection: "docs".to_owned(),
                    document_id: "manual".to_owned(),
                    chunk_index: i,
                    text: format!("chunk {i}"),
                    metadata: Map::new(),
                };
                ChunkPoint::new(chunk, unit_vector(i))
            })
            .collect()
    }

    /// The best hit for point `i`'s own vector is point `i`.
    async fn finds(store: &EdgeStore, tenant: &TenantId, i: u32) {
        let vector = unit_vector(i);
        let hits = store
            .search(SearchRequest {
                tenant,
                collections: &[],
                vector: &vector,
                keywords: None,
                top_k: 1,
                score_threshold: None,
                filter: None,
            })
            .await
            .expect("search");
        let best = hits.first().map(|hit| hit.chunk.chunk_index);
        assert_eq!(best, Some(i), "search for point {i}");
    }

    /// The optimizers run beside writes and searches (not under the write lock): while the
    /// HNSW index of a shard builds, points are written and found, and afterwards every
    /// point is there exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_and_searches_go_on_while_the_index_builds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = new_config(INDEXED_DIMENSIONS);
        // 1 KiB: every segment past a few points gets an HNSW index.
        config.optimizers.indexing_threshold = Some(1);
        let store = Arc::new(
            EdgeStore::open_with(dir.path(), INDEXED_DIMENSIONS, config).expect("open store"),
        );
        let tenant = TenantId::new("acme").expect("tenant");
        for first in (0..3_000).step_by(500) {
            let points = indexed_points(&tenant, first..first + 500);
            store.upsert(points).await.expect("upsert");
        }

        let optimizing = tokio::spawn({
            let store = Arc::clone(&store);
            async move { store.optimize().await }
        });
        for first in (3_000..4_000).step_by(100) {
            let points = indexed_points(&tenant, first..first + 100);
            store.upsert(points).await.expect("upsert while optimizing");
            finds(&store, &tenant, first + 50).await;
            finds(&store, &tenant, first / 3).await;
        }
        optimizing.await.expect("optimizer task").expect("optimize");

        let everything = Scope {
            tenant: &tenant,
            collection: None,
            document_id: None,
        };
        assert_eq!(store.count(everything).await.expect("count"), 4_000);
        for i in (0..4_000).step_by(97) {
            finds(&store, &tenant, i).await;
        }
    }

    #[tokio::test]
    async fn a_dir_open_in_one_store_cannot_be_opened_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let _first = EdgeStore::open(dir.path(), conformance::DIMENSIONS).expect("open store");
        let second = EdgeStore::open(dir.path(), conformance::DIMENSIONS);
        assert!(matches!(second, Err(StoreError::Backend(_))), "{second:?}");
    }

    #[tokio::test]
    async fn reopening_with_other_dimensions_fails() {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(EdgeStore::open(dir.path(), 4).expect("open store"));
        let err = EdgeStore::open(dir.path(), 8).expect_err("8 dimensions on a 4-dimension shard");
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    }

    #[test]
    fn metadata_paths_quote_what_needs_quoting() {
        assert_eq!(metadata_path("lang").as_deref(), Some("metadata.lang"));
        assert_eq!(
            metadata_path("page-no_2").as_deref(),
            Some("metadata.page-no_2")
        );
        assert_eq!(metadata_path("a.b").as_deref(), Some("metadata.\"a.b\""));
        assert_eq!(metadata_path("x[0]").as_deref(), Some("metadata.\"x[0]\""));
        assert_eq!(metadata_path("say \"hi\""), None);
        for key in ["lang", "a.b", "x[0]", "with space"] {
            let parsed = path(&metadata_path(key).expect("quotable"));
            assert!(parsed.is_ok(), "{key}");
        }
    }
}
