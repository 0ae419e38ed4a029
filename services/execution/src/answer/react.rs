//! The ReAct loop: the model reasons, asks for the `knowledge` tool when it needs facts,
//! reads the numbered passages it returns, and repeats until it answers in text.
//!
//! Every model call is an iteration; a run makes at most the agent's `max_iterations`. A
//! tool call that cannot be served (unknown tool, bad arguments, a failed or slow search)
//! is answered with an error text the model can act on, as ReAct agents do, instead of
//! failing the run: the model may rephrase, or answer from what it has. Passages keep one
//! number for the whole run ([`Passages`]), so `[n]` in the final answer is unambiguous.

use platform::openai::{ChatMessage, ToolCall, ToolSpec};
use serde::Deserialize;
use serde_json::json;
use shared::ActionError;

use super::Turn;
use super::chat::{ChatAgent, conversation, system_prompt, usage};
use crate::actions::{Reply, Usage};
use crate::knowledge::{Knowledge, Passages};
use crate::token_stream::{TokenSink, ToolEvent};

/// The one tool's name.
pub const KNOWLEDGE_TOOL: &str = "knowledge";

/// How to use the tool and its passages, added to the agent's own prompt.
pub const TOOL_RULES: &str = "Use the `knowledge` tool to search the knowledge base whenever \
the answer may depend on its documents. It returns numbered passages. Answer only from \
them, and cite every passage you use by its number in square brackets, like [1]. If the \
passages do not contain the answer, say so.";

/// The `knowledge` tool as the model sees it.
pub fn knowledge_tool() -> ToolSpec {
    ToolSpec::new(
        KNOWLEDGE_TOOL,
        "Searches the knowledge base and returns the most relevant passages, numbered.",
        json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for."},
                "top_k": {"type": "integer", "minimum": 1, "maximum": 100,
                          "description": "How many passages (default: the agent's)."}
            },
            "required": ["query"]
        }),
    )
}

/// The arguments of a `knowledge` call.
#[derive(Debug, Deserialize)]
struct KnowledgeArgs {
    query: String,
    #[serde(default)]
    top_k: Option<usize>,
}

/// Runs the loop for `turn`; see the module documentation.
pub async fn run<K: Knowledge, S: TokenSink>(
    chat: &ChatAgent,
    turn: &Turn<'_>,
    knowledge: &K,
    tokens: Option<&S>,
) -> Result<Reply, ActionError> {
    let agent = turn.agent;
    let system = system_prompt(&agent.system_prompt, Some(TOOL_RULES));
    let mut request = chat
        .request(
            turn,
            conversation(system, turn.history, turn.message.to_owned()),
        )
        .with_tools(vec![knowledge_tool()]);
    let mut passages = Passages::default();
    let mut total = Usage::default();
    let mut last_text: Option<String> = None;
    let max = agent.max_iterations.max(1);
    for iteration in 1..=max {
        let completion = chat.complete(&request, tokens).await?;
        add(&mut total, usage(&completion));
        let text = completion
            .message
            .content
            .clone()
            .filter(|text| !text.trim().is_empty());
        let calls = completion.message.tool_calls.clone();
        if calls.is_empty() {
            let answer = text.unwrap_or_default();
            return Ok(reply(answer, &passages, total, iteration, request.model));
        }
        last_text = text;
        request.messages.push(completion.message);
        for call in &calls {
            if let Some(tokens) = tokens {
                tokens
                    .tool(&ToolEvent::ToolCall {
                        call_id: &call.id,
                        name: &call.function.name,
                        arguments: &call.function.arguments,
                    })
                    .await;
            }
            let served = call_tool(call, turn, knowledge, &mut passages).await;
            if let Some(tokens) = tokens {
                let (found, error) = match &served {
                    Ok(numbers) => (passages.tool_passages(numbers), None),
                    Err(why) => (Vec::new(), Some(why.clone())),
                };
                tokens
                    .tool(&ToolEvent::ToolResult {
                        call_id: &call.id,
                        name: &call.function.name,
                        passages: found,
                        error,
                    })
                    .await;
            }
            let result = match served {
                Ok(numbers) => passages.render(&numbers),
                Err(why) => format!("Error: {why}"),
            };
            request
                .messages
                .push(ChatMessage::tool_result(call.id.clone(), result));
        }
    }
    match last_text {
        Some(answer) => Ok(reply(answer, &passages, total, max, request.model)),
        None => Err(ActionError::handler(format!(
            "no answer after {max} iterations"
        ))),
    }
}

