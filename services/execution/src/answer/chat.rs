//! Answers from an OpenAI-compatible chat API (the same `DA_CHAT_*` settings as the query
//! service): the agent's system prompt, the conversation, then the message. With
//! `retrieval` but without `tools`, the passages found with the message go into the last
//! user message, numbered, as the query service's chat answerer puts them; with both, the
//! model searches itself ([`super::react`]).

use futures::StreamExt;
use platform::openai::{ChatCompletion, ChatEvent, ChatMessage, ChatRequest, OpenAiClient};
use shared::{ActionError, TenantId};

use super::Turn;
use crate::actions::{Reply, Usage};
use crate::history::{Message, Role};
use crate::knowledge::Knowledge;
use crate::token_stream::TokenSink;

/// How to use numbered passages, added to the agent's own prompt whenever passages are
/// given, so answers cite them whatever the agent's persona says.
pub const PASSAGE_RULES: &str = answering::chat::DEFAULT_SYSTEM_PROMPT;

/// A chat API and the model agents use unless they name one.
#[derive(Clone)]
pub struct ChatAgent {
    client: OpenAiClient,
    model: String,
}

impl ChatAgent {
    /// Answers with `model` unless an agent names another.
    pub fn new(client: OpenAiClient, model: impl Into<String>) -> Self {
        Self {
            client,
            model: model.into(),
        }
    }

    /// The model `agent` runs on.
    pub fn model_for(&self, agent: &crate::agent::Agent) -> String {
        agent.model.clone().unwrap_or_else(|| self.model.clone())
    }

    /// A request to the agent's model with the run's sampling settings (the request's over
    /// the agent's, else the defaults).
    pub fn request(&self, turn: &Turn<'_>, messages: Vec<ChatMessage>) -> ChatRequest {
        let sampling = &turn.agent.sampling;
        ChatRequest::new(self.model_for(turn.agent), messages)
            .with_temperature(sampling.temperature())
            .with_max_tokens(sampling.max_tokens())
            .with_top_p(sampling.top_p)
    }

    /// One model call: whole, or streamed with each token passed to `tokens` as it comes.
    pub async fn complete<S: TokenSink>(
        &self,
        request: &ChatRequest,
        tokens: Option<&S>,
    ) -> Result<ChatCompletion, ActionError> {
        let Some(tokens) = tokens else {
            return Ok(self.client.chat(request).await?);
        };
        let mut stream = self.client.chat_stream(request).await?;
        while let Some(event) = stream.next().await {
            match event? {
                ChatEvent::Token(token) => tokens.token(&token).await,
                ChatEvent::Done(completion) => return Ok(completion),
            }
        }
        Err(ActionError::unavailable(
            "the chat stream ended without its answer",
        ))
    }

    /// Answers `turn`: the ReAct loop when the agent searches through its tool, else one
    /// call with the passages found with the message (if the agent has `retrieval`).
    pub async fn answer<K: Knowledge, S: TokenSink>(
        &self,
        turn: &Turn<'_>,
        tenant: &TenantId,
        knowledge: &K,
        tokens: Option<&S>,
    ) -> Result<Reply, ActionError> {
        if turn.agent.retrieval && turn.agent.tools {
            return super::react::run(self, turn, knowledge, tokens).await;
        }
        let passages = turn.passages(knowledge, turn.agent.top_k).await?;
        let user = turn.user_message(&passages.scored(tenant));
        let system = turn.system_prompt();
        let request = self.request(turn, conversation(system, turn.history, user));
        let completion = self.complete(&request, tokens).await?;
        let answer = completion.text().to_owned();
        Ok(Reply {
            citations: passages.citations(&answer),
            answer,
            usage: usage(&completion),
            iterations: 1,
            model: request.model,
        })
    }
}

