//! The upload check: cheap, bounded looks at a file in the HTTP request path, so obvious
//! mistakes (a truncated PDF, a random file named .docx, a non-UTF-8 text) are answered at
//! once, while nothing there parses a tree or inflates a stream. The real extraction runs
//! in the worker; if it fails there, the task ends `failed` with the reason.

use std::io::Cursor;

use super::text::decode_utf8;
use super::{DocumentKind, ExtractError};

/// How far from the end of a PDF its trailer (`startxref`, `%%EOF`) may be; readers look
/// in the last kilobyte, some generators append a little junk.
const PDF_TRAILER_WINDOW: usize = 4096;

/// Checks that `bytes` plausibly are a `kind` document, in time linear in the size and
/// without decompressing anything: text formats must be UTF-8 with some non-blank
/// character; a PDF must end with a trailer; a DOCX must be a zip whose central directory
/// lists `word/document.xml`.
pub fn precheck(bytes: &[u8], kind: DocumentKind) -> Result<(), ExtractError> {
    match kind {
        DocumentKind::Text | DocumentKind::Markdown | DocumentKind::Html => {
            let text = decode_utf8(bytes, kind)?;
            if text.trim().is_empty() {
                return Err(ExtractError::Empty);
            }
            Ok(())
        }
        DocumentKind::Pdf => {
            let tail = &bytes[bytes.len().saturating_sub(PDF_TRAILER_WINDOW)..];
            let has = |needle: &[u8]| tail.windows(needle.len()).any(|w| w == needle);
            if has(b"startxref") || has(b"%%EOF") {
                Ok(())
            } else {
                Err(ExtractError::Unreadable {
                    kind,
                    reason: "no PDF trailer at the end: the file is truncated or not a PDF"
                        .to_owned(),
                })
            }
        }
        DocumentKind::Docx => {
            let archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|err| {
                ExtractError::Unreadable {
                    kind,
                    reason: format!("not a valid .docx (zip) file: {err}"),
                }
            })?;
            if archive.index_for_name("word/document.xml").is_none() {
                return Err(ExtractError::Unreadable {
                    kind,
                    reason: "no word/document.xml: not a Word document".to_owned(),
                });
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::{SAMPLES, fixture};

    #[test]
    fn samples_pass_and_broken_files_do_not() {
        for (name, kind) in SAMPLES {
            assert!(precheck(&fixture(name), kind).is_ok(), "{name}");
        }
        assert!(precheck(&fixture("corrupt.pdf"), DocumentKind::Pdf).is_err());
        assert!(precheck(&fixture("not-a-docx.docx"), DocumentKind::Docx).is_err());
        assert!(matches!(
            precheck(b" \n ", DocumentKind::Text),
            Err(ExtractError::Empty)
        ));
        assert!(precheck(b"caf\xe9", DocumentKind::Markdown).is_err());
    }
}
