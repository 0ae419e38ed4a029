//! Markdown via pulldown-cmark: the text without markup, one section per heading, so the
//! chunker can label chunks with the heading they sit under.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use super::sections::SectionBuilder;
use super::text::decode_utf8;
use super::{DocumentKind, ExtractError, Extracted};

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
                Some((heading_text, _)) => heading_text.push_str(&text),
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
    fn text_before_the_first_heading_has_none() {
        let extracted = extract_any(b"Intro line.\n\n## Later\n\nMore.", DocumentKind::Markdown)
            .expect("markdown");
        assert_eq!(extracted.title, None);
        assert_eq!(extracted.sections[0].heading, None);
        assert_eq!(extracted.sections[1].heading.as_deref(), Some("Later"));
    }
}