/// The agent's prompt followed by `rules`, either of which may be absent.
pub fn system_prompt(agent_prompt: &str, rules: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [Some(agent_prompt.trim()), rules]
        .into_iter()
        .flatten()
        .filter(|part| !part.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// The messages of a call: system prompt, the conversation so far, the new user message.
pub fn conversation(system: Option<String>, history: &[Message], user: String) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(history.len() + 2);
    messages.extend(system.map(ChatMessage::system));
    messages.extend(history.iter().map(|message| match message.role {
        Role::User => ChatMessage::user(message.content.clone()),
        Role::Assistant => ChatMessage::assistant(message.content.clone()),
    }));
    messages.push(ChatMessage::user(user));
    messages
}

/// A completion's token counts, as results report them.
pub fn usage(completion: &ChatCompletion) -> Usage {
    Usage {
        prompt_tokens: completion.usage.prompt_tokens,
        completion_tokens: completion.usage.completion_tokens,
        total_tokens: completion.usage.total_tokens,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use platform::openai::OpenAiConfig;
    use serde_json::Value;
    use testkit::openai_stub::{OpenAiStub, StubReply};
    use time::OffsetDateTime;

    use super::*;
    use crate::agent::Agent;
    use crate::knowledge::tests::{Fixed, hit};
    use crate::token_stream::tests::Collect;

    /// A chat agent on `stub` with the default model `stub-model`.
    pub fn chat_agent(stub: &OpenAiStub) -> ChatAgent {
        let config = OpenAiConfig::new(stub.url()).with_timeout(Duration::from_secs(5));
        ChatAgent::new(OpenAiClient::new(config).expect("client"), "stub-model")
    }

    pub fn tenant() -> TenantId {
        TenantId::new("acme").expect("tenant")
    }

    /// The messages of the `n`-th chat request the stub received.
    pub fn sent_messages(stub: &OpenAiStub, n: usize) -> Vec<Value> {
        let requests = stub.requests();
        requests[n].2["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn passages_in_the_prompt_after_the_conversation() {
        let stub = OpenAiStub::start().await;
        stub.push_reply(StubReply::Text("They eat meat [1].".into()));
        let knowledge = Fixed {
            hits: vec![hit("cats", "Cats eat meat.", 0.8)],
            ..Fixed::default()
        };
        let mut agent = Agent::new("a");
        agent.tools = false;
        agent.system_prompt = "You are the cat expert.".into();
        agent.model = Some("big-model".into());
        let history = [
            Message::user("Hi", OffsetDateTime::UNIX_EPOCH),
            Message::assistant("Hello!", Vec::new()),
        ];
        let turn = Turn {
            agent: &agent,
            history: &history,
            message: "What do cats eat?",
            search_timeout: Duration::from_secs(1),
        };
        let reply = chat_agent(&stub)
            .answer(&turn, &tenant(), &knowledge, None::<&Collect>)
            .await
            .expect("answer");
        assert_eq!(reply.answer, "They eat meat [1].");
        assert_eq!(reply.citations.len(), 1);
        assert_eq!((reply.iterations, reply.model.as_str()), (1, "big-model"));
        assert!(reply.usage.total_tokens > 0);

        let sent = sent_messages(&stub, 0);
        let roles: Vec<&str> = sent.iter().filter_map(|m| m["role"].as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        let system = sent[0]["content"].as_str().unwrap_or_default();
        assert!(system.starts_with("You are the cat expert.") && system.contains("[1]"));
        let last = sent[3]["content"].as_str().unwrap_or_default();
        assert!(last.contains("[1] (cats, part 0) Cats eat meat."), "{last}");
        assert!(last.ends_with("Question: What do cats eat?"), "{last}");
        assert!(stub.requests()[0].2.get("tools").is_none());
    }

    #[tokio::test]
    async fn without_retrieval_nothing_is_searched_and_tokens_stream() {
        let stub = OpenAiStub::start().await;
        stub.push_reply(StubReply::Text("Hello there, friend.".into()));
        let knowledge = Fixed::default();
        let mut agent = Agent::new("a");
        agent.retrieval = false;
        let turn = Turn {
            agent: &agent,
            history: &[],
            message: "Hi",
            search_timeout: Duration::from_secs(1),
        };
        let tokens = Collect::default();
        let reply = chat_agent(&stub)
            .answer(&turn, &tenant(), &knowledge, Some(&tokens))
            .await
            .expect("answer");
        assert_eq!(reply.answer, "Hello there, friend.");
        assert!(reply.citations.is_empty());
        assert!(tokens.tokens().len() >= 2, "{:?}", tokens.tokens());
        assert_eq!(tokens.tokens().concat(), reply.answer);
        assert!(knowledge.asked.lock().expect("lock").is_empty());
        let sent = sent_messages(&stub, 0);
        assert_eq!(sent.len(), 1, "no system prompt: {sent:?}");
        assert_eq!(stub.requests()[0].2["stream"], true);
    }
}
