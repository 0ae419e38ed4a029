//! PDFs via pdf-extract (on lopdf): one section per page so chunks can cite page numbers.
//!
//! pdf-extract is known to panic on malformed fonts and content streams, so every call into
//! it runs under `catch_unwind`: a bad page is skipped, a bad file is `Unreadable`, and the
//! worker thread survives. The default panic hook still prints the panic to stderr.
//!
//! What pdf-extract and lopdf cannot be trusted with at all (stack depth, decompression
//! without limits) is checked first by [`super::pdf_guard`]: such a file is refused with
//! [`ExtractError::Limit`] before they see it.

use std::panic::{AssertUnwindSafe, catch_unwind};

use pdf_extract::{Document, Object, PlainTextOutput};

use super::inflate::Budget;
use super::pdf_guard::{self, PdfLimit};
use super::{DocumentKind, ExtractError, Extracted, Section, whitespace};

/// Reads each page's text layer; pages with no text (scans) are left out, and a PDF with
/// none at all becomes [`ExtractError::Empty`] in the caller. The title is the document
/// information dictionary's `/Title`.
pub(crate) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    pdf_guard::check_raw(bytes, &Budget::document()).map_err(refused)?;
    let document = guarded(|| Document::load_mem_with_options(bytes, pdf_guard::load_options()))?
        .map_err(|err| unreadable(format!("not a readable PDF: {err}")))?;
    if document.is_encrypted() {
        return Err(unreadable(
            "the PDF is password-protected; upload an unencrypted copy".to_owned(),
        ));
    }

    guarded(|| pdf_guard::check_loaded(&document))?.map_err(refused)?;

    let pages = document.get_pages();
    if pages.is_empty() {
        return Err(unreadable("the PDF has no pages".to_owned()));
    }
    let mut sections = Vec::new();
    let mut failures = Vec::new();
    for &number in pages.keys() {
        match guarded(|| page_text(&document, number)) {
            Ok(Ok(text)) => sections.push(Section {
                text: whitespace::normalize(&text),
                heading: None,
                page: Some(number),
            }),
            Ok(Err(reason)) | Err(ExtractError::Unreadable { reason, .. }) => {
                tracing::warn!(page = number, %reason, "skipping unreadable PDF page");
                failures.push(reason);
            }
            Err(other) => return Err(other),
        }
    }
    if failures.len() == pages.len() {
        let first = failures.swap_remove(0);
        return Err(unreadable(format!("no page could be read: {first}")));
    }

    Ok(Extracted {
        title: guarded(|| info_title(&document)).ok().flatten(),
        sections,
    })
}

fn unreadable(reason: String) -> ExtractError {
    ExtractError::Unreadable {
        kind: DocumentKind::Pdf,
        reason,
    }
}

fn refused(limit: PdfLimit) -> ExtractError {
    ExtractError::Limit {
        kind: DocumentKind::Pdf,
        reason: limit.to_string(),
    }
}

/// Runs `f`, turning a panic inside the PDF libraries into `Unreadable`.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, ExtractError> {
    // Nothing observes state after a panic but the returned error and read-only documents.
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_owned());
        unreadable(format!("the PDF parser failed: {message}"))
    })
}

fn page_text(document: &Document, number: u32) -> Result<String, String> {
    let mut text = String::new();
    let mut output = PlainTextOutput::new(&mut text);
    pdf_extract::output_doc_page(document, &mut output, number).map_err(|err| err.to_string())?;
    Ok(text)
}

