//! HTML via scraper (html5ever, the browsers' parsing algorithm, so tag soup reads as a
//! browser would show it): the readable text only, split at `h1`–`h3`.

use ego_tree::NodeRef;
use scraper::{Html, Node};

use super::sections::SectionBuilder;
use super::text::decode_utf8;
use super::{DocumentKind, ExtractError, Extracted, whitespace};

/// Elements whose content is not part of the readable page: code, styling, navigation,
/// embedded objects and the document head.
const SKIPPED: &[&str] = &[
    "head", "script", "style", "noscript", "template", "nav", "svg", "math", "iframe", "object",
    "embed", "canvas", "audio", "video", "select", "button",
];

/// Elements that end a line of text when they open or close.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "thead",
    "tfoot",
    "tr",
    "ul",
];

/// Reads the page's visible text (no `script`/`style`/`nav`/hidden content) into one
/// section per `h1`–`h3`; the title is `<title>` or else the first `h1`.
///
/// Only UTF-8 pages are read: a `<meta charset>` naming another encoding is not honoured.
pub(crate) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let source = decode_utf8(bytes, DocumentKind::Html)?;
    let document = Html::parse_document(source);

    let mut walker = Walker {
        builder: SectionBuilder::default(),
        first_h1: None,
    };
    walker.walk(document.tree.root(), false);

    let title = document
        .tree
        .root()
        .descendants()
        .find(|node| is_element(*node, "title"))
        .map(|node| whitespace::normalize_inline(&collect_text(node)))
        .filter(|title| !title.is_empty());

    Ok(Extracted {
        title: title.or(walker.first_h1),
        sections: walker.builder.finish(),
    })
}

struct Walker {
    builder: SectionBuilder,
    first_h1: Option<String>,
}

impl Walker {
    fn walk(&mut self, node: NodeRef<'_, Node>, in_pre: bool) {
        match node.value() {
            Node::Text(text) => {
                if in_pre {
                    self.builder.push(text);
                } else {
                    // Source line breaks are just spaces in rendered HTML.
                    self.builder.push(&text.replace(['\n', '\r'], " "));
                }
            }
            Node::Element(element) => {
                let name = element.name();
                if is_hidden(element) || SKIPPED.contains(&name) {
                    return;
                }
                match name {
                    "h1" | "h2" | "h3" => {
                        let heading = whitespace::normalize_inline(&readable_text(node));
                        if name == "h1" && self.first_h1.is_none() && !heading.is_empty() {
                            self.first_h1 = Some(heading.clone());
                        }
                        self.builder.start_section(&heading);
                    }
                    "br" => self.builder.line_break(),
                    "td" | "th" => {
                        self.walk_children(node, in_pre);
                        self.builder.push(" ");
                    }
                    _ if BLOCKS.contains(&name) => {
                        self.builder.paragraph_break();
                        self.walk_children(node, in_pre || name == "pre");
                        self.builder.paragraph_break();
                    }
                    _ => self.walk_children(node, in_pre),
                }
            }
            Node::Document | Node::Fragment => self.walk_children(node, in_pre),
            _ => {}
        }
    }

    fn walk_children(&mut self, node: NodeRef<'_, Node>, in_pre: bool) {
        for child in node.children() {
            self.walk(child, in_pre);
        }
    }
}

/// Content the author hid from readers (`hidden`, `aria-hidden="true"`, navigation roles).
fn is_hidden(element: &scraper::node::Element) -> bool {
    element.attr("hidden").is_some()
        || element.attr("aria-hidden") == Some("true")
        || element.attr("role") == Some("navigation")
}

fn is_element(node: NodeRef<'_, Node>, name: &str) -> bool {
    matches!(node.value(), Node::Element(element) if element.name() == name)
}

/// All text below `node`, for `<title>` (whose content is raw text, not elements).
fn collect_text(node: NodeRef<'_, Node>) -> String {
    node.descendants()
        .filter_map(|descendant| match descendant.value() {
            Node::Text(text) => Some(&**text),
            _ => None,
        })
        .collect()
}

/// The readable text below `node` (a heading), skipping hidden and non-content elements.
fn readable_text(node: NodeRef<'_, Node>) -> String {
    let mut out = String::new();
    for child in node.children() {
        match child.value() {
            Node::Text(text) => out.push_str(text),
            Node::Element(element) if !is_hidden(element) && !SKIPPED.contains(&element.name()) => {
                let breaks = element.name() == "br" || BLOCKS.contains(&element.name());
                if breaks {
                    out.push(' ');
                }
                out.push_str(&readable_text(child));
                if breaks {
                    out.push(' ');
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::{extract as extract_any, fixture};

    fn sample() -> Extracted {
        extract_any(&fixture("sample.html"), DocumentKind::Html).expect("html")
    }

    #[test]
    fn title_comes_from_the_title_element() {
        assert_eq!(sample().title.as_deref(), Some("Ingestion HTML Sample"));
    }

    #[test]
    fn script_style_and_nav_are_excluded() {
        let all: String = sample()
            .sections
            .iter()
            .map(|section| format!("{:?} {}\n", section.heading, section.text))
            .collect();
        for hidden in [
            "SCRIPT_SHOULD_NOT_APPEAR",
            "STYLE_SHOULD_NOT_APPEAR",
            "NAV_SHOULD_NOT_APPEAR",
            "NOSCRIPT_SHOULD_NOT_APPEAR",
            "HIDDEN_SHOULD_NOT_APPEAR",
            "Ingestion HTML Sample",
        ] {
            assert!(!all.contains(hidden), "{hidden} leaked into: {all}");
        }
    }

    #[test]
    fn sections_follow_headings() {
        let extracted = sample();
        let headings: Vec<_> = extracted
            .sections
            .iter()
            .map(|section| section.heading.as_deref())
            .collect();
        assert_eq!(
            headings,
            [
                Some("Welcome to the sample page"),
                Some("Why HTML needs cleaning"),
                Some("A smaller heading")
            ]
        );
        let first = &extracted.sections[0].text;
        assert!(first.contains("This paragraph is the first readable sentence."));
        let second = &extracted.sections[1].text;
        assert!(second.contains("Browsers ignore the whitespace in markup."));
        assert!(
            second.contains("Item one\n\nItem two"),
            "list items apart: {second:?}"
        );
        let third = &extracted.sections[2].text;
        assert!(
            third.contains("Tables keep their cells:\n\nCell A Cell B"),
            "{third:?}"
        );
    }

    #[test]
    fn first_h1_is_the_title_without_a_title_element() {
        let html = b"<html><body><h1>Only <em>Heading</em></h1><p>Body text.</p></body></html>";
        let extracted = extract_any(html, DocumentKind::Html).expect("html");
        assert_eq!(extracted.title.as_deref(), Some("Only Heading"));
        assert_eq!(
            extracted.sections[0].heading.as_deref(),
            Some("Only Heading")
        );
        assert_eq!(extracted.sections[0].text, "Body text.");
    }

    #[test]
    fn a_page_of_only_scripts_is_empty() {
        let html =
            b"<html><head><title>T</title></head><body><script>var x;</script></body></html>";
        let result = extract_any(html, DocumentKind::Html);
        assert!(matches!(result, Err(ExtractError::Empty)), "{result:?}");
    }
}
