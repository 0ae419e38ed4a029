//! Text extraction: the first stage of ingestion, turning an uploaded or fetched document
//! into plain text sections that the chunker can split without losing where the text came
//! from (its heading, its PDF page).
//!
//! [`DocumentKind::detect`] decides the format, [`extract`] does the work synchronously
//! (callers run it on the blocking pool: PDF parsing is CPU-bound), and [`url::fetch`]
//! brings a document in from the web with size and time limits.
//!
//! Documents are untrusted: [`limits`] holds every cap on what one may cost (nesting depth,
//! decompressed bytes per stream and per document, repeated PDF content, heading and title
//! lengths), and a document past one fails with [`ExtractError::Limit`] naming it. No
//! extractor recurses on the input's structure without a depth cap. [`precheck`] is the
//! cheap look the HTTP upload path takes instead of extracting.

mod detect;
mod docx;
mod html;
mod inflate;
pub mod limits;
mod markdown;
mod pdf;
mod pdf_guard;
pub mod sample;
mod sections;
mod sniff;
mod text;
pub mod url;
mod whitespace;

pub use sniff::precheck;

use serde::{Deserialize, Serialize};

/// The formats the pipeline can read; the serde names are the ones the Python system this replaces and its
/// clients use in metadata and API payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentKind {
    /// Plain UTF-8 text.
    Text,
    /// CommonMark/GFM markdown.
    Markdown,
    /// An HTML page.
    Html,
    /// A PDF with a text layer.
    Pdf,
    /// A Word (Office Open XML) document.
    Docx,
}

impl DocumentKind {
    /// The stable lowercase name, so metadata and logs match the serde form exactly.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Markdown => "markdown",
            Self::Html => "html",
            Self::Pdf => "pdf",
            Self::Docx => "docx",
        }
    }

    /// Decides how to read a document from what is known about it, trusting the bytes over
    /// the labels: uploads often carry a wrong extension or a generic content type.
    ///
    /// Order: magic bytes (`%PDF-`, a zip holding `word/document.xml`; other known binary
    /// formats give `None`), then the content type, then the file extension, then a sniff
    /// of the bytes (HTML by `<!doctype html`/`<html`, else any valid UTF-8 is text).
    /// `None` means the format is not supported (HTTP 415).
    pub fn detect(
        file_name: Option<&str>,
        content_type: Option<&str>,
        bytes: &[u8],
    ) -> Option<DocumentKind> {
        detect::detect(file_name, content_type, bytes)
    }
}

impl std::fmt::Display for DocumentKind {
    /// Same as [`DocumentKind::as_str`], so error messages name formats consistently.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A document's text, kept in sections so chunks can carry their heading and page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extracted {
    /// The document's own title (HTML `<title>`, first H1, PDF/DOCX metadata), used as the
    /// display name when the upload has none better.
    pub title: Option<String>,
    /// The text in reading order; never empty when returned by [`extract`].
    pub sections: Vec<Section>,
}

/// A run of text under one heading or on one page, the unit the chunker splits further.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Whitespace-normalised text: runs of spaces collapsed, paragraphs separated by a blank
    /// line. Never empty. Does not repeat the heading.
    pub text: String,
    /// The nearest heading above this text, for chunk metadata and citations.
    pub heading: Option<String>,
    /// The 1-based PDF page the text is on, for citations ("page 3").
    pub page: Option<u32>,
}

/// Why a document yielded no text; the variants map to distinct HTTP statuses through
/// [`error_status`] so clients can tell "wrong format" from "broken file".
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The format is not one the pipeline reads (an image, a spreadsheet, …).
    #[error("unsupported document type: {0}")]
    Unsupported(String),
    /// The format is right but the file cannot be read: corrupt, encrypted, or mis-encoded.
    #[error("cannot read {kind} document: {reason}")]
    Unreadable {
        /// The format the document was read as.
        kind: DocumentKind,
        /// What went wrong, for the user.
        reason: String,
    },
    /// The file is past one of the safety caps in [`limits`] (nesting, decompressed size,
    /// repeated content): refused rather than read, so it cannot exhaust the process.
    #[error("{kind} document refused: {reason}")]
    Limit {
        /// The format the document was read as.
        kind: DocumentKind,
        /// Which cap, with its value.
        reason: String,
    },
    /// The file was read but holds no text.
    #[error("no text could be extracted (a scanned PDF, an image-only or empty document?)")]
    Empty,
}

/// The HTTP status for an extraction failure: 415 for a format we do not read, 422 for a
/// file we cannot read or that holds no text.
pub fn error_status(error: &ExtractError) -> u16 {
    match error {
        ExtractError::Unsupported(_) => 415,
        ExtractError::Unreadable { .. } | ExtractError::Limit { .. } | ExtractError::Empty => 422,
    }
}

