//! Plain text: only decoding and whitespace normalisation, as one section.

use super::{DocumentKind, ExtractError, Extracted, Section, whitespace};

/// Reads UTF-8 text (a leading BOM is ignored); other encodings are rejected rather than
/// guessed, because mis-decoded text would silently poison the index.
pub(crate) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let text = decode_utf8(bytes, DocumentKind::Text)?;
    Ok(Extracted {
        title: None,
        sections: vec![Section {
            text: whitespace::normalize(text),
            heading: None,
            page: None,
        }],
    })
}

/// Decodes UTF-8 (without its BOM) for the text-based formats, naming the first bad byte
/// so the user can find it.
pub(crate) fn decode_utf8(bytes: &[u8], kind: DocumentKind) -> Result<&str, ExtractError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|err| ExtractError::Unreadable {
        kind,
        reason: format!(
            "not valid UTF-8 (invalid byte at offset {}); save the file as UTF-8",
            err.valid_up_to()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::{extract as extract_any, fixture};

    #[test]
    fn reads_the_sample() {
        let extracted = extract_any(&fixture("sample.txt"), DocumentKind::Text).expect("text");
        assert_eq!(extracted.title, None);
        assert_eq!(extracted.sections.len(), 1);
        let text = &extracted.sections[0].text;
        assert!(text.contains("Plain text files are the simplest documents to ingest."));
        assert!(text.contains("A second paragraph follows a blank line."));
        assert!(
            text.contains("spacing.\n\nA second"),
            "paragraphs kept: {text:?}"
        );
        assert!(!text.contains("  "), "spaces collapsed: {text:?}");
    }

    #[test]
    fn latin1_is_unreadable() {
        let result = extract_any(b"caf\xe9 au lait", DocumentKind::Text);
        match result {
            Err(ExtractError::Unreadable { kind, reason }) => {
                assert_eq!(kind, DocumentKind::Text);
                assert!(reason.contains("UTF-8"), "{reason}");
            }
            other => panic!("expected Unreadable, got {other:?}"),
        }
    }

    #[test]
    fn bom_is_ignored() {
        let extracted = extract_any(b"\xEF\xBB\xBFhello", DocumentKind::Text).expect("text");
        assert_eq!(extracted.sections[0].text, "hello");
    }
}
