//! The lexical half of hybrid retrieval: words as BM25 sparse vectors, stored beside each
//! chunk's dense vector and searched with it.
//!
//! Dense vectors find chunks that mean what the question means, but blur the exact words
//! documentation is searched by: identifiers (`pg_dump`), options (`--no-owner`), error
//! codes. A sparse vector holds a chunk's words (stemmed, English stopwords dropped), each
//! weighted by BM25's term-frequency part; the store applies the inverse document frequency
//! itself (Qdrant's `idf` modifier), from the chunks it holds, so the weights stay right as
//! documents come and go. Both backends use this one embedder (Qdrant Edge's BM25, the
//! same tokenizer, stopwords and stemmer as a Qdrant server's), so they agree term for term.
//!
//! A hybrid search asks for the nearest dense vectors and the best sparse matches, each
//! [`candidates`] deep, and fuses the two rankings by reciprocal rank ([`RRF_K`]).

use std::sync::OnceLock;

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};

/// The name of the sparse vector in both backends (the dense one is unnamed).
pub const LEXICAL_VECTOR: &str = "bm25";

/// The `k` of reciprocal rank fusion: a chunk ranked `r` on one side adds `1 / (k + r)`.
/// 60 is the value of the paper that introduced it (Cormack et al., 2009); it keeps the
/// first few ranks of either side from drowning the other.
pub const RRF_K: usize = 60;

/// A chunk's or a query's words: term ids (hashes of the stemmed words) and their weights.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Terms {
    /// Term ids, distinct.
    pub indices: Vec<u32>,
    /// Their weights, in the same order.
    pub values: Vec<f32>,
}

impl Terms {
    /// Whether nothing is left to match (empty, or only stopwords).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// The words a chunk is found by, each weighted by how often it occurs there relative to
/// the chunk's length (BM25's term-frequency part).
pub fn document_terms(text: &str) -> Terms {
    let sparse = bm25().embed_document(text);
    Terms {
        indices: sparse.indices,
        values: sparse.values,
    }
}

/// The words of a query, each weighing 1 (the store weighs them by rarity).
pub fn query_terms(text: &str) -> Terms {
    let sparse = bm25().embed_query(text);
    Terms {
        indices: sparse.indices,
        values: sparse.values,
    }
}

/// How deep each side of a hybrid search looks for `top_k` fused hits: a chunk ranked
/// low on one side but high on the other must be among the candidates to win.
pub fn candidates(top_k: usize) -> usize {
    (top_k * 4).max(20)
}

/// The one BM25 embedder: English, Qdrant's defaults (k1 1.2, b 0.75).
fn bm25() -> &'static EdgeBm25 {
    static BM25: OnceLock<EdgeBm25> = OnceLock::new();
    BM25.get_or_init(|| {
        EdgeBm25::new(EdgeBm25Config::default())
            .expect("Qdrant's default BM25 configuration is valid")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_stemmed_and_stopwords_dropped() {
        let query = query_terms("the restoring of dumps");
        assert_eq!(query, query_terms("restore dump"));
        assert!(query_terms("the of and").is_empty());
    }

    #[test]
    fn a_document_and_a_query_share_term_ids_and_repeats_weigh_more() {
        let id = query_terms("vacuum").indices;
        assert_eq!(id.len(), 1);
        let weight = |text: &str| {
            let terms = document_terms(text);
            let position = terms
                .indices
                .iter()
                .position(|i| *i == id[0])
                .expect("the query's term is the document's");
            terms.values[position]
        };
        assert!(weight("vacuum vacuums tables") > weight("vacuum reclaims tables"));
        // An identifier is its parts: `pg_dump` is matched by `pg` and `dump`.
        assert_eq!(query_terms("pg_dump"), query_terms("pg dump"));
    }
}