/// `/Title` from the trailer's `/Info` dictionary, if set and non-blank.
fn info_title(document: &Document) -> Option<String> {
    let info = match document.trailer.get(b"Info").ok()? {
        Object::Reference(id) => document.get_dictionary(*id).ok()?,
        Object::Dictionary(dictionary) => dictionary,
        _ => return None,
    };
    let title = info.get_deref(b"Title", document).ok()?;
    let title = pdf_extract::decode_text_string(title).ok()?;
    let title = whitespace::normalize_inline(&title);
    (!title.is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::{extract as extract_any, fixture};

    #[test]
    fn one_section_per_page_with_page_numbers() {
        let extracted = extract_any(&fixture("sample.pdf"), DocumentKind::Pdf).expect("pdf");
        assert_eq!(extracted.title.as_deref(), Some("Ingestion PDF Sample"));
        let pages: Vec<_> = extracted.sections.iter().map(|s| s.page).collect();
        assert_eq!(pages, [Some(1), Some(2)]);
        assert!(
            extracted.sections[0]
                .text
                .contains("The quick brown fox jumps over the lazy dog on page one."),
            "{:?}",
            extracted.sections[0].text
        );
        assert!(
            extracted.sections[1]
                .text
                .contains("Searchable documents deserve a second page of text."),
            "{:?}",
            extracted.sections[1].text
        );
        assert!(!extracted.sections[1].text.contains("quick brown fox"));
    }

    #[test]
    fn a_corrupt_pdf_is_unreadable_not_a_panic() {
        let result = extract_any(&fixture("corrupt.pdf"), DocumentKind::Pdf);
        assert!(
            matches!(
                result,
                Err(ExtractError::Unreadable {
                    kind: DocumentKind::Pdf,
                    ..
                })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn garbage_after_a_pdf_header_is_unreadable() {
        for bytes in [
            &b"%PDF-1.7\n"[..],
            b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF",
            b"%PDF-\xff\xfe\x00garbage",
        ] {
            let result = extract_any(bytes, DocumentKind::Pdf);
            assert!(
                matches!(result, Err(ExtractError::Unreadable { .. })),
                "{result:?}"
            );
        }
    }

    /// A minimal PDF with correct xref offsets, from object bodies numbered from 1.
    fn build_pdf(objects: &[&str]) -> Vec<u8> {
        let mut out = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (index, body) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", index + 1).as_bytes());
        }
        let xref = out.len();
        let size = objects.len() + 1;
        out.extend_from_slice(format!("xref\n0 {size}\n0000000000 65535 f \n").as_bytes());
        for offset in offsets {
            out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!("trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n")
                .as_bytes(),
        );
        out
    }

    /// Two pages saying "Hello" in font /F1: page 1's font object is missing, which makes
    /// pdf-extract 0.12 panic; page 2's is a standard Type 1 font.
    fn pdf_with_a_panicking_page(second_page: bool) -> Vec<u8> {
        let content = "BT /F1 12 Tf 72 712 Td (Hello) Tj ET";
        let stream = format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        );
        let page = |font: u32| {
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
                 /Resources << /Font << /F1 {font} 0 R >> >> /Contents 4 0 R >>"
            )
        };
        let kids = if second_page {
            "<< /Type /Pages /Kids [3 0 R 6 0 R] /Count 2 >>"
        } else {
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
        };
        build_pdf(&[
            "<< /Type /Catalog /Pages 2 0 R >>",
            kids,
            &page(99),
            &stream,
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            &page(5),
        ])
    }

    #[test]
    fn a_parser_panic_is_caught() {
        let result = extract_any(&pdf_with_a_panicking_page(false), DocumentKind::Pdf);
        match result {
            Err(ExtractError::Unreadable { kind, reason }) => {
                assert_eq!(kind, DocumentKind::Pdf);
                assert!(reason.contains("parser failed"), "{reason}");
            }
            other => panic!("expected Unreadable, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_page_is_skipped_and_the_rest_kept() {
        let extracted =
            extract_any(&pdf_with_a_panicking_page(true), DocumentKind::Pdf).expect("page 2");
        assert_eq!(extracted.sections.len(), 1);
        assert_eq!(extracted.sections[0].page, Some(2));
        assert_eq!(extracted.sections[0].text, "Hello");
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let _ = encoder.write_all(data);
        encoder.finish().unwrap_or_default()
    }

    /// A stream object with `dictionary` entries and ASCII `data`, for build_pdf.
    fn stream_object(dictionary: &str, data: &[u8]) -> String {
        format!(
            "<< {dictionary} /Length {} >>\nstream\n{}\nendstream",
            data.len(),
            String::from_utf8_lossy(data)
        )
    }

    fn refusal(bytes: &[u8]) -> String {
        match extract_any(bytes, DocumentKind::Pdf) {
            Err(ExtractError::Limit { kind, reason }) => {
                assert_eq!(kind, DocumentKind::Pdf);
                reason
            }
            other => panic!("expected a limit, got {other:?}"),
        }
    }

    /// A one-page PDF whose page has `contents` and `resources`, plus `extra` objects
    /// numbered from 5.
    fn one_page(contents: &str, resources: &str, extra: &[&str]) -> Vec<u8> {
        let page = format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
             /Resources << /Font << /F1 3 0 R >> {resources} >> /Contents {contents} >>"
        );
        let mut objects = vec![
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            &page,
        ];
        objects.extend_from_slice(extra);
        build_pdf(&objects)
    }

    #[test]
    fn a_nested_flate_bomb_is_refused_before_parsing() {
        // Inflates to 256 MiB through two layers, from a few KB of binary zlib.
        let inner = zlib(&vec![b' '; 256 * 1024 * 1024]);
        let outer = zlib(&inner);
        let mut pdf = one_page("5 0 R", "", &[]);
        // Object 5 is appended by hand (binary data): the raw scan, which runs before any
        // parsing, finds it wherever it is.
        pdf.extend_from_slice(b"5 0 obj\n<< /Filter [/FlateDecode /FlateDecode] >>\nstream\n");
        pdf.extend_from_slice(&outer);
        pdf.extend_from_slice(b"\nendstream\nendobj\n");
        let reason = refusal(&pdf);
        assert!(reason.contains("per-stream cap"), "{reason}");
    }

    #[test]
    fn one_stream_used_thousands_of_times_is_refused() {
        // 114 KB of content drawn 5,000 times: 570 MB for pdf-extract to process.
        let content = "BT /F1 12 Tf 72 712 Td (Hello again) Tj ET\n".repeat(2_600);
        let stream = stream_object("", content.as_bytes());
        let contents = format!("[{}]", "5 0 R ".repeat(5_000));
        let reason = refusal(&one_page(&contents, "", &[&stream]));
        assert!(reason.contains("at every use"), "{reason}");
    }

    #[test]
    fn a_form_that_draws_itself_is_refused() {
        let page_content = stream_object("", b"/X1 Do");
        let form = stream_object(
            "/Type /XObject /Subtype /Form /BBox [0 0 10 10] /Resources << /XObject << /X1 6 0 R >> >>",
            b"/X1 Do",
        );
        let pdf = one_page("5 0 R", "/XObject << /X1 6 0 R >>", &[&page_content, &form]);
        let reason = refusal(&pdf);
        assert!(
            reason.contains("form XObjects nest deeper than"),
            "{reason}"
        );
    }

    #[test]
    fn a_parent_cycle_is_refused() {
        let content = stream_object("", b"BT /F1 12 Tf 72 712 Td (Hi) Tj ET");
        // The page has no MediaBox and its parent chain loops through object 6.
        let pdf = build_pdf(&[
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [4 0 R] /Count 1 /Parent 6 0 R >>",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            "<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>",
            &content,
            "<< /Type /Pages /Kids [] /Count 0 /Parent 2 0 R >>",
        ]);
        let reason = refusal(&pdf);
        assert!(reason.contains("page tree"), "{reason}");
    }

    #[test]
    fn every_truncation_of_the_sample_fails_cleanly() {
        let bytes = fixture("sample.pdf");
        // A spread of cut points through header, objects, fonts and xref.
        for cut in (0..bytes.len()).step_by(bytes.len() / 23 + 1) {
            let result = extract_any(&bytes[..cut], DocumentKind::Pdf);
            assert!(
                matches!(
                    result,
                    Ok(_) | Err(ExtractError::Unreadable { .. } | ExtractError::Empty)
                ),
                "cut at {cut}: {result:?}"
            );
        }
    }
}
