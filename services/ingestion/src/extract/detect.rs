//! Format detection behind [`DocumentKind::detect`]: bytes first, then labels, then a
//! sniff, so a mislabelled upload is still read correctly.

use std::io::Cursor;
use std::path::Path;

use super::DocumentKind;

/// Leading bytes of common binary formats we do not read; recognising them stops a
/// misleading `.txt` name or `text/plain` type from sending an image to the text reader.
const BINARY_MAGIC: &[&[u8]] = &[
    b"\x89PNG\r\n\x1a\n",
    b"\xFF\xD8\xFF",
    b"GIF87a",
    b"GIF89a",
    b"RIFF",
    b"II*\0",
    b"MM\0*",
    b"\x1F\x8B",
    b"BZh",
    b"\xFD7zXZ\0",
    b"7z\xBC\xAF\x27\x1C",
    b"Rar!\x1A\x07",
    b"\x7FELF",
    b"MZ",
    b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
    b"OggS",
    b"fLaC",
    b"ID3",
    b"\0\0\0",
];

/// PDF readers accept the header anywhere in the first kilobyte (some generators prepend
/// junk), so detection does too.
const PDF_HEADER_WINDOW: usize = 1024;

/// See [`DocumentKind::detect`].
pub(super) fn detect(
    file_name: Option<&str>,
    content_type: Option<&str>,
    bytes: &[u8],
) -> Option<DocumentKind> {
    match sniff_magic(bytes) {
        Magic::Kind(kind) => return Some(kind),
        Magic::Unsupported => return None,
        Magic::Unknown => {}
    }
    let extension = file_name.and_then(extension);
    if let Some(kind) = content_type.and_then(|ct| from_content_type(ct, extension.as_deref())) {
        return Some(kind);
    }
    if let Some(kind) = extension.as_deref().and_then(from_extension) {
        return Some(kind);
    }
    if extension.as_deref().is_some_and(is_code_or_markup) {
        // Valid UTF-8, but stylesheets, scripts and vector images are not documents: a
        // directory walk must not index a site's CSS next to its pages.
        return None;
    }
    sniff_text(bytes)
}

/// What the leading bytes alone say.
enum Magic {
    Kind(DocumentKind),
    Unsupported,
    Unknown,
}

fn sniff_magic(bytes: &[u8]) -> Magic {
    let window = &bytes[..bytes.len().min(PDF_HEADER_WINDOW)];
    if window.windows(5).any(|w| w == b"%PDF-") {
        return Magic::Kind(DocumentKind::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return match zip::ZipArchive::new(Cursor::new(bytes)) {
            Ok(archive) if archive.index_for_name("word/document.xml").is_some() => {
                Magic::Kind(DocumentKind::Docx)
            }
            // A readable zip of something else (xlsx, odt, a plain archive).
            Ok(_) => Magic::Unsupported,
            // A damaged zip: let the labels decide, so a broken .docx is reported as an
            // unreadable document rather than an unsupported type.
            Err(_) => Magic::Unknown,
        };
    }
    if BINARY_MAGIC.iter().any(|magic| bytes.starts_with(magic)) && !looks_like_text(bytes) {
        return Magic::Unsupported;
    }
    Magic::Unknown
}

/// Whether the first bytes are plausible text (UTF-8, no NUL), so a text file that happens
/// to start like a binary signature ("MZ…", "ID3…") is not rejected.
fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(512)];
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        // Only a character cut off by the 512-byte window.
        Err(err) => err.error_len().is_none(),
    };
    valid && !head.contains(&0)
}

/// The media type without parameters decides, except that the generic `text/plain` (what
/// many servers send for `.md`) defers to a markdown extension.
fn from_content_type(content_type: &str, extension: Option<&str>) -> Option<DocumentKind> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "text/plain" => Some(match extension.and_then(from_extension) {
            Some(DocumentKind::Markdown) => DocumentKind::Markdown,
            _ => DocumentKind::Text,
        }),
        "text/markdown" | "text/x-markdown" => Some(DocumentKind::Markdown),
        "text/html" | "application/xhtml+xml" => Some(DocumentKind::Html),
        "application/pdf" | "application/x-pdf" => Some(DocumentKind::Pdf),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
            Some(DocumentKind::Docx)
        }
        _ => None,
    }
}

fn extension(file_name: &str) -> Option<String> {
    Path::new(file_name)
        .extension()
        .and_then(|ext| ext.to_str())
        .map(str::to_ascii_lowercase)
}

/// Text formats that are code or markup rather than prose.
fn is_code_or_markup(extension: &str) -> bool {
    matches!(
        extension,
        "css" | "js" | "mjs" | "ts" | "svg" | "xml" | "json" | "map" | "xsl" | "xslt"
    )
}

