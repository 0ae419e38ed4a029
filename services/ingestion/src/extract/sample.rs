//! [`Sample`]: what the upload check keeps of a file streaming past on its way to the
//! object store, so the file is never held whole in memory: all of it while it is small,
//! else its head, its tail and a running UTF-8 check. That is what [`DocumentKind::detect`]
//! and [`precheck`] look at, except inside a large zip, whose check needs the whole file
//! ([`Sample::check`] then answers `None` and the caller reads the stored file back).

use super::{DocumentKind, ExtractError, precheck};

/// Files up to this size are kept whole and checked exactly as before streaming.
const WHOLE: usize = 1024 * 1024;
/// What is kept of the start of a larger file: magic bytes, the PDF header window, the
/// text sniff.
const HEAD: usize = 64 * 1024;
/// What is kept of the end of a larger file: the PDF trailer window and then some.
const TAIL: usize = 64 * 1024;

/// The parts of a file the upload check needs, fed chunk by chunk.
#[derive(Debug, Default)]
pub struct Sample {
    /// The first bytes (all of them while the file is at most [`WHOLE`]).
    head: Vec<u8>,
    /// The last [`TAIL`] bytes once the file outgrew `head`.
    tail: Vec<u8>,
    /// Bytes seen.
    size: u64,
    /// The running UTF-8 check.
    utf8: Utf8Check,
}

impl Sample {
    /// Takes the next bytes of the file.
    pub fn push(&mut self, chunk: &[u8]) {
        self.utf8.push(chunk, self.size == 0);
        self.size += chunk.len() as u64;
        if self.tail.is_empty() && self.head.len() + chunk.len() <= WHOLE {
            self.head.extend_from_slice(chunk);
            return;
        }
        if self.tail.is_empty() {
            // Outgrew WHOLE: the first HEAD bytes stay the head, the rest starts the tail.
            let mut head = std::mem::take(&mut self.head);
            let take = HEAD.saturating_sub(head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
            self.tail = head.split_off(HEAD.min(head.len()));
            self.head = head;
            self.tail.extend_from_slice(&chunk[take..]);
        } else {
            self.tail.extend_from_slice(chunk);
        }
        if self.tail.len() > TAIL {
            self.tail.drain(..self.tail.len() - TAIL);
        }
    }

    /// Bytes seen so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The document's kind, or why the upload is refused (`Unsupported`: 415, else 422),
    /// like [`check_whole`] on the whole file. `None` when this sample cannot tell (a zip
    /// larger than [`WHOLE`]): check the whole file instead.
    pub fn check(
        &self,
        file_name: Option<&str>,
        content_type: Option<&str>,
    ) -> Option<Result<DocumentKind, ExtractError>> {
        if self.tail.is_empty() {
            return Some(check_whole(&self.head, file_name, content_type));
        }
        if self.head.starts_with(b"PK\x03\x04") {
            return None;
        }
        let kind = match DocumentKind::detect(file_name, content_type, whole_chars(&self.head)) {
            Some(kind) => kind,
            None => return Some(Err(unsupported())),
        };
        Some(match kind {
            DocumentKind::Text | DocumentKind::Markdown | DocumentKind::Html => {
                self.utf8.verdict(kind).map(|()| kind)
            }
            DocumentKind::Pdf => precheck(&self.tail, kind).map(|()| kind),
            // A zip starts with PK, answered above; a .docx label on anything else.
            DocumentKind::Docx => precheck(&self.head, kind).map(|()| kind),
        })
    }
}

/// The upload check on a whole file: its kind ([`DocumentKind::detect`]), then
/// [`precheck`].
pub fn check_whole(
    bytes: &[u8],
    file_name: Option<&str>,
    content_type: Option<&str>,
) -> Result<DocumentKind, ExtractError> {
    let kind = DocumentKind::detect(file_name, content_type, bytes).ok_or_else(unsupported)?;
    precheck(bytes, kind).map(|()| kind)
}

fn unsupported() -> ExtractError {
    ExtractError::Unsupported("expected text, markdown, html, pdf or docx".to_owned())
}

/// `bytes` without a character cut off at its end, so a head that stops mid-character
/// still sniffs as text.
fn whole_chars(bytes: &[u8]) -> &[u8] {
    match std::str::from_utf8(bytes) {
        Err(err) if err.error_len().is_none() => &bytes[..err.valid_up_to()],
        _ => bytes,
    }
}

/// UTF-8 validity and "any non-blank character" over a file fed in chunks, with the same
/// verdicts as [`precheck`] gives the text formats on the whole file.
#[derive(Debug, Default)]
struct Utf8Check {
    /// The start of a character cut by the previous chunk's end.
    carry: Vec<u8>,
    /// Valid bytes so far.
    valid: u64,
    /// Where the first invalid byte is, once found.
    invalid_at: Option<u64>,
    /// Whether a non-whitespace character (other than a leading BOM) was seen.
    nonblank: bool,
}

impl Utf8Check {
    fn push(&mut self, chunk: &[u8], first: bool) {
        if self.invalid_at.is_some() {
            return;
        }
        let mut joined = std::mem::take(&mut self.carry);
        joined.extend_from_slice(chunk);
        let bytes = if first {
            joined.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&joined)
        } else {
            &joined
        };
        let (text, rest) = match std::str::from_utf8(bytes) {
            Ok(text) => (text, None),
            Err(err) => {
                let (valid, rest) = bytes.split_at(err.valid_up_to());
                // Validated just above, up to `valid_up_to`.
                let text = std::str::from_utf8(valid).unwrap_or_default();
                (text, Some((rest, err.error_len().is_none())))
            }
        };
        self.nonblank |= text.chars().any(|c| !c.is_whitespace());
        self.valid += text.len() as u64;
        match rest {
            None => {}
            Some((rest, true)) => self.carry = rest.to_vec(),
            Some((_, false)) => self.invalid_at = Some(self.valid),
        }
    }

