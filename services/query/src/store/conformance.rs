//! The behaviour every [`VectorStore`] backend must show, as async tests over `&dyn
//! VectorStore`, so the edge store and the Qdrant server store are held to the same rules.
//!
//! A backend runs them all with [`conformance_tests!`], giving it an async function that
//! returns a fresh, empty store fixture (or `None` to skip). Stores are opened with
//! [`DIMENSIONS`]-dimension vectors.

use serde_json::{Map, Value, json};
use shared::TenantId;

use super::{ChunkPoint, Scope, ScoredChunk, SearchRequest, StoreError, StoredChunk, VectorStore};

/// The vector length every conformance store is opened with.
pub(crate) const DIMENSIONS: usize = 4;

/// Query vector; the points below score 1.0, 0.8, 0.0 and -1.0 against it (cosine).
const A: [f32; 4] = [1.0, 0.0, 0.0, 0.0];
const B: [f32; 4] = [0.8, 0.6, 0.0, 0.0];
const C: [f32; 4] = [0.0, 1.0, 0.0, 0.0];
const E: [f32; 4] = [-1.0, 0.0, 0.0, 0.0];

/// Generates one `#[tokio::test]` per conformance test, each on a store from `$fixture`:
/// an async fn returning `Option<F>` where `F` has `fn store(&self) -> &dyn VectorStore`
/// (`None` skips the test). The list below is the whole suite, so both backends run it all.
macro_rules! conformance_tests {
    ($fixture:path) => {
        $crate::store::conformance::conformance_tests!(
            @each $fixture;
            upsert_then_search_returns_best_first_with_payload,
            upsert_with_same_id_overwrites,
            top_k_and_score_threshold_are_respected,
            collections_filter_limits_search,
            metadata_filter_matches_strings_integers_and_bools,
            bad_filter_values_are_rejected,
            wrong_dimensions_are_rejected_and_nothing_is_written,
            tenants_never_see_each_other,
            words_find_what_the_vector_misses_inside_the_tenant,
            deleting_one_tenants_chunks_leaves_the_others,
            delete_document_versus_collection,
            count_by_scope,
            empty_requests_are_harmless,
        );
    };
    (@each $fixture:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some(fixture) = $fixture().await else {
                    return;
                };
                $crate::store::conformance::$name(fixture.store()).await;
            }
        )+
    };
}
pub(crate) use conformance_tests;

/// A valid tenant id.
fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("valid tenant id")
}

/// A chunk with the given place, text and metadata.
fn chunk(
    tenant: &TenantId,
    collection: &str,
    document_id: &str,
    chunk_index: u32,
    text: &str,
    metadata: Value,
) -> StoredChunk {
    let metadata = match metadata {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    StoredChunk {
        tenant_id: tenant.as_str().to_owned(),
        collection: collection.to_owned(),
        document_id: document_id.to_owned(),
        chunk_index,
        text: text.to_owned(),
        metadata,
    }
}

/// A chunk without metadata as a point with `vector`.
fn point(
    tenant: &TenantId,
    collection: &str,
    document_id: &str,
    chunk_index: u32,
    vector: [f32; 4],
) -> ChunkPoint {
    let text = format!(
        "{}/{collection}/{document_id}#{chunk_index}",
        tenant.as_str()
    );
    ChunkPoint::new(
        chunk(
            tenant,
            collection,
            document_id,
            chunk_index,
            &text,
            json!({}),
        ),
        vector.to_vec(),
    )
}

/// A search of everything in `tenant`, top 10, no threshold or filter.
fn search<'a>(tenant: &'a TenantId, vector: &'a [f32]) -> SearchRequest<'a> {
    SearchRequest {
        tenant,
        collections: &[],
        vector,
        keywords: None,
        top_k: 10,
        score_threshold: None,
        filter: None,
    }
}

/// A whole-tenant scope.
fn scope(tenant: &TenantId) -> Scope<'_> {
    Scope {
        tenant,
        collection: None,
        document_id: None,
    }
}

/// Upserts, failing the test on error.
async fn upsert(store: &dyn VectorStore, points: Vec<ChunkPoint>) {
    store.upsert(points).await.expect("upsert");
}

