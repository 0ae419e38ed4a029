//! Answers from any OpenAI-compatible chat API (Groq, OpenAI, Ollama, vLLM).
//!
//! The passages go into the prompt numbered `[1]…[n]`; the model is told to answer only
//! from them and cite them by number. The citations returned are the passages the answer
//! actually cites (all of them if the model cited none).

use async_trait::async_trait;
use platform::openai::{ChatMessage, ChatRequest, OpenAiClient};
use query_contract::{Answered, Usage};
use shared::ActionError;

use crate::{Answerer, Question, citations};

/// The instructions used unless the action brings its own.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You answer questions using only the numbered passages \
you are given. Cite every passage you use by its number in square brackets, like [1]. If the \
passages do not contain the answer, say so.";

/// A chat API and its default model.
pub struct ChatAnswerer {
    client: OpenAiClient,
    model: String,
    temperature: f32,
    max_tokens: u32,
}

impl ChatAnswerer {
    /// Answers with `model` unless an action names another.
    pub fn new(client: OpenAiClient, model: impl Into<String>) -> Self {
        Self {
            client,
            model: model.into(),
            temperature: 0.2,
            max_tokens: 1024,
        }
    }
}

#[async_trait]
impl Answerer for ChatAnswerer {
    fn calls_api(&self) -> bool {
        true
    }

    async fn answer(&self, question: Question<'_>) -> Result<Answered, ActionError> {
        let model = question.model.unwrap_or(&self.model).to_owned();
        let request = ChatRequest::new(
            model.clone(),
            vec![
                ChatMessage::system(question.system_prompt.unwrap_or(DEFAULT_SYSTEM_PROMPT)),
                ChatMessage::user(prompt(&question)),
            ],
        )
        .with_temperature(self.temperature)
        .with_max_tokens(self.max_tokens);
        let completion = self.client.chat(&request).await?;
        let answer = completion.message.content.unwrap_or_default();
        Ok(Answered {
            citations: citations(&answer, question.passages),
            answer,
            usage: Usage {
                prompt_tokens: completion.usage.prompt_tokens,
                completion_tokens: completion.usage.completion_tokens,
                total_tokens: completion.usage.total_tokens,
            },
            model,
        })
    }
}

/// The user message: numbered passages, then the question.
pub fn prompt(question: &Question<'_>) -> String {
    let mut text = String::from("Passages:\n");
    for (i, passage) in question.passages.iter().enumerate() {
        text.push_str(&format!(
            "[{}] ({}) {}\n",
            i + 1,
            crate::cited(passage).source(),
            passage.chunk.text.trim()
        ));
    }
    if question.passages.is_empty() {
        text.push_str("(none found)\n");
    }
    text.push_str("\nQuestion: ");
    text.push_str(question.query);
    text
}

#[cfg(test)]
mod tests {
    use crate::cited_numbers;

    #[test]
    fn finds_citation_markers() {
        assert_eq!(
            cited_numbers("A [2]. B [1, 3] and [9] [x]", 3),
            vec![2, 1, 3]
        );
        assert!(cited_numbers("no markers", 3).is_empty());
    }
}
