//! A Qdrant server or cluster over gRPC, for deployments that set `QDRANT_URL`.
//!
//! One Qdrant collection holds every tenant's chunks, told apart by the `tenant_id` payload
//! field (indexed with `is_tenant`, as Qdrant's multitenancy guide advises). Filters are the
//! same as the edge store's, so both pass the same conformance tests. qdrant-client is built
//! without its `serde` feature, so payloads are converted to and from JSON here.

use std::collections::HashMap;

use async_trait::async_trait;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    CreateVectorNameRequestBuilder, DeletePointsBuilder, Distance, FieldType, Filter,
    KeywordIndexParamsBuilder, ListValue, Modifier, PointStruct, PrefetchQueryBuilder, Query,
    QueryPointsBuilder, RrfBuilder, SparseVectorCreationConfigBuilder, SparseVectorParamsBuilder,
    SparseVectorsConfigBuilder, Struct, UpsertPointsBuilder, Value, Vector, VectorInput,
    VectorParamsBuilder, vectors_config,
};
use serde_json::{Map, Value as Json};

use super::edge::{MetadataMatch, metadata_conditions};
use super::lexical::{self, LEXICAL_VECTOR, RRF_K};
use super::{
    ChunkPoint, Scope, ScoredChunk, SearchRequest, StoreError, StoredChunk, VectorStore,
    check_dimensions,
};

/// The vector store in one collection of a Qdrant server.
pub struct QdrantServerStore {
    client: Qdrant,
    collection: String,
    dimensions: usize,
    /// Whether the collection holds the lexical vector: one made before hybrid search, on
    /// a server that cannot add a vector to a collection, is searched by vectors alone.
    lexical: bool,
}

impl std::fmt::Debug for QdrantServerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds the API key, so it is left out.
        f.debug_struct("QdrantServerStore")
            .field("collection", &self.collection)
            .field("dimensions", &self.dimensions)
            .finish_non_exhaustive()
    }
}

impl QdrantServerStore {
    /// Connects to the server at `url` (gRPC, usually port 6334) and makes sure
    /// `collection_name` exists with `dimensions`-length cosine vectors and the payload
    /// indexes every filter uses. Safe to call on every start: an existing collection is
    /// kept (and refused if its vectors do not fit), existing indexes are left as they are.
    pub async fn connect(
        url: &str,
        api_key: Option<String>,
        collection_name: &str,
        dimensions: usize,
    ) -> Result<Self, StoreError> {
        if dimensions == 0 {
            return Err(StoreError::Backend(
                "qdrant: vectors must have at least one dimension".to_owned(),
            ));
        }
        // The compatibility check blocks the calling thread on a health check; the
        // calls below reach the server anyway and report any connection error.
        let client = Qdrant::from_url(url)
            .api_key(api_key)
            .skip_compatibility_check()
            .build()
            .map_err(|e| backend(&format!("connecting to {url}"), e))?;
        let mut store = Self {
            client,
            collection: collection_name.to_owned(),
            dimensions,
            lexical: true,
        };
        store.lexical = store.ensure_collection().await?;
        store.ensure_indexes().await?;
        Ok(store)
    }

    /// The Qdrant collection this store writes to.
    pub fn collection_name(&self) -> &str {
        &self.collection
    }

    /// Creates the collection unless it exists, then checks its vectors fit; whether it
    /// holds the lexical vector.
    async fn ensure_collection(&self) -> Result<bool, StoreError> {
        let name = &self.collection;
        let exists = self
            .client
            .collection_exists(name)
            .await
            .map_err(|e| backend(&format!("checking collection {name}"), e))?;
        if !exists {
            let mut sparse = SparseVectorsConfigBuilder::default();
            sparse.add_named_vector_params(
                LEXICAL_VECTOR,
                SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
            );
            let create = CreateCollectionBuilder::new(name)
                .vectors_config(VectorParamsBuilder::new(
                    self.dimensions as u64,
                    Distance::Cosine,
                ))
                .sparse_vectors_config(sparse)
                .on_disk_payload(true);
            if let Err(e) = self.client.create_collection(create).await {
                // Another instance may have created it meanwhile; that is fine.
                let created_meanwhile = self.client.collection_exists(name).await.unwrap_or(false);
                if !created_meanwhile {
                    return Err(backend(&format!("creating collection {name}"), e));
                }
            }
        }
        self.check_vectors().await
    }