/// Searches, failing the test on error, and checks the hits are best first.
async fn hits(store: &dyn VectorStore, request: SearchRequest<'_>) -> Vec<ScoredChunk> {
    let hits = store.search(request).await.expect("search");
    assert!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "hits not best first: {:?}",
        scores(&hits)
    );
    hits
}

/// Counts, failing the test on error.
async fn count(store: &dyn VectorStore, scope: Scope<'_>) -> u64 {
    store.count(scope).await.expect("count")
}

/// Deletes, failing the test on error.
async fn delete(store: &dyn VectorStore, scope: Scope<'_>) -> u64 {
    store.delete(scope).await.expect("delete")
}

/// The texts of the hits, in order.
fn texts(hits: &[ScoredChunk]) -> Vec<&str> {
    hits.iter().map(|h| h.chunk.text.as_str()).collect()
}

/// The chunk indexes of the hits, sorted (for set comparisons).
fn indexes(hits: &[ScoredChunk]) -> Vec<u32> {
    let mut indexes: Vec<u32> = hits.iter().map(|h| h.chunk.chunk_index).collect();
    indexes.sort_unstable();
    indexes
}

/// The scores of the hits, in order.
fn scores(hits: &[ScoredChunk]) -> Vec<f32> {
    hits.iter().map(|h| h.score).collect()
}

/// Asserts a score is close to the expected cosine similarity.
fn assert_score(actual: f32, expected: f32) {
    assert!(
        (actual - expected).abs() < 1e-3,
        "score {actual}, expected {expected}"
    );
}

/// Points come back best first, with their scores and payloads exactly as stored.
pub(crate) async fn upsert_then_search_returns_best_first_with_payload(store: &dyn VectorStore) {
    let acme = tenant("acme");
    let metadata = json!({
        "title": "Handbook",
        "page": 3,
        "draft": false,
        "ratio": 0.5,
        "tags": ["a", "b"],
        "nested": {"x": [1, 2], "y": null},
    });
    let stored: Vec<ChunkPoint> = [(0, C), (1, A), (2, B)]
        .into_iter()
        .map(|(i, v)| {
            let text = format!("chunk {i}");
            ChunkPoint::new(
                chunk(&acme, "docs", "d1", i, &text, metadata.clone()),
                v.to_vec(),
            )
        })
        .collect();
    upsert(store, stored.clone()).await;

    let found = hits(store, search(&acme, &A)).await;
    assert_eq!(texts(&found), ["chunk 1", "chunk 2", "chunk 0"]);
    for (hit, expected) in found.iter().zip([1.0, 0.8, 0.0]) {
        assert_score(hit.score, expected);
    }
    for hit in &found {
        let original = stored
            .iter()
            .find(|p| p.chunk.chunk_index == hit.chunk.chunk_index)
            .expect("a stored chunk");
        assert_eq!(hit.chunk, original.chunk, "payload changed on the way");
    }
}

/// Upserting a chunk again (same id) replaces it instead of adding a second copy.
pub(crate) async fn upsert_with_same_id_overwrites(store: &dyn VectorStore) {
    let acme = tenant("acme");
    let old = chunk(&acme, "docs", "d1", 0, "old text", json!({"v": 1}));
    let new = chunk(&acme, "docs", "d1", 0, "new text", json!({"v": 2}));
    upsert(store, vec![ChunkPoint::new(old, A.to_vec())]).await;
    upsert(store, vec![ChunkPoint::new(new.clone(), C.to_vec())]).await;

    assert_eq!(count(store, scope(&acme)).await, 1);
    let found = hits(store, search(&acme, &C)).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].chunk, new);
    assert_score(found[0].score, 1.0);

    // The same id twice in one batch is one point too.
    let twice = vec![
        point(&acme, "docs", "d2", 0, A),
        point(&acme, "docs", "d2", 0, B),
    ];
    upsert(store, twice).await;
    assert_eq!(count(store, scope(&acme)).await, 2);
}

