//! Whitespace normalisation shared by every format, so chunk sizes and embeddings do not
//! depend on how a file happened to be laid out (PDF column padding, HTML indentation,
//! Windows line ends), while paragraph breaks survive for the chunker to split on.

/// Collapses runs of spaces/tabs/control characters to one space, trims every line, keeps
/// single line breaks and turns any run of blank lines (or a form feed) into exactly one
/// paragraph break (`"\n\n"`).
pub(crate) fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut newlines = 0usize;
    let mut space = false;
    let mut previous = '\0';
    for ch in text.chars() {
        match ch {
            // "\r\n" is one line end, not two.
            '\n' if previous == '\r' => {}
            '\n' | '\r' | '\u{2028}' | '\u{85}' => newlines += 1,
            '\u{c}' | '\u{2029}' => newlines += 2,
            c if c.is_whitespace() || c.is_control() => space = true,
            // Zero-width characters and the BOM only confuse tokenisers.
            '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}' => {}
            c => {
                if !out.is_empty() {
                    if newlines >= 2 {
                        out.push_str("\n\n");
                    } else if newlines == 1 {
                        out.push('\n');
                    } else if space {
                        out.push(' ');
                    }
                }
                newlines = 0;
                space = false;
                out.push(c);
            }
        }
        previous = ch;
    }
    out
}

/// Normalises text that must stay on one line (headings, titles): every whitespace run,
/// line breaks included, becomes a single space.
pub(crate) fn normalize_inline(text: &str) -> String {
    normalize(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_spaces_and_keeps_paragraphs() {
        let text = "  Hello \t  world \r\n  next   line\r\n\r\n\n\n  new\u{a0}para  \n";
        assert_eq!(normalize(text), "Hello world\nnext line\n\nnew para");
    }

    #[test]
    fn lines_of_spaces_count_as_blank() {
        assert_eq!(normalize("a\n   \nb"), "a\n\nb");
        assert_eq!(normalize("a\u{c}b"), "a\n\nb");
    }

    #[test]
    fn drops_control_and_zero_width_characters() {
        assert_eq!(normalize("\u{feff}a\u{0}b\u{200b}c"), "a bc");
    }

    #[test]
    fn inline_is_one_line() {
        assert_eq!(normalize_inline(" Getting\n\n Started "), "Getting Started");
        assert_eq!(normalize_inline(" \n "), "");
    }
}