    /// Refuses a collection whose vectors are not `dimensions`-length cosine vectors, and
    /// adds the lexical sparse vector to one made before hybrid search (its chunks are
    /// found by words once they are indexed again); whether it holds that vector.
    async fn check_vectors(&self) -> Result<bool, StoreError> {
        let name = &self.collection;
        let info = self
            .client
            .collection_info(name)
            .await
            .map_err(|e| backend(&format!("reading collection {name}"), e))?;
        let params = info.result.and_then(|i| i.config).and_then(|c| c.params);
        let has_lexical = params
            .as_ref()
            .and_then(|p| p.sparse_vectors_config.as_ref())
            .is_some_and(|sparse| sparse.map.contains_key(LEXICAL_VECTOR));
        let config = params.and_then(|p| p.vectors_config).and_then(|v| v.config);
        match config {
            Some(vectors_config::Config::Params(params))
                if params.size == self.dimensions as u64
                    && params.distance == Distance::Cosine as i32 =>
            {
                Ok(has_lexical || self.add_lexical_vector().await)
            }
            Some(vectors_config::Config::Params(params)) => Err(StoreError::Backend(format!(
                "qdrant: collection {name} holds {}-dimension vectors (distance {:?}); \
                 this store needs {}-dimension cosine vectors",
                params.size,
                Distance::try_from(params.distance).unwrap_or(Distance::UnknownDistance),
                self.dimensions
            ))),
            _ => Err(StoreError::Backend(format!(
                "qdrant: collection {name} has no single unnamed vector"
            ))),
        }
    }

