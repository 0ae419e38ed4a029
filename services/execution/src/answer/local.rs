//! Answers from the small model that runs in the process (`DA_ANSWERER=local`, the same
//! setting as the query service; [`answering::local`]), streaming its tokens like a chat
//! API's.
//!
//! The model reads the agent's prompt followed by the passage rules, the conversation's
//! last [`HISTORY_MESSAGES`] messages (shortened), then the message with the passages found
//! with it, at most [`MAX_PASSAGES`] of them (the search asks for no more). It cannot call
//! tools: an agent with `tools` answers from the passages found with its message, as one
//! without. Sampling follows the run's and the agent's settings where they are set;
//! otherwise it is greedy, and an answer is at most [`MAX_TOKENS`] tokens whatever is asked.

use answering::local::prompt::{MAX_PASSAGE_CHARS, MAX_PASSAGES, Speaker, chat_ml, read, shorten};
use answering::local::{LocalModel, MAX_TOKENS, Sampling};
use shared::{ActionError, TenantId};
use tokio::sync::mpsc;

use super::Turn;
use crate::actions::Reply;
use crate::history::Role;
use crate::knowledge::Knowledge;
use crate::token_stream::TokenSink;

/// Messages of the conversation the model reads before the new one: the last exchange
/// (every prompt token costs time on a CPU).
pub const HISTORY_MESSAGES: usize = 2;

/// The local model, shared by every run of the process.
#[derive(Clone)]
pub struct LocalAgent {
    model: LocalModel,
}

impl LocalAgent {
    /// Answers with `model`.
    pub fn new(model: LocalModel) -> Self {
        Self { model }
    }

    /// Answers `turn` (see the module documentation), passing each piece of the answer to
    /// `tokens` as it is written.
    pub async fn answer<K: Knowledge, S: TokenSink>(
        &self,
        turn: &Turn<'_>,
        tenant: &TenantId,
        knowledge: &K,
        tokens: Option<&S>,
    ) -> Result<Reply, ActionError> {
        let passages = turn
            .passages(knowledge, turn.agent.top_k.min(MAX_PASSAGES))
            .await?;
        let user = turn.user_message(&read(&passages.scored(tenant)));
        let system = turn.system_prompt();
        let earlier = &turn.history[turn.history.len().saturating_sub(HISTORY_MESSAGES)..];
        let prompt = chat_ml(
            system
                .as_deref()
                .map(|system| (Speaker::System, system))
                .into_iter()
                .chain(earlier.iter().map(|message| {
                    let speaker = match message.role {
                        Role::User => Speaker::User,
                        Role::Assistant => Speaker::Assistant,
                    };
                    (speaker, shorten(&message.content, MAX_PASSAGE_CHARS))
                }))
                .chain([(Speaker::User, user.as_str())]),
        );
        let asked = turn.agent.sampling;
        let sampling = Sampling {
            temperature: asked.temperature.unwrap_or(0.0),
            top_p: asked.top_p,
            max_tokens: asked.max_tokens.map_or(MAX_TOKENS, |n| n.min(MAX_TOKENS)),
        };

        let (sender, mut pieces) = mpsc::unbounded_channel();
        let generate = self
            .model
            .generate(prompt, sampling, tokens.is_some().then_some(sender));
        let relay = async {
            if let Some(tokens) = tokens {
                while let Some(piece) = pieces.recv().await {
                    tokens.token(&piece).await;
                }
            }
        };
        let (generation, ()) = tokio::join!(generate, relay);
        let generation = generation?;
        let usage = generation.usage();
        let answer = generation.text;
        Ok(Reply {
            citations: passages.citations(&answer),
            answer,
            usage,
            iterations: 1,
            model: self.model.name().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::agent::Agent;
    use crate::answer::chat::tests::tenant;
    use crate::knowledge::tests::{Fixed, hit};
    use crate::token_stream::tests::Collect;

    #[tokio::test]
    async fn streams_the_real_model_s_tokens_and_cites_what_it_read() {
        let path = answering::packaged_local_model();
        let Ok(model) = LocalModel::new(&path) else {
            eprintln!("skipped: no local model at {}", path.display());
            return;
        };
        let knowledge = Fixed {
            hits: vec![hit(
                "cats",
                "Cats sleep for about sixteen hours a day.",
                0.9,
            )],
            ..Fixed::default()
        };
        let mut agent = Agent::new("a");
        agent.top_k = 5;
        agent.sampling.max_tokens = Some(6);
        let turn = Turn {
            agent: &agent,
            history: &[],
            message: "How long do cats sleep?",
            search_timeout: Duration::from_secs(1),
        };
        let tokens = Collect::default();
        let reply = LocalAgent::new(model)
            .answer(&turn, &tenant(), &knowledge, Some(&tokens))
            .await
            .expect("answer");
        assert!(!reply.answer.trim().is_empty());
        assert_eq!(tokens.tokens().concat(), reply.answer);
        assert!(tokens.tokens().len() >= 2, "{:?}", tokens.tokens());
        assert_eq!((reply.iterations, reply.citations.len()), (1, 1));
        assert!(reply.usage.completion_tokens <= 6);
        assert_eq!(reply.model, "SmolLM2-135M-Instruct.Q4_1");
        // The search asks for no more passages than the model reads.
        assert_eq!(
            *knowledge.asked.lock().expect("lock"),
            [("How long do cats sleep?".to_owned(), MAX_PASSAGES)]
        );
    }
}
