//! Word documents: `word/document.xml` read straight from the zip with quick-xml. A DOCX
//! library would build a whole object model we do not need; paragraphs (`w:p`), their
//! text runs (`w:t`) and their style (`w:pStyle`) are all that text extraction uses.

use std::collections::HashMap;
use std::io::Cursor;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use zip::ZipArchive;
use zip::result::ZipError;

use super::inflate::{Budget, Permits, ReadError, read_capped};
use super::limits::{MAX_CONCURRENT_DOCX, MAX_STREAM_BYTES};
use super::sections::SectionBuilder;
use super::{DocumentKind, ExtractError, Extracted};

/// The most XML inflated from one document's entries together (each entry also stops at
/// [`MAX_STREAM_BYTES`]): a few MB is a long book, and the caps keep a zip bomb from
/// exhausting memory.
pub const MAX_DOCX_XML_BYTES: u64 = 96 * 1024 * 1024;

/// DOCX extractions running at once in this process (inflating and parsing): with the
/// caps above, at most this many times [`MAX_DOCX_XML_BYTES`] of XML is in memory.
static INFLATING: Permits = Permits::new(MAX_CONCURRENT_DOCX);

/// Reads the body text, starting a new section at each heading-styled paragraph (Word's
/// "Heading N" styles, or any style or paragraph with an outline level). The title is the
/// document property, else the first "Title"-styled paragraph, else the first heading.
pub(crate) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let mut archive = ZipArchive::new(Cursor::new(bytes))
        .map_err(|err| unreadable(format!("not a valid .docx (zip) file: {err}")))?;
    let _permit = INFLATING.acquire();
    let budget = Budget::new(MAX_DOCX_XML_BYTES);
    let document = read_entry(&mut archive, "word/document.xml", &budget)?
        .ok_or_else(|| unreadable("no word/document.xml: not a Word document".to_owned()))?;
    // Styles and properties only refine the result; a damaged (or oversized) one is not
    // fatal, and the budget bounds what reading it may cost.
    let styles = read_entry(&mut archive, "word/styles.xml", &budget)
        .ok()
        .flatten()
        .map(|xml| parse_styles(&xml))
        .unwrap_or_default();
    let property_title = read_entry(&mut archive, "docProps/core.xml", &budget)
        .ok()
        .flatten()
        .and_then(|xml| core_title(&xml));

    let body = parse_body(&document, &styles)
        .map_err(|err| unreadable(format!("word/document.xml is malformed: {err}")))?;
    Ok(Extracted {
        title: property_title.or(body.title),
        sections: body.sections,
    })
}

fn unreadable(reason: String) -> ExtractError {
    ExtractError::Unreadable {
        kind: DocumentKind::Docx,
        reason,
    }
}

fn refused(reason: String) -> ExtractError {
    ExtractError::Limit {
        kind: DocumentKind::Docx,
        reason,
    }
}

/// One archive entry as UTF-8 text, or `None` when the archive does not have it; inflated
/// under [`MAX_STREAM_BYTES`] and `budget` (the declared size is checked first, but not
/// trusted: inflation itself stops at the caps).
fn read_entry(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    budget: &Budget,
) -> Result<Option<String>, ExtractError> {
    let entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(ZipError::FileNotFound) => return Ok(None),
        Err(err) => return Err(unreadable(format!("cannot open {name}: {err}"))),
    };
    if entry.size() > MAX_STREAM_BYTES {
        return Err(refused(format!(
            "{name} declares {} MiB uncompressed; the per-entry cap is {} MiB",
            entry.size() / (1024 * 1024),
            MAX_STREAM_BYTES / (1024 * 1024)
        )));
    }
    let xml = read_capped(entry, budget).map_err(|err| match err {
        ReadError::Limit(limit) => refused(format!("{name}: {limit}")),
        ReadError::Io(err) => unreadable(format!("cannot inflate {name}: {err}")),
    })?;
    String::from_utf8(xml)
        .map(Some)
        .map_err(|_| unreadable(format!("{name} is not UTF-8")))
}

/// What a paragraph style means for extraction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct StyleRole {
    heading: bool,
    title: bool,
}