    fn verdict(&self, kind: DocumentKind) -> Result<(), ExtractError> {
        let invalid_at = self
            .invalid_at
            .or_else(|| (!self.carry.is_empty()).then_some(self.valid));
        if let Some(offset) = invalid_at {
            return Err(ExtractError::Unreadable {
                kind,
                reason: format!(
                    "not valid UTF-8 (invalid byte at offset {offset}); save the file as UTF-8"
                ),
            });
        }
        if !self.nonblank {
            return Err(ExtractError::Empty);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::{SAMPLES, fixture};

    /// `bytes` fed in chunks of `size`.
    fn sample(bytes: &[u8], size: usize) -> Sample {
        let mut sample = Sample::default();
        for chunk in bytes.chunks(size) {
            sample.push(chunk);
        }
        sample
    }

    #[test]
    fn small_files_are_checked_whole() {
        for (name, kind) in SAMPLES {
            let checked = sample(&fixture(name), 1000).check(Some(name), None);
            assert_eq!(checked.map(|r| r.ok()), Some(Some(kind)), "{name}");
        }
        let corrupt = sample(&fixture("corrupt.pdf"), 7).check(Some("corrupt.pdf"), None);
        assert!(matches!(
            corrupt,
            Some(Err(ExtractError::Unreadable { .. }))
        ));
    }

    #[test]
    fn large_text_is_checked_as_it_streams() {
        // A multi-byte character cut between every chunk.
        let text = "é, ".repeat(WHOLE);
        let ok = sample(text.as_bytes(), 4099).check(Some("big.txt"), None);
        assert!(matches!(ok, Some(Ok(DocumentKind::Text))), "{ok:?}");

        let mut bad = text.clone().into_bytes();
        bad[WHOLE + 10] = 0xff;
        let checked = sample(&bad, 4099).check(Some("big.md"), None);
        assert!(
            matches!(checked, Some(Err(ExtractError::Unreadable { .. }))),
            "{checked:?}"
        );

        let blank = " \n".repeat(WHOLE);
        let checked = sample(blank.as_bytes(), 65536).check(Some("blank.txt"), None);
        assert!(
            matches!(checked, Some(Err(ExtractError::Empty))),
            "{checked:?}"
        );
    }

    #[test]
    fn large_pdfs_need_their_trailer_and_large_zips_the_whole_file() {
        let mut pdf = b"%PDF-1.7\n".to_vec();
        pdf.resize(WHOLE * 2, b' ');
        let truncated = sample(&pdf, 65536).check(Some("a.pdf"), None);
        assert!(matches!(
            truncated,
            Some(Err(ExtractError::Unreadable { .. }))
        ));
        pdf.extend_from_slice(b"startxref\n0\n%%EOF\n");
        let whole = sample(&pdf, 65536).check(Some("a.pdf"), None);
        assert!(matches!(whole, Some(Ok(DocumentKind::Pdf))), "{whole:?}");

        let mut zip = b"PK\x03\x04".to_vec();
        zip.resize(WHOLE * 2, 0);
        assert!(sample(&zip, 65536).check(Some("a.docx"), None).is_none());
    }

    #[test]
    fn binary_formats_are_unsupported_however_large() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.resize(WHOLE * 2, 0);
        let checked = sample(&png, 65536).check(Some("pixel.png"), None);
        assert!(matches!(checked, Some(Err(ExtractError::Unsupported(_)))));
    }
}
