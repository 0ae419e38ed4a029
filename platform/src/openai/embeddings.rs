//! `POST {base}/embeddings`: many texts in, one vector per text out, in the texts' order.

use serde::{Deserialize, Serialize};

use super::{OpenAiClient, OpenAiError};

/// The vectors for a batch of texts, with what the API says it used, so callers can record
/// the model that actually answered and bill or limit by tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per input, in input order (the API may answer in any order; its `index`
    /// field decides).
    pub vectors: Vec<Vec<f32>>,
    /// The model name the API reports, which may differ from the requested alias.
    pub model: String,
    /// Input tokens counted by the API; 0 when it does not say.
    pub prompt_tokens: u64,
}

/// The request body. `encoding_format: "float"` because some servers default to base64.
#[derive(Serialize)]
struct EmbeddingsRequest<'a> {
    model: &'a str,
    input: &'a [String],
    encoding_format: &'static str,
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<EmbeddingsUsage>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct EmbeddingsUsage {
    #[serde(default)]
    prompt_tokens: u64,
}

impl OpenAiClient {
    /// Embeds `inputs` with `model` in one request. An empty batch answers at once without
    /// a request (the APIs reject an empty `input`). Batch sizes are the caller's business:
    /// APIs cap them (OpenAI at 2048 inputs), and an oversized batch comes back as a 4xx.
    pub async fn embeddings(
        &self,
        model: &str,
        inputs: &[String],
    ) -> Result<Embeddings, OpenAiError> {
        if inputs.is_empty() {
            return Ok(Embeddings {
                vectors: Vec::new(),
                model: model.to_owned(),
                prompt_tokens: 0,
            });
        }
        let request = EmbeddingsRequest {
            model,
            input: inputs,
            encoding_format: "float",
        };
        let response: EmbeddingsResponse = self.post_json("embeddings", &request).await?;
        let vectors = in_input_order(response.data, inputs.len()).map_err(|why| {
            OpenAiError::Decode(format!("{}: {why}", self.endpoint_path("embeddings")))
        })?;
        Ok(Embeddings {
            vectors,
            model: if response.model.is_empty() {
                model.to_owned()
            } else {
                response.model
            },
            prompt_tokens: response.usage.map_or(0, |usage| usage.prompt_tokens),
        })
    }
}

/// Places each item at its `index`, insisting on exactly one vector per input: a missing or
/// duplicated vector would silently attach the wrong vector to a text.
fn in_input_order(items: Vec<EmbeddingItem>, count: usize) -> Result<Vec<Vec<f32>>, String> {
    if items.len() != count {
        return Err(format!("{} vectors for {count} inputs", items.len()));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; count];
    for item in items {
        let slot = slots.get_mut(item.index).ok_or_else(|| {
            format!(
                "vector index {} out of range for {count} inputs",
                item.index
            )
        })?;
        if slot.replace(item.embedding).is_some() {
            return Err(format!("vector index {} appears twice", item.index));
        }
    }
    // Every slot is filled: `count` distinct in-range indices were placed.
    Ok(slots.into_iter().flatten().collect())
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    fn item(index: usize, value: f32) -> EmbeddingItem {
        EmbeddingItem {
            index,
            embedding: vec![value],
        }
    }

    #[test]
    fn items_are_placed_by_index_and_checked() {
        let ordered = in_input_order(vec![item(1, 1.0), item(0, 0.0)], 2).expect("valid");
        assert_eq!(ordered, vec![vec![0.0], vec![1.0]]);
        assert!(in_input_order(vec![item(0, 0.0)], 2).is_err());
        assert!(in_input_order(vec![item(0, 0.0), item(0, 1.0)], 2).is_err());
        assert!(in_input_order(vec![item(0, 0.0), item(2, 1.0)], 2).is_err());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::openai::{OpenAiClient, OpenAiConfig};
    use testkit::openai_stub::OpenAiStub;

    fn client(stub: &OpenAiStub) -> OpenAiClient {
        let config = OpenAiConfig::new(stub.url())
            .with_api_key("sk-embed")
            .with_timeout(Duration::from_secs(5));
        OpenAiClient::new(config).expect("valid config")
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[tokio::test]
    async fn embeddings_come_back_with_model_and_tokens() {
        let stub = OpenAiStub::start().await.with_dimensions(16);
        let inputs = vec!["the quick brown fox".to_owned(), "jumps".to_owned()];
        let result = client(&stub)
            .embeddings("text-embedding-3-small", &inputs)
            .await
            .expect("embeddings");
        assert_eq!(result.vectors.len(), 2);
        assert!(result.vectors.iter().all(|v| v.len() == 16));
        assert_eq!(result.model, "text-embedding-3-small");
        assert_eq!(result.prompt_tokens, 5);
        let norm = dot(&result.vectors[0], &result.vectors[0]).sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");

        let requests = stub.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].0, "/v1/embeddings");
        assert_eq!(requests[0].1.as_deref(), Some("Bearer sk-embed"));
        assert_eq!(requests[0].2["encoding_format"], "float");
        assert_eq!(requests[0].2["input"][1], "jumps");
    }

    #[tokio::test]
    async fn vectors_follow_input_order_not_response_order() {
        // The stub answers its data array in reverse; the client must sort by `index`.
        let stub = OpenAiStub::start().await;
        let client = client(&stub);
        let inputs: Vec<String> = ["alpha", "beta gamma", "delta epsilon zeta"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let batch = client.embeddings("m", &inputs).await.expect("batch");
        for (i, input) in inputs.iter().enumerate() {
            let single = client
                .embeddings("m", std::slice::from_ref(input))
                .await
                .expect("single");
            assert_eq!(batch.vectors[i], single.vectors[0], "input {i}");
        }
    }

    #[tokio::test]
    async fn similar_texts_get_similar_stub_vectors() {
        let stub = OpenAiStub::start().await.with_dimensions(64);
        let inputs: Vec<String> = [
            "rust async runtime tokio",
            "tokio async runtime for rust",
            "banana bread recipe",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let v = client(&stub)
            .embeddings("m", &inputs)
            .await
            .expect("ok")
            .vectors;
        assert!(dot(&v[0], &v[1]) > dot(&v[0], &v[2]));
    }

    #[tokio::test]
    async fn an_empty_batch_sends_nothing() {
        let stub = OpenAiStub::start().await;
        let result = client(&stub).embeddings("m", &[]).await.expect("ok");
        assert!(result.vectors.is_empty());
        assert!(stub.requests().is_empty());
    }
}