/// Paragraph style ids mapped to their role, from `word/styles.xml`; ids are
/// locale-dependent ("berschrift1" in German Word) but names and outline levels are not.
fn parse_styles(xml: &str) -> HashMap<String, StyleRole> {
    let mut roles = HashMap::new();
    let mut reader = Reader::from_str(xml);
    let mut current: Option<(String, StyleRole)> = None;
    // A malformed styles part just yields fewer roles.
    while let Ok(event) = reader.read_event() {
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => match e.local_name().as_ref() {
                "style" => {
                    current = (attr(e, "type").as_deref() == Some("paragraph"))
                        .then(|| attr(e, "styleId"))
                        .flatten()
                        .map(|id| (id, StyleRole::default()));
                }
                "name" => {
                    if let (Some((_, role)), Some(name)) = (current.as_mut(), attr(e, "val")) {
                        let name = name.to_ascii_lowercase();
                        role.heading |= is_heading_name(&name);
                        role.title |= name == "title";
                    }
                }
                "outlineLvl" => {
                    if let Some((_, role)) = current.as_mut() {
                        role.heading |= is_outline_level(attr(e, "val").as_deref());
                    }
                }
                _ => {}
            },
            Event::End(ref e) if e.local_name().as_ref() == "style" => {
                if let Some((id, role)) = current.take() {
                    roles.insert(id, role);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    roles
}

/// "heading 1" … "heading 9", Word's built-in heading style names.
fn is_heading_name(lowercase: &str) -> bool {
    lowercase
        .strip_prefix("heading")
        .map(str::trim_start)
        .is_some_and(|level| !level.is_empty() && level.chars().all(|c| c.is_ascii_digit()))
}

/// Outline levels 0–8 are document headings; 9 means body text.
fn is_outline_level(value: Option<&str>) -> bool {
    value
        .and_then(|level| level.parse::<u8>().ok())
        .is_some_and(|level| level < 9)
}

/// The role of a style id, from styles.xml or, without it, from the usual English ids.
fn style_role(styles: &HashMap<String, StyleRole>, id: &str) -> StyleRole {
    if let Some(role) = styles.get(id) {
        return *role;
    }
    let lowercase = id.to_ascii_lowercase();
    StyleRole {
        heading: is_heading_name(&lowercase),
        title: lowercase == "title",
    }
}

/// An attribute's value by local name (prefixes vary between writers).
fn attr(element: &BytesStart<'_>, local_name: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == local_name)
        .map(|a| match a.normalized_value(XmlVersion::Implicit1_0) {
            Ok(value) => value.into_owned(),
            Err(_) => a.value.into_owned(),
        })
}

/// The text of an entity or character reference inside `w:t`.
fn resolve_reference(reference: &BytesRef<'_>) -> String {
    if let Ok(Some(ch)) = reference.resolve_char_ref() {
        return ch.to_string();
    }
    let name = reference.xml10_content();
    resolve_predefined_entity(&name)
        .unwrap_or_default()
        .to_owned()
}

struct Body {
    sections: Vec<super::Section>,
    title: Option<String>,
}

/// The paragraph being read.
#[derive(Default)]
struct Paragraph {
    text: String,
    role: StyleRole,
}

fn parse_body(xml: &str, styles: &HashMap<String, StyleRole>) -> Result<Body, quick_xml::Error> {
    let mut reader = Reader::from_str(xml);
    let mut builder = SectionBuilder::default();
    let mut title_styled: Option<String> = None;
    let mut first_heading: Option<String> = None;

    let mut paragraph = Paragraph::default();
    // Paragraphs nest (text boxes inside a paragraph); their text joins the outer one.
    let mut paragraph_depth = 0usize;
    let mut in_properties = false;
    let mut in_text = false;
    // `mc:Fallback` repeats `mc:Choice` content for old readers; read it once.
    let mut fallback_depth = 0usize;

    loop {
        let event = reader.read_event()?;
        if fallback_depth > 0 {
            match &event {
                Event::Start(e) if e.local_name().as_ref() == "Fallback" => fallback_depth += 1,
                Event::End(e) if e.local_name().as_ref() == "Fallback" => fallback_depth -= 1,
                Event::Eof => break,
                _ => {}
            }
            continue;
        }
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_start = matches!(event, Event::Start(_));
                match e.local_name().as_ref() {
                    "Fallback" if is_start => fallback_depth = 1,
                    "p" if is_start => {
                        if paragraph_depth == 0 {
                            paragraph = Paragraph::default();
                        }
                        paragraph_depth += 1;
                    }
                    "pPr" if is_start => in_properties = true,
                    "pStyle" if paragraph_depth == 1 && in_properties => {
                        if let Some(id) = attr(e, "val") {
                            paragraph.role = style_role(styles, &id);
                        }
                    }
                    "outlineLvl" if paragraph_depth == 1 && in_properties => {
                        paragraph.role.heading |= is_outline_level(attr(e, "val").as_deref());
                    }
                    "t" if is_start => in_text = true,
                    "tab" if !in_properties => paragraph.text.push('\t'),
                    "br" | "cr" => paragraph.text.push('\n'),
                    "noBreakHyphen" => paragraph.text.push('-'),
                    _ => {}
                }
            }
            Event::Text(ref e) if in_text => paragraph.text.push_str(&e.xml10_content()),
            Event::CData(ref e) if in_text => paragraph.text.push_str(&e.xml10_content()),
            Event::GeneralRef(ref e) if in_text => paragraph.text.push_str(&resolve_reference(e)),
            Event::End(ref e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "pPr" => in_properties = false,
                "p" if paragraph_depth > 0 => {
                    paragraph_depth -= 1;
                    if paragraph_depth == 0 {
                        let done = std::mem::take(&mut paragraph);
                        let text = done.text.trim();
                        if text.is_empty() {
                            continue;
                        }
                        if done.role.title && title_styled.is_none() {
                            title_styled = Some(text.to_owned());
                        }
                        if done.role.heading && first_heading.is_none() {
                            first_heading = Some(text.to_owned());
                        }
                        if done.role.heading || done.role.title {
                            builder.start_section(text);
                        } else {
                            builder.push(text);
                            builder.paragraph_break();
                        }
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(Body {
        sections: builder.finish(),
        title: title_styled.or(first_heading),
    })
}

/// `dc:title` from `docProps/core.xml`, the title the author set in File › Properties.
fn core_title(xml: &str) -> Option<String> {
    let mut reader = Reader::from_str(xml);
    let mut in_title = false;
    let mut title = String::new();
    while let Ok(event) = reader.read_event() {
        match event {
            Event::Start(ref e) if e.local_name().as_ref() == "title" => in_title = true,
            Event::End(ref e) if e.local_name().as_ref() == "title" => break,
            Event::Text(ref e) if in_title => title.push_str(&e.xml10_content()),
            Event::GeneralRef(ref e) if in_title => title.push_str(&resolve_reference(e)),
            Event::Eof => break,
            _ => {}
        }
    }
    let title = title.trim();
    (!title.is_empty()).then(|| title.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::{extract as extract_any, fixture};

    #[test]
    fn reads_the_sample_by_heading() {
        let extracted = extract_any(&fixture("sample.docx"), DocumentKind::Docx).expect("docx");
        assert_eq!(extracted.title.as_deref(), Some("Ingestion DOCX Sample"));
        let headings: Vec<_> = extracted
            .sections
            .iter()
            .map(|section| section.heading.as_deref())
            .collect();
        assert_eq!(
            headings,
            [None, Some("Getting Started"), Some("Configuration Details")]
        );
        assert_eq!(
            extracted.sections[0].text,
            "Word documents often begin with a short preface."
        );
        assert_eq!(
            extracted.sections[1].text,
            "The ingestion service reads paragraphs from word files.\n\n\
             Each heading starts a new section of the document."
        );
        assert!(
            extracted.sections[2]
                .text
                .contains("Settings live in a single configuration file.")
        );
    }

    #[test]
    fn random_bytes_are_unreadable() {
        let result = extract_any(&fixture("not-a-docx.docx"), DocumentKind::Docx);
        match result {
            Err(ExtractError::Unreadable { kind, reason }) => {
                assert_eq!(kind, DocumentKind::Docx);
                assert!(reason.contains("zip"), "{reason}");
            }
            other => panic!("expected Unreadable, got {other:?}"),
        }
    }

    #[test]
    fn entities_tabs_fallbacks_and_localised_styles() {
        let document = r#"<?xml version="1.0" encoding="UTF-8"?>
<w:document xmlns:w="w" xmlns:mc="mc"><w:body>
<w:p><w:pPr><w:pStyle w:val="berschrift1"/><w:tabs><w:tab w:val="left"/></w:tabs></w:pPr>
<w:r><w:t>Fish &amp; Chips</w:t></w:r></w:p>
<w:p><w:r><w:t xml:space="preserve">Price:</w:t><w:tab/><w:t>&#8364;5</w:t></w:r>
<mc:AlternateContent><mc:Choice><w:p><w:r><w:t>boxed</w:t></w:r></w:p></mc:Choice>
<mc:Fallback><w:p><w:r><w:t>boxed</w:t></w:r></w:p></mc:Fallback></mc:AlternateContent></w:p>
</w:body></w:document>"#;
        let styles = r#"<w:styles xmlns:w="w"><w:style w:type="paragraph" w:styleId="berschrift1">
<w:name w:val="heading 1"/></w:style></w:styles>"#;
        let body = parse_body(document, &parse_styles(styles)).expect("parses");
        assert_eq!(body.title.as_deref(), Some("Fish & Chips"));
        assert_eq!(body.sections.len(), 1);
        assert_eq!(body.sections[0].heading.as_deref(), Some("Fish & Chips"));
        assert_eq!(body.sections[0].text, "Price: €5boxed");
    }

    /// A .docx whose document.xml is `size` bytes of one repeated paragraph (compresses
    /// about 1000:1).
    fn zip_bomb(size: usize) -> Vec<u8> {
        use std::io::Write;
        let mut buffer = Cursor::new(Vec::new());
        {
            let mut writer = zip::ZipWriter::new(&mut buffer);
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            writer
                .start_file("word/document.xml", options)
                .expect("entry");
            let chunk = "<w:p><w:r><w:t>bomb</w:t></w:r></w:p>".repeat(30_000);
            let mut written = 0;
            while written < size {
                writer.write_all(chunk.as_bytes()).expect("write");
                written += chunk.len();
            }
            writer.finish().expect("zip");
        }
        buffer.into_inner()
    }

    #[test]
    fn a_zip_bomb_is_refused_naming_the_cap() {
        let bomb = zip_bomb(70 * 1024 * 1024);
        assert!(bomb.len() < 2 * 1024 * 1024, "{} bytes", bomb.len());
        match extract(&bomb) {
            Err(ExtractError::Limit { kind, reason }) => {
                assert_eq!(kind, DocumentKind::Docx);
                assert!(reason.contains("64 MiB"), "{reason}");
            }
            other => panic!("expected a limit, got {other:?}"),
        }
    }

    #[test]
    fn a_lying_entry_size_still_stops_at_the_cap() {
        let mut bomb = zip_bomb(70 * 1024 * 1024);
        // Patch the uncompressed sizes the archive declares (local header and central
        // directory) to 1 KiB; inflation must stop at the cap regardless.
        for signature in [&b"PK\x03\x04"[..], b"PK\x01\x02"] {
            let offset = if signature == b"PK\x03\x04" { 22 } else { 24 };
            let mut at = 0;
            while let Some(found) = bomb[at..].windows(4).position(|window| window == signature) {
                let field = at + found + offset;
                if let Some(size) = bomb.get_mut(field..field + 4) {
                    size.copy_from_slice(&1024u32.to_le_bytes());
                }
                at += found + 4;
            }
        }
        let result = extract(&bomb);
        assert!(
            matches!(
                &result,
                Err(ExtractError::Limit { .. } | ExtractError::Unreadable { .. })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn a_zip_without_a_document_is_unreadable() {
        let mut buffer = Cursor::new(Vec::new());
        {
            let mut writer = zip::ZipWriter::new(&mut buffer);
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            writer.start_file("mimetype", options).expect("entry");
            writer.finish().expect("zip");
        }
        let result = extract(buffer.get_ref());
        assert!(
            matches!(&result, Err(ExtractError::Unreadable { reason, .. }) if reason.contains("word/document.xml")),
            "{result:?}"
        );
    }
}