/// No more than `top_k` hits, and none below the threshold.
pub(crate) async fn top_k_and_score_threshold_are_respected(store: &dyn VectorStore) {
    let acme = tenant("acme");
    let points = [A, B, C, E]
        .into_iter()
        .enumerate()
        .map(|(i, v)| point(&acme, "docs", "d1", i as u32, v))
        .collect();
    upsert(store, points).await;

    let top2 = hits(
        store,
        SearchRequest {
            top_k: 2,
            ..search(&acme, &A)
        },
    )
    .await;
    assert_eq!(indexes(&top2), [0, 1]);

    let all = hits(store, search(&acme, &A)).await;
    assert_eq!(all.len(), 4);

    for (threshold, expected) in [(0.5, vec![0, 1]), (0.9, vec![0]), (-0.5, vec![0, 1, 2])] {
        let found = hits(
            store,
            SearchRequest {
                score_threshold: Some(threshold),
                ..search(&acme, &A)
            },
        )
        .await;
        assert_eq!(indexes(&found), expected, "threshold {threshold}");
        assert!(found.iter().all(|h| h.score >= threshold));
    }

    let none = hits(
        store,
        SearchRequest {
            top_k: 0,
            ..search(&acme, &A)
        },
    )
    .await;
    assert!(none.is_empty());
}

/// Only the named collections are searched; no names means all of them.
pub(crate) async fn collections_filter_limits_search(store: &dyn VectorStore) {
    let acme = tenant("acme");
    upsert(
        store,
        vec![
            point(&acme, "docs", "d1", 0, A),
            point(&acme, "notes", "d1", 0, A),
            point(&acme, "archive", "d1", 0, A),
        ],
    )
    .await;

    let collections_of = |hits: &[ScoredChunk]| {
        let mut names: Vec<String> = hits.iter().map(|h| h.chunk.collection.clone()).collect();
        names.sort();
        names
    };
    let cases: [(&[&str], &[&str]); 4] = [
        (&["docs"], &["docs"]),
        (&["docs", "notes"], &["docs", "notes"]),
        (&["missing"], &[]),
        (&[], &["archive", "docs", "notes"]),
    ];
    for (wanted, expected) in cases {
        let wanted: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
        let found = hits(
            store,
            SearchRequest {
                collections: &wanted,
                ..search(&acme, &A)
            },
        )
        .await;
        assert_eq!(collections_of(&found), expected, "collections {wanted:?}");
    }
}

/// Metadata filters match strings, integers and booleans exactly, all entries at once.
pub(crate) async fn metadata_filter_matches_strings_integers_and_bools(store: &dyn VectorStore) {
    let acme = tenant("acme");
    let metadatas = [
        json!({"lang": "en", "year": 2024, "draft": false}),
        json!({"lang": "de", "year": 2024, "draft": true}),
        json!({"lang": "en", "year": 2023, "draft": true}),
        json!({"lang": "en", "year": -7, "a.b": "dotted", "with space": "yes"}),
    ];
    let points = metadatas
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let i = i as u32;
            ChunkPoint::new(chunk(&acme, "docs", "d1", i, "text", m), A.to_vec())
        })
        .collect();
    upsert(store, points).await;

    let cases = [
        (json!({"lang": "en"}), vec![0, 2, 3]),
        (json!({"year": 2024}), vec![0, 1]),
        (json!({"year": -7}), vec![3]),
        (json!({"draft": true}), vec![1, 2]),
        (json!({"draft": false}), vec![0]),
        (json!({"lang": "en", "draft": true}), vec![2]),
        (json!({"lang": "en", "year": 2024, "draft": false}), vec![0]),
        (json!({"lang": "fr"}), vec![]),
        (json!({"year": "2024"}), vec![]),
        (json!({"missing": "x"}), vec![]),
        (json!({"a.b": "dotted"}), vec![3]),
        (json!({"with space": "yes"}), vec![3]),
        (json!({}), vec![0, 1, 2, 3]),
    ];
    for (filter, expected) in cases {
        let Value::Object(filter) = filter else {
            unreachable!("the cases are objects")
        };
        let found = hits(
            store,
            SearchRequest {
                filter: Some(&filter),
                ..search(&acme, &A)
            },
        )
        .await;
        assert_eq!(indexes(&found), expected, "filter {filter:?}");
    }
}

