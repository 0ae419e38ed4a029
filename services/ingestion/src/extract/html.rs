//! HTML via scraper (html5ever, the browsers' parsing algorithm, so tag soup reads as a
//! browser would show it): the readable text only, split at `h1`–`h3`.

use ego_tree::NodeRef;
use scraper::{Html, Node};

use super::limits::MAX_HTML_DEPTH;
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
/// The tree is walked with an explicit stack (no recursion on input), and a page nesting
/// elements deeper than [`MAX_HTML_DEPTH`] is refused with [`ExtractError::Limit`].
pub(crate) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let source = decode_utf8(bytes, DocumentKind::Html)?;
    let document = Html::parse_document(source);

    let mut builder = SectionBuilder::default();
    let first_h1 = walk(document.tree.root(), &mut builder)?;

    let title = document
        .tree
        .root()
        .descendants()
        .find(|node| is_element(*node, "title"))
        .map(|node| whitespace::normalize_inline(&collect_text(node)))
        .filter(|title| !title.is_empty());

    Ok(Extracted {
        title: title.or(first_h1),
        sections: builder.finish(),
    })
}

/// One step of the walk: a node to visit (inside `pre` or not, at a depth), or what to do
/// once an element's children are done.
enum Step<'a> {
    Visit {
        node: NodeRef<'a, Node>,
        in_pre: bool,
        depth: usize,
    },
    ParagraphBreak,
    Space,
}

/// Feeds the readable text below `root` to `builder` in document order; the first `h1`.
fn walk<'a>(
    root: NodeRef<'a, Node>,
    builder: &mut SectionBuilder,
) -> Result<Option<String>, ExtractError> {
    let mut first_h1 = None;
    let mut stack: Vec<Step<'a>> = vec![Step::Visit {
        node: root,
        in_pre: false,
        depth: 0,
    }];
    while let Some(step) = stack.pop() {
        let (node, in_pre, depth) = match step {
            Step::ParagraphBreak => {
                builder.paragraph_break();
                continue;
            }
            Step::Space => {
                builder.push(" ");
                continue;
            }
            Step::Visit {
                node,
                in_pre,
                depth,
            } => (node, in_pre, depth),
        };
        if depth > MAX_HTML_DEPTH {
            return Err(ExtractError::Limit {
                kind: DocumentKind::Html,
                reason: format!("elements nest deeper than {MAX_HTML_DEPTH} levels"),
            });
        }
        let children = |stack: &mut Vec<Step<'a>>, in_pre: bool| {
            // Reversed, so the first child is popped first.
            stack.extend(node.children().rev().map(|child| Step::Visit {
                node: child,
                in_pre,
                depth: depth + 1,
            }));
        };
        match node.value() {
            Node::Text(text) => {
                if in_pre {
                    builder.push(text);
                } else {
                    // Source line breaks are just spaces in rendered HTML.
                    builder.push(&text.replace(['\n', '\r'], " "));
                }
            }
            Node::Element(element) => {
                let name = element.name();
                if is_hidden(element) || SKIPPED.contains(&name) {
                    continue;
                }
                match name {
                    "h1" | "h2" | "h3" => {
                        let heading = whitespace::normalize_inline(&readable_text(node));
                        if name == "h1" && first_h1.is_none() && !heading.is_empty() {
                            first_h1 = Some(heading.clone());
                        }
                        builder.start_section(&heading);
                    }
                    "br" => builder.line_break(),
                    "td" | "th" => {
                        stack.push(Step::Space);
                        children(&mut stack, in_pre);
                    }
                    _ if BLOCKS.contains(&name) => {
                        builder.paragraph_break();
                        stack.push(Step::ParagraphBreak);
                        children(&mut stack, in_pre || name == "pre");
                    }
                    _ => children(&mut stack, in_pre),
                }
            }
            Node::Document | Node::Fragment => children(&mut stack, in_pre),
            _ => {}
        }
    }
    Ok(first_h1)
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

/// The readable text below `node` (a heading), skipping hidden and non-content elements;
/// iterative like [`walk`], so a deep heading cannot exhaust the stack.
fn readable_text(node: NodeRef<'_, Node>) -> String {
    enum Part<'a> {
        Node(NodeRef<'a, Node>),
        Space,
    }
    let mut out = String::new();
    let mut stack: Vec<Part<'_>> = node.children().rev().map(Part::Node).collect();
    while let Some(part) = stack.pop() {
        let child = match part {
            Part::Space => {
                out.push(' ');
                continue;
            }
            Part::Node(child) => child,
        };
        match child.value() {
            Node::Text(text) => out.push_str(text),
            Node::Element(element) if !is_hidden(element) && !SKIPPED.contains(&element.name()) => {
                let breaks = element.name() == "br" || BLOCKS.contains(&element.name());
                if breaks {
                    out.push(' ');
                    stack.push(Part::Space);
                }
                stack.extend(child.children().rev().map(Part::Node));
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
    fn deep_nesting_is_refused_without_recursion() {
        let depth = 200_000;
        let html = format!(
            "<html><body>{}deep text</body></html>",
            "<span>".repeat(depth)
        );
        // A small stack: the walk must not recurse per level.
        let result = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || extract_any(html.as_bytes(), DocumentKind::Html))
            .map(|handle| handle.join());
        match result {
            Ok(Ok(Err(ExtractError::Limit { kind, reason }))) => {
                assert_eq!(kind, DocumentKind::Html);
                assert!(reason.contains("512"), "{reason}");
            }
            other => panic!("expected a depth limit, got {other:?}"),
        }
        // Within the cap, nesting reads as usual.
        let html = format!("<html><body>{}ok text</body></html>", "<div>".repeat(400));
        let extracted = extract_any(html.as_bytes(), DocumentKind::Html).expect("html");
        assert_eq!(extracted.sections[0].text, "ok text");
    }

    #[test]
    fn long_titles_and_headings_are_capped() {
        let long = "word ".repeat(200_000);
        let html = format!(
            "<html><head><title>{long}</title></head><body><h2>{long}</h2><p>Body.</p></body></html>"
        );
        let extracted = extract_any(html.as_bytes(), DocumentKind::Html).expect("html");
        let title = extracted.title.unwrap_or_default();
        assert!(
            title.len() <= crate::extract::limits::MAX_TITLE_BYTES,
            "{}",
            title.len()
        );
        assert!(title.starts_with("word word"));
        let heading = extracted.sections[0].heading.clone().unwrap_or_default();
        assert!(heading.len() <= crate::extract::limits::MAX_HEADING_BYTES);
        assert_eq!(extracted.sections[0].text, "Body.");
    }

    #[test]
    fn a_page_of_only_scripts_is_empty() {
        let html =
            b"<html><head><title>T</title></head><body><script>var x;</script></body></html>";
        let result = extract_any(html, DocumentKind::Html);
        assert!(matches!(result, Err(ExtractError::Empty)), "{result:?}");
    }
}
