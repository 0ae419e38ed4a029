//! Searching the tenant's documents, and the numbered passages answers cite.
//!
//! Searches go to the query service (`query.search` over rpc), the vector store's only
//! owner, as a follow-up of the run: same tenant, correlation and trace. Answerers see
//! search behind the [`Knowledge`] trait, so the answer logic is tested without NATS.

use std::future::Future;
use std::time::Duration;

use answering::{ScoredChunk, StoredChunk};
use query_contract::{CitedPassage, Hit, Search};
use shared::{ActionError, Ctx, TenantId};

use crate::actions::Citation;
use crate::agent::Agent;

/// Finds passages for a query.
pub trait Knowledge: Sync {
    /// The `top_k` passages nearest to `query`, best first, within `timeout`.
    fn search(
        &self,
        query: &str,
        top_k: usize,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<Hit>, ActionError>> + Send;
}

/// Search through the query service, over the agent's collections and threshold.
pub struct RpcKnowledge<'a> {
    ctx: &'a Ctx,
    collections: &'a [String],
    score_threshold: Option<f32>,
}

impl<'a> RpcKnowledge<'a> {
    /// Searches as the action of `ctx` (its tenant, correlation and trace), where `agent`
    /// may look.
    pub fn new(ctx: &'a Ctx, agent: &'a Agent) -> Self {
        Self {
            ctx,
            collections: &agent.collections,
            score_threshold: agent.score_threshold,
        }
    }
}

impl Knowledge for RpcKnowledge<'_> {
    async fn search(
        &self,
        query: &str,
        top_k: usize,
        timeout: Duration,
    ) -> Result<Vec<Hit>, ActionError> {
        let search = Search {
            query: Some(query.to_owned()),
            vector: None,
            collections: self.collections.to_vec(),
            top_k,
            score_threshold: self.score_threshold,
            filter: None,
            retrieval: None,
        };
        Ok(self.ctx.request(search, timeout).await?.hits)
    }
}

/// The passages a run has seen, numbered from 1 in the order first seen; the same chunk
/// found twice keeps its first number, so `[n]` means one thing for the whole run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Passages {
    hits: Vec<Hit>,
}

impl Passages {
    /// Adds `hits`; the numbers they go by, in their order.
    pub fn add(&mut self, hits: Vec<Hit>) -> Vec<usize> {
        hits.into_iter()
            .map(|hit| {
                let same = |seen: &Hit| {
                    seen.document_id == hit.document_id
                        && seen.chunk_index == hit.chunk_index
                        && seen.collection == hit.collection
                };
                match self.hits.iter().position(same) {
                    Some(i) => i + 1,
                    None => {
                        self.hits.push(hit);
                        self.hits.len()
                    }
                }
            })
            .collect()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.hits.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    /// Passage number `n` (from 1), if there is one.
    fn hit(&self, n: usize) -> Option<&Hit> {
        self.hits.get(n.checked_sub(1)?)
    }

    /// Passages `numbers` as a model reads them: `[n] (source) text`, one a line, the source
    /// being the title, heading and page when known ([`CitedPassage::source`]).
    pub fn render(&self, numbers: &[usize]) -> String {
        if numbers.is_empty() {
            return "No passages found.".to_owned();
        }
        let mut text = String::new();
        for &n in numbers {
            if let Some(hit) = self.hit(n) {
                text.push_str(&format!(
                    "[{n}] ({}) {}\n",
                    CitedPassage::from(hit).source(),
                    hit.text.trim()
                ));
            }
        }
        text
    }

    /// Passages `numbers` as a session's client is told a tool found them.
    pub fn tool_passages(&self, numbers: &[usize]) -> Vec<crate::token_stream::ToolPassage> {
        numbers
            .iter()
            .filter_map(|&n| {
                let hit = self.hit(n)?;
                Some(crate::token_stream::ToolPassage {
                    number: n,
                    document_id: hit.document_id.clone(),
                    source: CitedPassage::from(hit).source(),
                })
            })
            .collect()
    }

    /// The passages as the query service's answerers take them, for `tenant`.
    pub fn scored(&self, tenant: &TenantId) -> Vec<ScoredChunk> {
        self.hits
            .iter()
            .map(|hit| ScoredChunk {
                chunk: StoredChunk {
                    tenant_id: tenant.to_string(),
                    collection: hit.collection.clone(),
                    document_id: hit.document_id.clone(),
                    chunk_index: hit.chunk_index,
                    text: hit.text.clone(),
                    metadata: hit.metadata.clone(),
                },
                score: hit.score,
            })
            .collect()
    }

    /// The citations of `answer`: the passages it cites by `[n]`, in order of appearance;
    /// every passage if it cites none (the answer still rests on them).
    pub fn citations(&self, answer: &str) -> Vec<Citation> {
        let mut numbers = cited_numbers(answer, self.hits.len());
        if numbers.is_empty() {
            numbers = (1..=self.hits.len()).collect();
        }
        numbers
            .into_iter()
            .filter_map(|n| Some(Citation::of(n, self.hit(n)?.into())))
            .collect()
    }
}

pub use answering::cited_numbers;

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A hit of document `document_id`, chunk 0, collection `docs`.
    pub fn hit(document_id: &str, text: &str, score: f32) -> Hit {
        Hit {
            text: text.into(),
            score,
            document_id: document_id.into(),
            chunk_index: 0,
            collection: "docs".into(),
            metadata: Default::default(),
        }
    }

    /// Knowledge that always finds the same hits and remembers what it was asked.
    #[derive(Default)]
    pub struct Fixed {
        pub hits: Vec<Hit>,
        pub asked: Mutex<Vec<(String, usize)>>,
    }

    impl Knowledge for Fixed {
        async fn search(
            &self,
            query: &str,
            top_k: usize,
            _timeout: Duration,
        ) -> Result<Vec<Hit>, ActionError> {
            self.asked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((query.to_owned(), top_k));
            Ok(self.hits.iter().take(top_k).cloned().collect())
        }
    }

    #[test]
    fn passages_keep_their_first_number() {
        let mut passages = Passages::default();
        assert_eq!(
            passages.add(vec![hit("a", "A.", 0.9), hit("b", "B.", 0.5)]),
            [1, 2]
        );
        assert_eq!(
            passages.add(vec![hit("c", "C.", 0.7), hit("a", "A.", 0.9)]),
            [3, 1]
        );
        assert_eq!(
            passages.render(&[3, 1]),
            "[3] (c, part 0) C.\n[1] (a, part 0) A.\n"
        );
        assert_eq!(passages.render(&[]), "No passages found.");
        let cited = passages.citations("From C [3] and A [1, 9].");
        let numbers: Vec<usize> = cited.iter().map(|c| c.number).collect();
        assert_eq!(numbers, [3, 1]);
        assert_eq!(cited[0].document_id, "c");
        // No markers: every passage.
        assert_eq!(passages.citations("no markers").len(), 3);
        assert!(Passages::default().citations("[1]").is_empty());
    }
}