/// Floats, arrays, objects, nulls and out-of-range integers cannot be matched exactly.
pub(crate) async fn bad_filter_values_are_rejected(store: &dyn VectorStore) {
    let acme = tenant("acme");
    upsert(store, vec![point(&acme, "docs", "d1", 0, A)]).await;
    let bad = [
        json!({"ratio": 0.5}),
        json!({"tags": ["a"]}),
        json!({"nested": {"x": 1}}),
        json!({"nothing": null}),
        json!({"huge": u64::MAX}),
        json!({"lang": "en", "ratio": 1.0}),
        json!({"quote\"d": "x"}),
    ];
    for filter in bad {
        let Value::Object(filter) = filter else {
            unreachable!("the cases are objects")
        };
        let result = store
            .search(SearchRequest {
                filter: Some(&filter),
                ..search(&acme, &A)
            })
            .await;
        match result {
            Err(StoreError::Filter { key }) => {
                assert!(filter.contains_key(&key), "error names {key:?}");
                assert_ne!(key, "lang", "the good entry was blamed");
            }
            other => panic!("filter {filter:?}: expected a filter error, got {other:?}"),
        }
    }
}

/// A batch with one wrong-length vector is refused whole; so is a wrong-length query.
pub(crate) async fn wrong_dimensions_are_rejected_and_nothing_is_written(store: &dyn VectorStore) {
    let acme = tenant("acme");
    let good = point(&acme, "docs", "d1", 0, A);
    let mut bad = point(&acme, "docs", "d1", 1, B);
    bad.vector.pop();
    match store.upsert(vec![good, bad]).await {
        Err(StoreError::Dimensions { expected, got }) => {
            assert_eq!((expected, got), (DIMENSIONS, DIMENSIONS - 1));
        }
        other => panic!("expected a dimensions error, got {other:?}"),
    }
    assert_eq!(
        count(store, scope(&acme)).await,
        0,
        "part of the batch was written"
    );

    let long = [1.0, 0.0, 0.0, 0.0, 0.0];
    match store.search(search(&acme, &long)).await {
        Err(StoreError::Dimensions { expected, got }) => {
            assert_eq!((expected, got), (DIMENSIONS, DIMENSIONS + 1));
        }
        other => panic!("expected a dimensions error, got {other:?}"),
    }
    assert_eq!(store.dimensions(), DIMENSIONS);
}

/// Writes the same collection, document names and vectors for two tenants.
async fn twin_tenants(store: &dyn VectorStore, a: &TenantId, b: &TenantId) {
    for tenant in [a, b] {
        let points = [A, B, C]
            .into_iter()
            .enumerate()
            .map(|(i, v)| point(tenant, "docs", "d1", i as u32, v))
            .collect();
        upsert(store, points).await;
    }
}

/// Two tenants with identical collections, documents and vectors: searches and counts
/// only ever see the asking tenant's chunks.
pub(crate) async fn tenants_never_see_each_other(store: &dyn VectorStore) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    twin_tenants(store, &acme, &globex).await;
    let docs = vec!["docs".to_owned()];
    let filter = Map::new();

    for (me, other) in [(&acme, &globex), (&globex, &acme)] {
        let requests = [
            search(me, &A),
            SearchRequest {
                collections: &docs,
                ..search(me, &A)
            },
            SearchRequest {
                filter: Some(&filter),
                score_threshold: Some(-1.0),
                ..search(me, &A)
            },
        ];
        for request in requests {
            let found = hits(store, request).await;
            assert_eq!(found.len(), 3);
            assert!(
                found.iter().all(|h| h.chunk.tenant_id == me.as_str()),
                "{} saw {}'s chunks",
                me.as_str(),
                other.as_str()
            );
        }
        assert_eq!(count(store, scope(me)).await, 3);
        let document = Scope {
            collection: Some("docs"),
            document_id: Some("d1"),
            ..scope(me)
        };
        assert_eq!(count(store, document).await, 3);
    }
    assert_eq!(count(store, scope(&tenant("initech"))).await, 0);
    assert!(hits(store, search(&tenant("initech"), &A)).await.is_empty());
}