/// Extracts the text of a document already known to be of `kind`; synchronous and
/// CPU-bound, so async callers should use `tokio::task::spawn_blocking`.
///
/// Never panics on malformed input: parse failures are [`ExtractError::Unreadable`], and a
/// document without any text is [`ExtractError::Empty`].
pub fn extract(bytes: &[u8], kind: DocumentKind) -> Result<Extracted, ExtractError> {
    let mut extracted = match kind {
        DocumentKind::Text => text::extract(bytes)?,
        DocumentKind::Markdown => markdown::extract(bytes)?,
        DocumentKind::Html => html::extract(bytes)?,
        DocumentKind::Pdf => pdf::extract(bytes)?,
        DocumentKind::Docx => docx::extract(bytes)?,
    };
    extracted
        .sections
        .retain(|section| !section.text.is_empty());
    if extracted.sections.is_empty() {
        return Err(ExtractError::Empty);
    }
    extracted.title = extracted
        .title
        .map(|title| cap_title(&whitespace::normalize_inline(&title)))
        .filter(|title| !title.is_empty());
    Ok(extracted)
}

/// A title as kept with a document and copied into its chunks: at most
/// [`limits::MAX_TITLE_BYTES`], cut at a character boundary (user-given titles included).
pub fn cap_title(title: &str) -> String {
    limits::truncate(title, limits::MAX_TITLE_BYTES)
}

/// Detects the format and extracts in one step, so upload handlers get
/// [`ExtractError::Unsupported`] (415) for unknown formats without repeating the message.
pub fn detect_and_extract(
    file_name: Option<&str>,
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<(DocumentKind, Extracted), ExtractError> {
    let kind = DocumentKind::detect(file_name, content_type, bytes).ok_or_else(|| {
        let described = match (file_name, content_type) {
            (_, Some(content_type)) if !content_type.is_empty() => content_type.to_owned(),
            (Some(name), _) => name.to_owned(),
            _ => "binary data".to_owned(),
        };
        ExtractError::Unsupported(format!(
            "{described} (supported: text, markdown, html, pdf, docx)"
        ))
    })?;
    Ok((kind, extract(bytes, kind)?))
}

/// One good sample of every format in the fixture directory, with its kind.
#[cfg(test)]
pub(crate) const SAMPLES: [(&str, DocumentKind); 5] = [
    ("sample.txt", DocumentKind::Text),
    ("sample.md", DocumentKind::Markdown),
    ("sample.html", DocumentKind::Html),
    ("sample.pdf", DocumentKind::Pdf),
    ("sample.docx", DocumentKind::Docx),
];

/// The fixture directory shared by the per-format unit tests.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) => panic!("fixture {}: {err}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialise_as_lowercase_names() {
        for kind in [
            DocumentKind::Text,
            DocumentKind::Markdown,
            DocumentKind::Html,
            DocumentKind::Pdf,
            DocumentKind::Docx,
        ] {
            let json = serde_json::to_string(&kind).expect("serialise");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            let back: DocumentKind = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(back, kind);
        }
    }

    #[test]
    fn statuses_distinguish_format_from_content_problems() {
        assert_eq!(
            error_status(&ExtractError::Unsupported("image/png".into())),
            415
        );
        let unreadable = ExtractError::Unreadable {
            kind: DocumentKind::Pdf,
            reason: "encrypted".into(),
        };
        assert_eq!(error_status(&unreadable), 422);
        assert_eq!(error_status(&ExtractError::Empty), 422);
        assert!(ExtractError::Empty.to_string().contains("scanned PDF"));
    }

    #[test]
    fn an_image_is_unsupported() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
        let result = detect_and_extract(Some("photo.png"), Some("image/png"), png);
        match result {
            Err(err @ ExtractError::Unsupported(_)) => {
                assert_eq!(error_status(&err), 415);
                assert!(err.to_string().contains("image/png"));
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }

    #[test]
    fn whitespace_only_documents_are_empty() {
        let result = extract(b"  \n\t \n ", DocumentKind::Text);
        assert!(matches!(result, Err(ExtractError::Empty)), "{result:?}");
    }

    #[test]
    fn every_fixture_extracts_through_detection() {
        for (name, kind) in SAMPLES {
            let bytes = fixture(name);
            let (detected, extracted) =
                detect_and_extract(Some(name), None, &bytes).expect("extracts");
            assert_eq!(detected, kind, "{name}");
            assert!(!extracted.sections.is_empty(), "{name}");
        }
    }
}
