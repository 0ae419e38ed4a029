//! `bench --suite search`: the embedded vector store (Qdrant Edge) as the query service
//! uses it, through the same [`VectorStore`] trait: index throughput, the time its
//! optimizers take to build the HNSW index (the store runs them by itself once writes
//! pause; here they are run at once and timed) and how long writes of a document's chunks
//! take meanwhile (the optimizers run off the write path), then search latency (top 5,
//! tenant filter applied) at 10k and 100k chunks of 384 dimensions.
//!
//! Vectors are pseudo-random unit vectors (deterministic); every chunk belongs to one
//! tenant, so the tenant filter keeps all of them: the worst case for a search.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use query::store::edge::EdgeStore;
use query::store::{ChunkPoint, SearchRequest, StoredChunk, VectorStore};
use serde::Serialize;
use shared::TenantId;

use super::{Args, write_json};
use crate::exit::{Failure, Outcome};

const DIMENSIONS: usize = 384;
const BATCH: usize = 1_000;
const TOP_K: usize = 5;
/// Chunks per write while the optimizers run: a document's worth, as `query.index` writes.
const WRITE_BATCH: usize = 32;
/// At most this many writes while the optimizers run; then the bench waits for them.
const WRITES_WHILE_OPTIMIZING: u64 = 100;

/// One row of the report.
#[derive(Debug, Serialize)]
struct Row {
    chunks: usize,
    index_chunks_per_s: f64,
    optimize_ms: u64,
    /// Writes of [`WRITE_BATCH`] chunks made while the optimizers ran.
    writes_while_optimizing: u64,
    /// The 99th percentile of their times: how long the index build holds up indexing.
    write_p99_ms_while_optimizing: f64,
    searches: u64,
    search_p50_us: u64,
    search_p99_us: u64,
}

/// Runs the suite.
pub async fn run(args: &Args) -> Outcome {
    let tenant = TenantId::new("bench").map_err(Failure::runtime)?;
    let seconds = args.seconds.max(0.1);
    println!(
        "bench: Qdrant Edge, {DIMENSIONS}-d, top {TOP_K} with tenant filter, {seconds:.1}s of searches per size"
    );
    println!();
    println!(
        "{:>8} {:>10} {:>12} {:>8} {:>13} {:>9} {:>10} {:>10}",
        "chunks",
        "index/s",
        "optimize ms",
        "writes",
        "write p99 ms",
        "searches",
        "p50 us",
        "p99 us"
    );
    let mut rows = Vec::new();
    for chunks in [10_000, 100_000] {
        let dir = tempfile::Builder::new()
            .prefix("da-bench-edge-")
            .tempdir()
            .map_err(Failure::runtime)?;
        let store = Arc::new(EdgeStore::open(dir.path(), DIMENSIONS).map_err(Failure::runtime)?);
        let mut random = Lcg(7);

        let started = Instant::now();
        for first in (0..chunks).step_by(BATCH) {
            let points = (first..(first + BATCH).min(chunks))
                .map(|i| ChunkPoint::new(chunk(&tenant, i), random.unit_vector()))
                .collect();
            store.upsert(points).await.map_err(Failure::runtime)?;
        }
        let index_per_s = chunks as f64 / started.elapsed().as_secs_f64();

        // The optimizers build the index while writes of a document's size go on, as
        // `query.index` sends them: each write's time is what an indexing request waits.
        let optimizing = Instant::now();
        let optimizer = tokio::spawn({
            let store = Arc::clone(&store);
            async move { store.optimize().await }
        });
        let mut writes =
            Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).map_err(Failure::runtime)?;
        let mut next = chunks;
        // Bounded: writes that never pause would keep the optimizers finding new work.
        while !optimizer.is_finished() && writes.len() < WRITES_WHILE_OPTIMIZING {
            let points = (next..next + WRITE_BATCH)
                .map(|i| ChunkPoint::new(chunk(&tenant, i), random.unit_vector()))
                .collect();
            next += WRITE_BATCH;
            let began = Instant::now();
            store.upsert(points).await.map_err(Failure::runtime)?;
            writes.saturating_record((began.elapsed().as_micros() as u64).max(1));
        }
        optimizer
            .await
            .map_err(Failure::runtime)?
            .map_err(Failure::runtime)?;
        let optimize_ms = optimizing.elapsed().as_millis() as u64;

        let mut latencies =
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(Failure::runtime)?;
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        while Instant::now() < until {
            let vector = random.unit_vector();
            let began = Instant::now();
            let hits = store
                .search(SearchRequest {
                    tenant: &tenant,
                    collections: &[],
                    vector: &vector,
                    keywords: None,
                    top_k: TOP_K,
                    score_threshold: None,
                    filter: None,
                })
                .await
                .map_err(Failure::runtime)?;
            let micros = began.elapsed().as_micros() as u64;
            if hits.len() != TOP_K {
                return Err(Failure::runtime(format!(
                    "a search found {} hits, not {TOP_K}",
                    hits.len()
                )));
            }
            latencies.saturating_record(micros.max(1));
        }
        let row = Row {
            chunks,
            index_chunks_per_s: index_per_s,
            optimize_ms,
            writes_while_optimizing: writes.len(),
            write_p99_ms_while_optimizing: writes.value_at_percentile(99.0) as f64 / 1000.0,
            searches: latencies.len(),
            search_p50_us: latencies.value_at_percentile(50.0),
            search_p99_us: latencies.value_at_percentile(99.0),
        };
        println!(
            "{:>8} {:>10.0} {:>12} {:>8} {:>13.1} {:>9} {:>10} {:>10}",
            row.chunks,
            row.index_chunks_per_s,
            row.optimize_ms,
            row.writes_while_optimizing,
            row.write_p99_ms_while_optimizing,
            row.searches,
            row.search_p50_us,
            row.search_p99_us
        );
        rows.push(row);
    }
    write_json(args.json.as_deref(), &rows)
}

fn chunk(tenant: &TenantId, i: usize) -> StoredChunk {
    StoredChunk {
        tenant_id: tenant.as_str().to_owned(),
        collection: "bench".to_owned(),
        document_id: format!("doc-{}", i / 100),
        chunk_index: (i % 100) as u32,
        text: format!("chunk {i}"),
        metadata: Default::default(),
    }
}

/// A small deterministic generator, so every run indexes the same vectors.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn unit_vector(&mut self) -> Vec<f32> {
        let mut v: Vec<f32> = (0..DIMENSIONS).map(|_| self.next()).collect();
        embedding::embedder::normalize(&mut v);
        v
    }
}
