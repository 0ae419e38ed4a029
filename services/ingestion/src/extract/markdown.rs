//! Markdown via pulldown-cmark: the text without markup, one section per heading, so the
//! chunker can label chunks with the heading they sit under.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use super::sections::SectionBuilder;
use super::text::decode_utf8;
use super::{DocumentKind, ExtractError, Extracted};

/// Raw heading text read before whitespace is collapsed and the heading is cut to
/// [`super::limits::MAX_HEADING_BYTES`]: ample for any heading, and a 10 MB one is not
/// copied around whole.
const HEADING_SCAN_BYTES: usize = 64 * 1024;

/// Splits at every heading (any level); the title is the YAML front matter's `title:` or
/// else the first level-1 heading. Raw HTML blocks are dropped (they are markup, and
/// scripts in them must not reach the index).
pub(crate) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let source = decode_utf8(bytes, DocumentKind::Markdown)?;
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;

    let mut builder = SectionBuilder::default();
    let mut title = None;
    let mut first_h1 = None;
    // Text of the heading being read, if inside one.
    let mut heading: Option<(String, bool)> = None;
    let mut in_metadata = false;

    for event in Parser::new_ext(source, options) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                heading = Some((String::new(), level == pulldown_cmark::HeadingLevel::H1));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((text, is_h1)) = heading.take() {
                    if is_h1 && first_h1.is_none() {
                        first_h1 = Some(text.clone());
                    }
                    builder.start_section(&text);
                }
            }
            Event::Start(Tag::MetadataBlock(_)) => in_metadata = true,
            Event::End(TagEnd::MetadataBlock(_)) => in_metadata = false,
            Event::Text(text) if in_metadata => {
                title = title.or_else(|| front_matter_title(&text));
            }
            Event::Text(text) | Event::Code(text) => match heading.as_mut() {
                // Past the scan window the rest cannot survive the heading cap anyway.
                Some((heading_text, _)) if heading_text.len() < HEADING_SCAN_BYTES => {
                    heading_text.push_str(&text)
                }
                Some(_) => {}
                None => builder.push(&text),
            },
            Event::SoftBreak => match heading.as_mut() {
                Some((heading_text, _)) => heading_text.push(' '),
                None => builder.push(" "),
            },
            Event::HardBreak => builder.line_break(),
            Event::Start(Tag::Item | Tag::TableRow | Tag::TableHead) => builder.line_break(),
            Event::End(TagEnd::TableCell) => builder.push(" "),
            Event::End(
                TagEnd::Paragraph
                | TagEnd::CodeBlock
                | TagEnd::BlockQuote(_)
                | TagEnd::List(_)
                | TagEnd::Table
                | TagEnd::FootnoteDefinition,
            )
            | Event::Rule => builder.paragraph_break(),
            _ => {}
        }
    }

    Ok(Extracted {
        title: title.or(first_h1),
        sections: builder.finish(),
    })
}

/// The `title:` line of YAML front matter, without quotes; a full YAML parser would be a
/// heavy dependency for one optional field.
fn front_matter_title(yaml: &str) -> Option<String> {
    yaml.lines().find_map(|line| {
        let value = line.strip_prefix("title:")?.trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'').trim();
        (!value.is_empty()).then(|| value.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::{extract as extract_any, fixture};

    #[test]
    fn reads_the_sample_by_heading() {
        let extracted =
            extract_any(&fixture("sample.md"), DocumentKind::Markdown).expect("markdown");
        assert_eq!(
            extracted.title.as_deref(),
            Some("Ingestion Markdown Sample")
        );
        let headings: Vec<_> = extracted
            .sections
            .iter()
            .map(|section| section.heading.as_deref())
            .collect();
        assert_eq!(
            headings,
            [
                Some("Ingestion Markdown Sample"),
                Some("Installing the service"),
                Some("Advanced usage")
            ]
        );
        let intro = &extracted.sections[0].text;
        assert!(intro.contains("Markdown files are split at their headings."));
        assert!(!intro.contains("**"), "emphasis markup removed: {intro}");
        let install = &extracted.sections[1].text;
        assert!(install.contains("Run the installer before anything else."));
        assert!(
            install.contains("cargo install ingestion"),
            "code kept: {install}"
        );
        let advanced = &extracted.sections[2].text;
        assert!(advanced.contains("Nested headings keep their own text."));
        assert!(!advanced.contains("alert("), "raw html dropped: {advanced}");
        assert!(extracted.sections.iter().all(|s| s.page.is_none()));
    }

    #[test]
    fn front_matter_title_wins_and_is_not_text() {
        let source = b"---\ntitle: \"From Front Matter\"\nauthor: me\n---\n\n# Heading\n\nBody.\n";
        let extracted = extract_any(source, DocumentKind::Markdown).expect("markdown");
        assert_eq!(extracted.title.as_deref(), Some("From Front Matter"));
        assert_eq!(extracted.sections.len(), 1);
        assert_eq!(extracted.sections[0].text, "Body.");
    }

    #[test]
    fn a_giant_heading_is_capped() {
        let source = format!("# {}\n\nBody text.\n", "x".repeat(10 * 1024 * 1024));
        let extracted = extract_any(source.as_bytes(), DocumentKind::Markdown).expect("md");
        let limits = (
            crate::extract::limits::MAX_HEADING_BYTES,
            crate::extract::limits::MAX_TITLE_BYTES,
        );
        let heading = extracted.sections[0].heading.clone().unwrap_or_default();
        assert!(heading.len() <= limits.0, "{}", heading.len());
        assert!(extracted.title.unwrap_or_default().len() <= limits.1);
        assert_eq!(extracted.sections[0].text, "Body text.");
    }

    #[test]
    fn deep_nesting_does_not_exhaust_the_stack() {
        let sources = [
            ">".repeat(100_000) + " quoted",
            (0..1_000)
                .map(|i| format!("{}- item\n", "  ".repeat(i)))
                .collect(),
            "[".repeat(100_000) + "x" + &"]".repeat(100_000),
            "*".repeat(100_000) + "x" + &"*".repeat(100_000),
        ];
        for source in sources {
            let result = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || extract_any(source.as_bytes(), DocumentKind::Markdown).is_ok())
                .map(|handle| handle.join());
            assert!(matches!(result, Ok(Ok(_))), "{result:?}");
        }
    }

    #[test]
    fn text_before_the_first_heading_has_none() {
        let extracted = extract_any(b"Intro line.\n\n## Later\n\nMore.", DocumentKind::Markdown)
            .expect("markdown");
        assert_eq!(extracted.title, None);
        assert_eq!(extracted.sections[0].heading, None);
        assert_eq!(extracted.sections[1].heading.as_deref(), Some("Later"));
    }
}