    /// Adds the lexical vector to the collection; on a server that cannot (older than
    /// the vector-name API), says so and goes on by vectors alone.
    async fn add_lexical_vector(&self) -> bool {
        let name = &self.collection;
        let create = CreateVectorNameRequestBuilder::new(
            name,
            LEXICAL_VECTOR,
            SparseVectorCreationConfigBuilder::new().modifier(Modifier::Idf),
        )
        .wait(true);
        match self.client.create_vector_name(create).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(
                    collection = %name,
                    error = %e,
                    "qdrant: could not add the lexical vector to a collection made before hybrid \
                     search; it is searched by vectors alone (recreate it to search by words too)"
                );
                false
            }
        }
    }

    /// Creates the tenant, collection and document indexes (a no-op when they exist).
    async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let name = &self.collection;
        let tenant = CreateFieldIndexCollectionBuilder::new(name, "tenant_id", FieldType::Keyword)
            .field_index_params(KeywordIndexParamsBuilder::default().is_tenant(true))
            .wait(true);
        let others = ["collection", "document_id"].map(|field| {
            CreateFieldIndexCollectionBuilder::new(name, field, FieldType::Keyword).wait(true)
        });
        for request in std::iter::once(tenant).chain(others) {
            self.client
                .create_field_index(request)
                .await
                .map_err(|e| backend(&format!("creating payload indexes on {name}"), e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl VectorStore for QdrantServerStore {
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
            .map(|point| to_point(point, self.lexical))
            .collect::<Result<Vec<_>, _>>()?;
        self.client
            .upsert_points(UpsertPointsBuilder::new(&self.collection, points).wait(true))
            .await
            .map_err(|e| backend("upserting points", e))?;
        Ok(())
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
        let dense = Query::new_nearest(request.vector.to_vec());
        let words = if self.lexical { request.words() } else { None };
        let mut query = QueryPointsBuilder::new(&self.collection)
            .filter(filter.clone())
            .limit(request.top_k as u64)
            .with_payload(true);
        query = match words {
            None => {
                let query = query.query(dense);
                match request.score_threshold {
                    Some(threshold) => query.score_threshold(threshold),
                    None => query,
                }
            }
            Some(words) => {
                // Each side on its own filter: the tenant bounds both.
                let candidates = lexical::candidates(request.top_k) as u64;
                let mut by_meaning = PrefetchQueryBuilder::default()
                    .query(dense)
                    .filter(filter.clone())
                    .limit(candidates);
                if let Some(threshold) = request.score_threshold {
                    by_meaning = by_meaning.score_threshold(threshold);
                }
                let by_words = PrefetchQueryBuilder::default()
                    .query(Query::new_nearest(VectorInput::new_sparse(
                        words.indices,
                        words.values,
                    )))
                    .using(LEXICAL_VECTOR)
                    .filter(filter)
                    .limit(candidates);
                query
                    .add_prefetch(by_meaning)
                    .add_prefetch(by_words)
                    .query(Query::new_rrf(RrfBuilder::with_k(RRF_K as u32)))
            }
        };
        let response = self
            .client
            .query(query)
            .await
            .map_err(|e| backend("searching", e))?;
        response
            .result
            .into_iter()
            .map(|hit| {
                Ok(ScoredChunk {
                    chunk: from_payload(hit.payload)?,
                    score: hit.score,
                })
            })
            .collect()
    }

    async fn delete(&self, scope: Scope<'_>) -> Result<u64, StoreError> {
        let filter = scope_filter(&scope);
        // Qdrant does not say how many points a delete removed, so count first. A write
        // landing in between is not counted; the delete itself is exact.
        let count = self.count_matching(filter.clone()).await?;
        if count > 0 {
            self.client
                .delete_points(
                    DeletePointsBuilder::new(&self.collection)
                        .points(filter)
                        .wait(true),
                )
                .await
                .map_err(|e| backend("deleting points", e))?;
        }
        Ok(count)
    }

    async fn count(&self, scope: Scope<'_>) -> Result<u64, StoreError> {
        self.count_matching(scope_filter(&scope)).await
    }
}

impl QdrantServerStore {
    /// How many points match `filter`, exactly.
    async fn count_matching(&self, filter: Filter) -> Result<u64, StoreError> {
        let response = self
            .client
            .count(
                CountPointsBuilder::new(&self.collection)
                    .filter(filter)
                    .exact(true),
            )
            .await
            .map_err(|e| backend("counting", e))?;
        Ok(response.result.map(|r| r.count).unwrap_or(0))
    }
}

/// The search filter: the tenant, then the collections (any of them), then every metadata
/// match (validated exactly as the edge store does).
fn search_filter(request: &SearchRequest<'_>) -> Result<Filter, StoreError> {
    let mut must = vec![Condition::matches(
        "tenant_id",
        request.tenant.as_str().to_owned(),
    )];
    if !request.collections.is_empty() {
        must.push(Condition::matches(
            "collection",
            request.collections.to_vec(),
        ));
    }
    if let Some(filter) = request.filter {
        for condition in metadata_conditions(filter)? {
            let field = condition.path;
            must.push(match condition.matched {
                MetadataMatch::Keyword(s) => Condition::matches(field, s),
                MetadataMatch::Integer(i) => Condition::matches(field, i),
                MetadataMatch::Bool(b) => Condition::matches(field, b),
            });
        }
    }
    Ok(Filter::must(must))
}

/// The filter for a scope: the tenant always, then the collection and document if given.
fn scope_filter(scope: &Scope<'_>) -> Filter {
    let mut must = vec![Condition::matches(
        "tenant_id",
        scope.tenant.as_str().to_owned(),
    )];
    if let Some(collection) = scope.collection {
        must.push(Condition::matches("collection", collection.to_owned()));
    }
    if let Some(document_id) = scope.document_id {
        must.push(Condition::matches("document_id", document_id.to_owned()));
    }
    Filter::must(must)
}

/// The gRPC form of a point: its UUID, its unnamed dense vector, the sparse vector of its
/// words (when the collection has one: `lexical`) and the chunk as payload.
fn to_point(point: ChunkPoint, lexical: bool) -> Result<PointStruct, StoreError> {
    let payload = match serde_json::to_value(&point.chunk) {
        Ok(Json::Object(map)) => map,
        Ok(other) => {
            return Err(StoreError::Backend(format!(
                "qdrant: a chunk serialized to {other}, not an object"
            )));
        }
        Err(e) => {
            return Err(StoreError::Backend(format!(
                "qdrant: serializing a chunk: {e}"
            )));
        }
    };
    let payload: HashMap<String, Value> =
        payload.into_iter().map(|(k, v)| (k, to_value(v))).collect();
    let words = if lexical {
        lexical::document_terms(&point.chunk.text)
    } else {
        lexical::Terms::default()
    };
    let mut vectors = HashMap::from([(String::new(), Vector::from(point.vector))]);
    if !words.is_empty() {
        vectors.insert(
            LEXICAL_VECTOR.to_owned(),
            Vector::new_sparse(words.indices, words.values),
        );
    }
    Ok(PointStruct::new(point.id.to_string(), vectors, payload))
}

/// Reads a stored payload back into the chunk it was written from.
fn from_payload(payload: HashMap<String, Value>) -> Result<StoredChunk, StoreError> {
    let object: Map<String, Json> = payload.into_iter().map(|(k, v)| (k, to_json(v))).collect();
    serde_json::from_value(Json::Object(object))
        .map_err(|e| StoreError::Backend(format!("qdrant: a stored payload is not a chunk: {e}")))
}

/// JSON to a gRPC value (integers that fit in i64 stay integers, other numbers are doubles).
fn to_value(json: Json) -> Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntegerValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Kind::StringValue(s),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(to_value).collect(),
        }),
        Json::Object(map) => Kind::StructValue(Struct {
            fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
        }),
    };
    Value { kind: Some(kind) }
}