fn reply(
    answer: String,
    passages: &Passages,
    usage: Usage,
    iterations: u32,
    model: String,
) -> Reply {
    Reply {
        citations: passages.citations(&answer),
        answer,
        usage,
        iterations,
        model,
    }
}

fn add(total: &mut Usage, more: Usage) {
    total.prompt_tokens += more.prompt_tokens;
    total.completion_tokens += more.completion_tokens;
    total.total_tokens += more.total_tokens;
}

/// Serves one tool call: the numbers of the passages it found (among all the run's), or why
/// it could not (the model reads that, after `Error: `, as the call's result).
async fn call_tool<K: Knowledge>(
    call: &ToolCall,
    turn: &Turn<'_>,
    knowledge: &K,
    passages: &mut Passages,
) -> Result<Vec<usize>, String> {
    if call.function.name != KNOWLEDGE_TOOL {
        return Err(format!(
            "there is no tool {:?}; the only tool is {KNOWLEDGE_TOOL}.",
            call.function.name
        ));
    }
    let args = match serde_json::from_str::<KnowledgeArgs>(&call.function.arguments) {
        Ok(args) if !args.query.trim().is_empty() => args,
        Ok(_) => return Err("the query is empty.".to_owned()),
        Err(err) => {
            return Err(format!(
                "unreadable arguments ({err}); expected {{\"query\": string, \"top_k\": integer (optional)}}."
            ));
        }
    };
    let top_k = args.top_k.unwrap_or(turn.agent.top_k).clamp(1, 100);
    let timeout = turn.agent.tool_timeout();
    let searched = tokio::time::timeout(timeout, knowledge.search(&args.query, top_k, timeout))
        .await
        .unwrap_or_else(|_| {
            Err(ActionError::unavailable(format!(
                "the search took longer than {} ms",
                turn.agent.tool_timeout_ms
            )))
        });
    match searched {
        Ok(hits) => Ok(passages.add(hits)),
        Err(err) => {
            tracing::warn!(code = %err.code.as_str(), message = %err.message, "knowledge tool failed");
            Err(format!("the search failed: {}", err.message))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use shared::ErrorCode;
    use testkit::openai_stub::{OpenAiStub, StubReply};

    use super::*;
    use crate::agent::Agent;
    use crate::answer::chat::tests::{chat_agent, sent_messages, tenant};
    use crate::knowledge::tests::{Fixed, hit};
    use crate::token_stream::tests::Collect;

    fn knowledge() -> Fixed {
        Fixed {
            hits: vec![
                hit("cats", "Cats eat meat.", 0.8),
                hit("dogs", "Dogs eat anything.", 0.4),
            ],
            ..Fixed::default()
        }
    }

    fn turn(agent: &Agent) -> Turn<'_> {
        Turn {
            agent,
            history: &[],
            message: "What do cats eat?",
            search_timeout: Duration::from_secs(1),
        }
    }

    fn knowledge_call(arguments: serde_json::Value) -> StubReply {
        StubReply::ToolCall {
            name: KNOWLEDGE_TOOL.into(),
            arguments,
        }
    }

    #[tokio::test]
    async fn searches_through_the_tool_then_answers_citing() {
        let stub = OpenAiStub::start().await;
        stub.push_reply(knowledge_call(json!({"query": "cat food", "top_k": 1})));
        stub.push_reply(StubReply::Text("Cats eat meat [1].".into()));
        let knowledge = knowledge();
        let agent = Agent::new("a");
        let reply = chat_agent(&stub)
            .answer(&turn(&agent), &tenant(), &knowledge, None::<&Collect>)
            .await
            .expect("answer");
        assert_eq!(reply.answer, "Cats eat meat [1].");
        assert_eq!(reply.iterations, 2);
        assert_eq!(reply.citations.len(), 1);
        assert_eq!(reply.citations[0].document_id, "cats");
        assert_eq!(
            *knowledge.asked.lock().expect("lock"),
            [("cat food".to_owned(), 1)]
        );

        let requests = stub.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            requests[0].2["tools"][0]["function"]["name"],
            KNOWLEDGE_TOOL
        );
        let sent = sent_messages(&stub, 1);
        let tool = sent.last().expect("a tool result");
        assert_eq!(tool["role"], "tool");
        assert_eq!(tool["content"], "[1] (cats, part 0) Cats eat meat.\n");
        assert_eq!(
            tool["tool_call_id"],
            sent[sent.len() - 2]["tool_calls"][0]["id"]
        );
        // Usage of both calls, summed: the stub counts words (6 in the arguments, 4 in
        // the answer).
        assert_eq!(reply.usage.completion_tokens, 10, "{:?}", reply.usage);
        assert_eq!(
            reply.usage.total_tokens,
            reply.usage.prompt_tokens + reply.usage.completion_tokens
        );
    }

    #[tokio::test]
    async fn stops_after_max_iterations() {
        let stub = OpenAiStub::start().await;
        for _ in 0..5 {
            stub.push_reply(knowledge_call(json!({"query": "more"})));
        }
        let mut agent = Agent::new("a");
        agent.max_iterations = 3;
        let err = chat_agent(&stub)
            .answer(&turn(&agent), &tenant(), &knowledge(), None::<&Collect>)
            .await
            .expect_err("no answer");
        assert_eq!(err.code, ErrorCode::HandlerError);
        assert_eq!(err.message, "no answer after 3 iterations");
        assert_eq!(stub.requests().len(), 3);
    }

    #[tokio::test]
    async fn bad_calls_are_told_to_the_model() {
        let stub = OpenAiStub::start().await;
        stub.push_reply(StubReply::ToolCall {
            name: "calculator".into(),
            arguments: json!({}),
        });
        stub.push_reply(knowledge_call(json!({"top_k": 2})));
        stub.push_reply(knowledge_call(json!({"query": "  "})));
        stub.push_reply(StubReply::Text("I could not find it.".into()));
        let agent = Agent::new("a");
        let knowledge = knowledge();
        let reply = chat_agent(&stub)
            .answer(&turn(&agent), &tenant(), &knowledge, None::<&Collect>)
            .await
            .expect("answer");
        assert_eq!(reply.iterations, 4);
        assert!(reply.citations.is_empty());
        assert!(knowledge.asked.lock().expect("lock").is_empty());
        let sent = sent_messages(&stub, 3);
        let errors: Vec<&str> = sent
            .iter()
            .filter(|m| m["role"] == "tool")
            .filter_map(|m| m["content"].as_str())
            .collect();
        assert_eq!(errors.len(), 3);
        assert!(errors[0].contains("no tool \"calculator\""), "{errors:?}");
        assert!(errors[1].contains("unreadable arguments"), "{errors:?}");
        assert!(errors[2].contains("empty"), "{errors:?}");
    }

    #[tokio::test]
    async fn streams_the_tokens_of_the_answer() {
        let stub = OpenAiStub::start().await;
        stub.push_reply(knowledge_call(json!({"query": "cats"})));
        stub.push_reply(StubReply::Text("Cats eat meat [1].".into()));
        let agent = Agent::new("a");
        let tokens = Collect::default();
        let reply = chat_agent(&stub)
            .answer(&turn(&agent), &tenant(), &knowledge(), Some(&tokens))
            .await
            .expect("answer");
        assert_eq!(tokens.tokens().concat(), reply.answer);
        assert!(tokens.tokens().len() >= 2);
        assert_eq!(reply.citations.len(), 1);
    }
}
