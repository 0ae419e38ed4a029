//! The offline answer: the query service's extractive answerer over the passages found
//! with the message. No model and no network beyond the search, the same answer every
//! time; the conversation and the agent's prompt cannot change what it quotes.

use shared::{ActionError, TenantId};

use super::Turn;
use crate::actions::Reply;
use crate::knowledge::Knowledge;
use crate::token_stream::{TokenSink, word_chunks};

/// Searches with the message (when the agent has `retrieval`), quotes the best sentences,
/// and, when `tokens` is given, streams the answer word by word, so streaming clients work
/// the same offline as with a model.
pub async fn answer<K: Knowledge, S: TokenSink>(
    turn: &Turn<'_>,
    tenant: &TenantId,
    knowledge: &K,
    tokens: Option<&S>,
) -> Result<Reply, ActionError> {
    let passages = turn.passages(knowledge, turn.agent.top_k).await?;
    let answered = answering::extractive::answer(turn.message, &passages.scored(tenant));
    if let Some(tokens) = tokens {
        for chunk in word_chunks(&answered.answer) {
            tokens.token(chunk).await;
        }
    }
    Ok(Reply {
        answer: answered.answer,
        citations: answered.citations,
        usage: answered.usage,
        iterations: 1,
        model: answered.model,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::agent::Agent;
    use crate::knowledge::tests::{Fixed, hit};
    use crate::token_stream::tests::Collect;

    #[tokio::test]
    async fn quotes_cites_and_streams_the_same_words() {
        let knowledge = Fixed {
            hits: vec![
                hit("cats", "Cats sleep a lot. They purr.", 0.9),
                hit("dogs", "Dogs bark.", 0.2),
            ],
            ..Fixed::default()
        };
        let mut agent = Agent::new("a");
        agent.top_k = 3;
        let turn = Turn {
            agent: &agent,
            history: &[],
            message: "Do cats sleep?",
            search_timeout: Duration::from_secs(1),
        };
        let tenant = TenantId::new("acme").expect("tenant");
        let tokens = Collect::default();
        let reply = answer(&turn, &tenant, &knowledge, Some(&tokens))
            .await
            .expect("answer");
        assert_eq!(reply.answer, "Cats sleep a lot. [1]");
        assert_eq!(reply.citations[0].document_id, "cats");
        assert_eq!((reply.iterations, reply.model.as_str()), (1, "extractive"));
        assert_eq!(tokens.tokens().concat(), reply.answer);
        assert!(tokens.tokens().len() >= 2);
        assert_eq!(
            *knowledge.asked.lock().expect("lock"),
            [("Do cats sleep?".to_owned(), 3)]
        );

        // Without retrieval nothing is searched and nothing cited.
        agent.retrieval = false;
        let turn = Turn {
            agent: &agent,
            history: &[],
            message: "Do cats sleep?",
            search_timeout: Duration::from_secs(1),
        };
        let reply = answer(&turn, &tenant, &knowledge, None::<&Collect>)
            .await
            .expect("answer");
        assert!(reply.citations.is_empty());
        assert_eq!(knowledge.asked.lock().expect("lock").len(), 1);
    }
}
