//! Accumulates text into heading-delimited sections while a format's parser walks its
//! document, so markdown, HTML and DOCX split the same way.

use super::limits::{MAX_HEADING_BYTES, truncate};
use super::{Section, whitespace};

/// Collects raw text for the current section and starts a new one at each heading.
#[derive(Debug, Default)]
pub(crate) struct SectionBuilder {
    sections: Vec<Section>,
    heading: Option<String>,
    text: String,
}

impl SectionBuilder {
    /// Appends raw text (normalised later, so callers may push source whitespace as is).
    pub(crate) fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Ends the current paragraph, so adjacent blocks do not run together.
    pub(crate) fn paragraph_break(&mut self) {
        self.text.push_str("\n\n");
    }

    /// Ends the current line (a `<br>`, a list item, a table row).
    pub(crate) fn line_break(&mut self) {
        self.text.push('\n');
    }

    /// Closes the current section and makes `heading` the heading of the text that follows,
    /// cut to [`MAX_HEADING_BYTES`]: every chunk of the section carries a copy of it.
    pub(crate) fn start_section(&mut self, heading: &str) {
        self.close();
        let heading = truncate(&whitespace::normalize_inline(heading), MAX_HEADING_BYTES);
        self.heading = (!heading.is_empty()).then_some(heading);
    }

    /// The sections in document order, without empty ones.
    pub(crate) fn finish(mut self) -> Vec<Section> {
        self.close();
        self.sections
    }

    fn close(&mut self) {
        let text = whitespace::normalize(&std::mem::take(&mut self.text));
        if !text.is_empty() {
            self.sections.push(Section {
                text,
                heading: self.heading.clone(),
                page: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_headings_and_drops_empty_sections() {
        let mut builder = SectionBuilder::default();
        builder.push("preface  text");
        builder.start_section("Empty");
        builder.start_section(" Real\nHeading ");
        builder.push("body");
        builder.paragraph_break();
        builder.push("more");
        let sections = builder.finish();
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[0].heading, None);
        assert_eq!(sections[0].text, "preface text");
        assert_eq!(sections[1].heading.as_deref(), Some("Real Heading"));
        assert_eq!(sections[1].text, "body\n\nmore");
    }

    #[test]
    fn a_giant_heading_is_cut_before_it_is_copied() {
        let mut builder = SectionBuilder::default();
        builder.start_section(&"Heading ".repeat(1_300_000));
        builder.push("text");
        let sections = builder.finish();
        let heading = sections[0].heading.as_deref().unwrap_or_default();
        assert!(heading.len() <= MAX_HEADING_BYTES, "{}", heading.len());
        assert!(heading.starts_with("Heading Heading"));
        assert!(heading.ends_with('…'));
    }
}