/// A hybrid search finds the chunk that names the query's identifier though its vector is
/// the farthest, ranks it first (it leads one ranking and is found by the other), and keeps
/// to the tenant, the collections and the filter on both sides; without keywords the same
/// search does not find it.
pub(crate) async fn words_find_what_the_vector_misses_inside_the_tenant(store: &dyn VectorStore) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let text = |tenant: &TenantId, index: u32, text: &str, vector: [f32; 4], lang: &str| {
        ChunkPoint::new(
            chunk(tenant, "docs", "manual", index, text, json!({"lang": lang})),
            vector.to_vec(),
        )
    };
    store
        .upsert(vec![
            text(&acme, 0, "Apples keep well in a cool cellar.", A, "en"),
            text(&acme, 1, "Bananas ripen faster beside apples.", B, "en"),
            text(&acme, 2, "Cherries are picked in early summer.", C, "en"),
            text(
                &acme,
                3,
                "pg_dump writes one database to an archive.",
                E,
                "en",
            ),
            text(&globex, 0, "pg_dump, pg_dump and pg_dump again.", A, "en"),
        ])
        .await
        .expect("upsert");
    let question = "What does pg_dump write?";
    let hybrid = SearchRequest {
        keywords: Some(question),
        top_k: 2,
        ..search(&acme, &A)
    };

    let found = hits(store, hybrid.clone()).await;
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].chunk.chunk_index, 3, "{found:?}");
    assert!(
        found.iter().all(|h| h.chunk.tenant_id == "acme"),
        "{found:?}"
    );
    let dense = hits(
        store,
        SearchRequest {
            keywords: None,
            ..hybrid.clone()
        },
    )
    .await;
    assert!(dense.iter().all(|h| h.chunk.chunk_index != 3), "{dense:?}");

    // The threshold holds the vector's side only: words still find the far chunk.
    let threshold = hits(
        store,
        SearchRequest {
            score_threshold: Some(0.5),
            top_k: 10,
            ..hybrid.clone()
        },
    )
    .await;
    let mut indexes: Vec<u32> = threshold.iter().map(|h| h.chunk.chunk_index).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, [0, 1, 3], "{threshold:?}");

    // Collections and metadata filters bound the words' side too.
    let other = vec!["other".to_owned()];
    let elsewhere = SearchRequest {
        collections: &other,
        ..hybrid.clone()
    };
    assert!(hits(store, elsewhere).await.is_empty());
    let mut german = Map::new();
    german.insert("lang".to_owned(), json!("de"));
    let filtered = SearchRequest {
        filter: Some(&german),
        ..hybrid.clone()
    };
    assert!(hits(store, filtered).await.is_empty());

    // A query of stopwords alone is searched by its vector.
    let stopwords = SearchRequest {
        keywords: Some("what is the"),
        ..hybrid
    };
    let found = hits(store, stopwords).await;
    assert_eq!(found[0].chunk.chunk_index, 0, "{found:?}");
}

/// Deleting one tenant's document, or everything it has, leaves the other tenant's
/// identically named chunks alone.
pub(crate) async fn deleting_one_tenants_chunks_leaves_the_others(store: &dyn VectorStore) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    twin_tenants(store, &acme, &globex).await;

    let acme_d1 = Scope {
        collection: Some("docs"),
        document_id: Some("d1"),
        ..scope(&acme)
    };
    assert_eq!(delete(store, acme_d1).await, 3);
    assert_eq!(count(store, scope(&acme)).await, 0);
    assert_eq!(count(store, scope(&globex)).await, 3);
    let found = hits(store, search(&globex, &A)).await;
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|h| h.chunk.tenant_id == "globex"));
    assert!(hits(store, search(&acme, &A)).await.is_empty());
    assert_eq!(
        delete(store, acme_d1).await,
        0,
        "deleting again finds nothing"
    );

    // A whole-tenant delete is just as contained.
    twin_tenants(store, &acme, &globex).await;
    assert_eq!(delete(store, scope(&globex)).await, 3);
    assert_eq!(count(store, scope(&globex)).await, 0);
    assert_eq!(count(store, scope(&acme)).await, 3);
}

/// Deleting a document takes only its chunks; deleting a collection takes all of its
/// documents and nothing in other collections.
pub(crate) async fn delete_document_versus_collection(store: &dyn VectorStore) {
    let acme = tenant("acme");
    upsert(
        store,
        vec![
            point(&acme, "docs", "d1", 0, A),
            point(&acme, "docs", "d1", 1, B),
            point(&acme, "docs", "d2", 0, A),
            point(&acme, "docs", "d2", 1, C),
            point(&acme, "notes", "d1", 0, A),
        ],
    )
    .await;
    let in_collection = |collection| Scope {
        collection: Some(collection),
        ..scope(&acme)
    };

    let document = Scope {
        document_id: Some("d1"),
        ..in_collection("docs")
    };
    assert_eq!(delete(store, document).await, 2);
    assert_eq!(count(store, in_collection("docs")).await, 2);
    assert_eq!(
        count(store, in_collection("notes")).await,
        1,
        "same name, other collection"
    );
    let left = hits(store, search(&acme, &A)).await;
    assert!(
        left.iter()
            .all(|h| !(h.chunk.collection == "docs" && h.chunk.document_id == "d1"))
    );

    assert_eq!(delete(store, in_collection("docs")).await, 2);
    assert_eq!(count(store, in_collection("docs")).await, 0);
    assert_eq!(count(store, scope(&acme)).await, 1);
    let left = hits(store, search(&acme, &A)).await;
    assert_eq!(texts(&left), ["acme/notes/d1#0"]);
}