/// A gRPC value back to JSON (non-finite doubles, which JSON cannot hold, become null).
fn to_json(value: Value) -> Json {
    match value.kind {
        Some(Kind::BoolValue(b)) => Json::Bool(b),
        Some(Kind::IntegerValue(i)) => Json::from(i),
        Some(Kind::DoubleValue(d)) => Json::from(d),
        Some(Kind::StringValue(s)) => Json::String(s),
        Some(Kind::ListValue(list)) => Json::Array(list.values.into_iter().map(to_json).collect()),
        Some(Kind::StructValue(s)) => {
            Json::Object(s.fields.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
        Some(Kind::NullValue(_)) | None => Json::Null,
    }
}

/// A backend error with what we were doing.
fn backend(context: &str, error: qdrant_client::QdrantError) -> StoreError {
    StoreError::Backend(format!("qdrant: {context}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{self, conformance_tests};
    use serde_json::json;

    /// Printed by every server test when there is no server to test against.
    const SKIPPED: &str =
        "skipped: QDRANT_URL is not set (qdrant server conformance tests need a live server)";

    /// A store on a fresh, uniquely named collection, dropped with the fixture.
    struct Fixture {
        store: QdrantServerStore,
        url: String,
        api_key: Option<String>,
    }

    impl Fixture {
        fn store(&self) -> &dyn VectorStore {
            &self.store
        }
    }

    impl Drop for Fixture {
        /// Drops the test collection, even when the test panicked. Drop cannot await and
        /// runs inside the test's runtime, so the delete runs on its own thread and runtime.
        fn drop(&mut self) {
            let (url, api_key) = (self.url.clone(), self.api_key.clone());
            let collection = self.store.collection.clone();
            let cleanup = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(async {
                    let client = Qdrant::from_url(&url)
                        .api_key(api_key)
                        .skip_compatibility_check()
                        .build()
                        .map_err(|e| e.to_string())?;
                    client
                        .delete_collection(&collection)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            });
            match cleanup.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("could not drop test collection: {e}"),
                Err(_) => eprintln!("could not drop test collection: cleanup panicked"),
            }
        }
    }

    /// `QDRANT_URL` (and `QDRANT_API_KEY`, if set), or `None` after printing why not.
    fn server() -> Option<(String, Option<String>)> {
        match std::env::var("QDRANT_URL") {
            Ok(url) if !url.is_empty() => Some((url, std::env::var("QDRANT_API_KEY").ok())),
            _ => {
                println!("{SKIPPED}");
                None
            }
        }
    }

    /// A unique collection name, so runs and tests never share data.
    fn unique_collection() -> String {
        format!("query_conformance_{}", uuid::Uuid::new_v4().simple())
    }

    async fn fixture() -> Option<Fixture> {
        let (url, api_key) = server()?;
        let store = QdrantServerStore::connect(
            &url,
            api_key.clone(),
            &unique_collection(),
            conformance::DIMENSIONS,
        )
        .await
        .expect("connect to QDRANT_URL");
        Some(Fixture {
            store,
            url,
            api_key,
        })
    }

    conformance_tests!(fixture);

    #[tokio::test]
    async fn connecting_twice_is_idempotent_and_other_dimensions_are_refused() {
        let Some(fixture) = fixture().await else {
            return;
        };
        let name = fixture.store.collection_name().to_owned();
        let again = QdrantServerStore::connect(
            &fixture.url,
            fixture.api_key.clone(),
            &name,
            conformance::DIMENSIONS,
        )
        .await;
        assert!(again.is_ok(), "{again:?}");
        let other =
            QdrantServerStore::connect(&fixture.url, fixture.api_key.clone(), &name, 8).await;
        assert!(matches!(other, Err(StoreError::Backend(_))), "{other:?}");
    }

    #[test]
    fn payload_conversion_round_trips() {
        let json = json!({
            "s": "text", "i": -3, "f": 0.5, "b": true, "n": null,
            "list": [1, "two", [3.5]], "obj": {"nested": {"deep": false}},
        });
        let Json::Object(map) = json.clone() else {
            unreachable!("an object")
        };
        let grpc: Vec<(String, Value)> = map.into_iter().map(|(k, v)| (k, to_value(v))).collect();
        let back: Map<String, Json> = grpc.into_iter().map(|(k, v)| (k, to_json(v))).collect();
        assert_eq!(Json::Object(back), json);
    }
}
