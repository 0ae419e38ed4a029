//! What the local model reads: a ChatML conversation, kept short.
//!
//! On two CPU cores every prompt token costs time before the first answer token (see the
//! README's "Answers (RAG eval)"), so the model reads at most [`MAX_PASSAGES`]
//! passages, each cut to [`MAX_PASSAGE_CHARS`], in the same `[n] (source) text` form the
//! chat answerer sends ([`crate::chat::prompt`]).

use crate::ScoredChunk;

/// Passages the model reads at most; an answer cites only among them.
pub const MAX_PASSAGES: usize = 3;

/// Characters of a passage the model reads at most (about 150 tokens of English).
pub const MAX_PASSAGE_CHARS: usize = 600;

/// Who says a message of a ChatML conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// The instructions.
    System,
    /// The person asking.
    User,
    /// The model (earlier answers).
    Assistant,
}

impl Speaker {
    fn role(self) -> &'static str {
        match self {
            Speaker::System => "system",
            Speaker::User => "user",
            Speaker::Assistant => "assistant",
        }
    }
}

/// `messages` in ChatML, ending where the assistant's answer starts, as SmolLM2-Instruct
/// was trained to read a conversation: `<|im_start|>role\ncontent<|im_end|>\n` each.
pub fn chat_ml<'a>(messages: impl IntoIterator<Item = (Speaker, &'a str)>) -> String {
    let mut text = String::new();
    for (speaker, content) in messages {
        text.push_str("<|im_start|>");
        text.push_str(speaker.role());
        text.push('\n');
        text.push_str(content.trim());
        text.push_str("<|im_end|>\n");
    }
    text.push_str("<|im_start|>assistant\n");
    text
}

/// The first [`MAX_PASSAGES`] of `passages`, each cut to [`MAX_PASSAGE_CHARS`]: what the
/// model reads, numbered as the originals (`[n]` still cites `passages[n - 1]`).
pub fn read(passages: &[ScoredChunk]) -> Vec<ScoredChunk> {
    passages
        .iter()
        .take(MAX_PASSAGES)
        .map(|passage| {
            let mut passage = passage.clone();
            let cut = shorten(&passage.chunk.text, MAX_PASSAGE_CHARS).len();
            passage.chunk.text.truncate(cut);
            passage
        })
        .collect()
}

/// `text` cut to at most `max` characters, at the last whitespace before the limit when
/// there is one (so no word is cut in half).
pub fn shorten(text: &str, max: usize) -> &str {
    let Some((end, _)) = text.char_indices().nth(max) else {
        return text;
    };
    let head = &text[..end];
    match head.rfind(char::is_whitespace) {
        Some(space) if space > 0 => head[..space].trim_end(),
        _ => head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_ml_ends_where_the_answer_starts() {
        let prompt = chat_ml([(Speaker::System, "Be brief."), (Speaker::User, " Hi\n")]);
        assert_eq!(
            prompt,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn shorten_cuts_between_words() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("one two three", 9), "one two");
        assert_eq!(shorten("unbroken", 4), "unbr");
        assert_eq!(shorten("héllo wörld", 8), "héllo");
    }
}