/// Counts by tenant, collection, document within a collection, and document across
/// collections.
pub(crate) async fn count_by_scope(store: &dyn VectorStore) {
    let acme = tenant("acme");
    let mut points = vec![
        point(&acme, "docs", "d1", 0, A),
        point(&acme, "docs", "d1", 1, B),
        point(&acme, "docs", "d2", 0, C),
    ];
    points.extend((0..3).map(|i| point(&acme, "notes", "d1", i, E)));
    upsert(store, points).await;

    let cases = [
        (None, None, 6),
        (Some("docs"), None, 3),
        (Some("notes"), None, 3),
        (Some("docs"), Some("d1"), 2),
        (Some("docs"), Some("d2"), 1),
        (Some("notes"), Some("d2"), 0),
        (None, Some("d1"), 5),
        (Some("missing"), None, 0),
    ];
    for (collection, document_id, expected) in cases {
        let scope = Scope {
            collection,
            document_id,
            ..scope(&acme)
        };
        assert_eq!(
            count(store, scope).await,
            expected,
            "{collection:?}/{document_id:?}"
        );
    }
    assert_eq!(count(store, scope(&tenant("globex"))).await, 0);
}

/// Empty batches, empty stores and empty scopes are fine, not errors.
pub(crate) async fn empty_requests_are_harmless(store: &dyn VectorStore) {
    let acme = tenant("acme");
    upsert(store, Vec::new()).await;
    assert!(hits(store, search(&acme, &A)).await.is_empty());
    assert_eq!(count(store, scope(&acme)).await, 0);
    assert_eq!(delete(store, scope(&acme)).await, 0);
}

/// Writes what [`check_durability_fixture`] expects after a reopen: an overwrite and a
/// delete among the writes, so both must have reached the disk.
pub(crate) async fn write_durability_fixture(store: &dyn VectorStore) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    upsert(
        store,
        vec![
            point(&acme, "docs", "d1", 0, C),
            point(&acme, "docs", "d1", 1, B),
            point(&acme, "docs", "d1", 2, C),
            point(&globex, "docs", "d1", 0, A),
        ],
    )
    .await;
    let rewritten = chunk(&acme, "docs", "d1", 0, "rewritten", json!({"v": 2}));
    upsert(store, vec![ChunkPoint::new(rewritten, A.to_vec())]).await;
    assert_eq!(delete(store, scope(&globex)).await, 1);
}

/// Checks a reopened store holds exactly what [`write_durability_fixture`] left.
pub(crate) async fn check_durability_fixture(store: &dyn VectorStore) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    assert_eq!(count(store, scope(&acme)).await, 3);
    assert_eq!(count(store, scope(&globex)).await, 0, "the delete was lost");
    let found = hits(store, search(&acme, &A)).await;
    assert_eq!(found.len(), 3);
    let expected = chunk(&acme, "docs", "d1", 0, "rewritten", json!({"v": 2}));
    assert_eq!(found[0].chunk, expected, "the overwrite was lost");
    assert_score(found[0].score, 1.0);
}

/// A write after a reopen, for [`check_after_reopen`].
pub(crate) async fn write_after_reopen(store: &dyn VectorStore) {
    upsert(store, vec![point(&tenant("acme"), "docs", "d2", 0, E)]).await;
}

/// Checks both the first session's and the second session's writes are there.
pub(crate) async fn check_after_reopen(store: &dyn VectorStore) {
    let acme = tenant("acme");
    assert_eq!(count(store, scope(&acme)).await, 4);
    let found = hits(store, search(&acme, &E)).await;
    assert_eq!(found[0].chunk.document_id, "d2");
    assert_score(found[0].score, 1.0);
}
