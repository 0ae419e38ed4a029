//! Safety caps on what one document may cost to read: every hostile-input bound in one
//! place, so the numbers in failure reasons and in the docs agree.
//!
//! A document past a cap fails extraction with [`super::ExtractError::Limit`], which the
//! worker turns into a `failed` task naming the cap: a redelivery fails the same way
//! instead of crashing the process again.

/// Deepest element nesting read in an HTML page. Browsers stop nesting at 512 levels
/// (Chromium's parser cap), so deeper pages are generated, not written; refusing them
/// keeps the tree walk and its stack small.
pub const MAX_HTML_DEPTH: usize = 512;

/// Largest decoded size of one PDF stream (after all its filters), or of one DOCX entry:
/// a page's content or an embedded font is a few MB; a 1000:1 zlib bomb is not.
pub const MAX_STREAM_BYTES: u64 = 64 * 1024 * 1024;

/// Most bytes decoded for one PDF in total, every stream and every filter stage counted.
/// Decoding is streamed or one stream at a time, so this bounds time more than memory; it
/// leaves room for image-heavy PDFs near the 50 MiB upload limit. (DOCX has its own,
/// smaller total: `MAX_DOCX_XML_BYTES` in `docx.rs`.)
pub const MAX_DOCUMENT_DECODED_BYTES: u64 = 512 * 1024 * 1024;

/// Most content bytes the PDF text extractor may process for one document, counting a
/// stream again each time a page or form uses it (pdf-extract decodes it at every use):
/// one big stream referenced thousands of times is stopped here.
pub const MAX_PDF_CONTENT_WORK: u64 = 512 * 1024 * 1024;

/// Deepest nesting of PDF form XObjects (`Do` inside a form); pdf-extract recurses once
/// per level, and a form that draws itself would recurse forever.
pub const MAX_PDF_FORM_DEPTH: usize = 16;

/// Deepest PDF page tree `/Parent` chain searched for inherited attributes; pdf-extract
/// follows it recursively, and a cycle would never end.
pub const MAX_PDF_TREE_DEPTH: usize = 64;

/// DOCX extractions allowed to inflate at the same time in one process, so concurrent
/// uploads cannot multiply a document's inflated XML by the worker's handler slots.
pub const MAX_CONCURRENT_DOCX: usize = 2;

/// Longest heading kept for a section (bytes, cut at a character boundary): headings are
/// copied into every chunk's metadata, so a 10 MB "heading" must not be.
pub const MAX_HEADING_BYTES: usize = 300;

/// Longest document title kept (bytes, cut at a character boundary), for the same reason.
pub const MAX_TITLE_BYTES: usize = 300;

/// `text` cut to at most `max` bytes at a character boundary, with `…` appended when cut
/// (within the `max` bytes), so a capped heading still reads as a heading.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    const ELLIPSIS: &str = "…";
    let room = max.checked_sub(ELLIPSIS.len());
    let mut end = room.unwrap_or(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = text[..end].trim_end().to_owned();
    if room.is_some() {
        out.push_str(ELLIPSIS);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries_and_the_cap() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(1000);
        let cut = truncate(&long, MAX_HEADING_BYTES);
        assert!(cut.len() <= MAX_HEADING_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.starts_with("éé"));
        let heading = "x".repeat(10 * 1024 * 1024);
        assert!(truncate(&heading, MAX_HEADING_BYTES).len() <= MAX_HEADING_BYTES);
        assert_eq!(truncate("abcdef", 2), "ab");
    }
}