fn from_extension(extension: &str) -> Option<DocumentKind> {
    match extension {
        "txt" | "text" | "log" | "csv" | "tsv" => Some(DocumentKind::Text),
        "md" | "markdown" | "mdown" | "mkd" => Some(DocumentKind::Markdown),
        "html" | "htm" | "xhtml" => Some(DocumentKind::Html),
        "pdf" => Some(DocumentKind::Pdf),
        "docx" => Some(DocumentKind::Docx),
        _ => None,
    }
}

/// Valid UTF-8 without NUL bytes is text; an HTML doctype or root tag makes it HTML.
fn sniff_text(bytes: &[u8]) -> Option<DocumentKind> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).ok()?;
    if text.contains('\0') {
        return None;
    }
    let head: String = text
        .trim_start()
        .chars()
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase();
    if head.starts_with("<!doctype html") || head.starts_with("<html") {
        Some(DocumentKind::Html)
    } else {
        Some(DocumentKind::Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::{ExtractError, extract, fixture};

    #[test]
    fn stylesheets_scripts_and_svg_are_not_documents() {
        for name in ["style.css", "app.js", "logo.svg", "data.json"] {
            assert_eq!(
                detect(Some(name), None, b"body { color: red }"),
                None,
                "{name}"
            );
        }
        assert_eq!(
            detect(Some("notes"), None, b"plain words"),
            Some(DocumentKind::Text)
        );
    }

    #[test]
    fn magic_bytes_beat_a_wrong_extension_and_type() {
        let pdf = fixture("sample.pdf");
        assert_eq!(
            detect(Some("notes.txt"), Some("text/plain"), &pdf),
            Some(DocumentKind::Pdf)
        );
        let docx = fixture("sample.docx");
        assert_eq!(
            detect(Some("report.pdf"), Some("application/octet-stream"), &docx),
            Some(DocumentKind::Docx)
        );
    }

    #[test]
    fn images_and_binaries_are_not_detected() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(detect(Some("photo.png"), Some("image/png"), png), None);
        assert_eq!(detect(Some("photo.txt"), Some("text/plain"), png), None);
        assert_eq!(detect(None, None, b"\x00\x01\x02\xff\xfe"), None);
        assert_eq!(detect(None, None, b"bin\0ary"), None);
    }

    #[test]
    fn text_that_starts_like_a_binary_signature_is_still_text() {
        assert_eq!(
            detect(Some("notes.txt"), None, b"MZ is how DOS programs begin."),
            Some(DocumentKind::Text)
        );
        assert_eq!(
            detect(None, None, b"ID3 tags describe songs."),
            Some(DocumentKind::Text)
        );
    }

    #[test]
    fn other_zips_are_not_docx() {
        let mut buffer = Cursor::new(Vec::new());
        {
            let mut writer = zip::ZipWriter::new(&mut buffer);
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            writer
                .start_file("xl/workbook.xml", options)
                .expect("entry");
            writer.finish().expect("zip");
        }
        assert_eq!(
            detect(Some("sheet.docx"), None, buffer.get_ref()),
            None,
            "a readable zip without word/document.xml"
        );
    }

    #[test]
    fn labels_decide_when_bytes_do_not() {
        let text = b"# Title\n\nbody";
        assert_eq!(
            detect(Some("a.md"), None, text),
            Some(DocumentKind::Markdown)
        );
        assert_eq!(
            detect(Some("a.md"), Some("text/plain; charset=utf-8"), text),
            Some(DocumentKind::Markdown)
        );
        assert_eq!(
            detect(Some("a.bin"), Some("text/markdown"), text),
            Some(DocumentKind::Markdown)
        );
        assert_eq!(
            detect(Some("page.txt"), Some("text/html; charset=utf-8"), text),
            Some(DocumentKind::Html)
        );
        assert_eq!(detect(Some("a.TXT"), None, text), Some(DocumentKind::Text));
        assert_eq!(detect(None, None, text), Some(DocumentKind::Text));
    }

    #[test]
    fn html_is_sniffed_without_labels() {
        assert_eq!(
            detect(None, None, b"\xEF\xBB\xBF\n  <!DOCTYPE HTML><html></html>"),
            Some(DocumentKind::Html)
        );
        assert_eq!(
            detect(
                Some("page"),
                Some("application/octet-stream"),
                b"<html><p>x"
            ),
            Some(DocumentKind::Html)
        );
    }

    #[test]
    fn a_random_docx_is_unreadable_not_a_panic() {
        let bytes = fixture("not-a-docx.docx");
        let kind = detect(Some("not-a-docx.docx"), None, &bytes);
        assert_eq!(kind, Some(DocumentKind::Docx));
        let result = extract(&bytes, DocumentKind::Docx);
        assert!(
            matches!(
                result,
                Err(ExtractError::Unreadable {
                    kind: DocumentKind::Docx,
                    ..
                })
            ),
            "{result:?}"
        );
    }
}
