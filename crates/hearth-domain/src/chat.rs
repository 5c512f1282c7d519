//! The text of a chat message: at most [`MAX_CHARS`] characters as sent, markup stripped
//! (tags removed, `script` and `style` contents dropped, entities decoded), control characters
//! other than newlines and tabs removed, surrounding whitespace trimmed, and not empty.
//!
//! The result is plain text. It may contain `<` (typed as `&lt;` or `2 < 3`): whoever renders
//! it into HTML escapes it, as with any text.

use std::fmt;

/// The most characters (Unicode scalar values) a message may have as sent.
pub const MAX_CHARS: usize = 10_000;

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatTextError {
    /// Nothing is left once markup and whitespace are removed.
    #[error("must contain text")]
    Empty,
    /// Longer than [`MAX_CHARS`].
    #[error("must be at most {max} characters, got {actual}")]
    TooLong {
        /// The limit.
        max: usize,
        /// The characters sent.
        actual: usize,
    },
}

/// A message's plain text, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatText(String);

impl ChatText {
    /// Checks and cleans `raw`.
    ///
    /// # Errors
    /// [`ChatTextError::TooLong`] past [`MAX_CHARS`]; [`ChatTextError::Empty`] when no text
    /// remains.
    pub fn parse(raw: &str) -> Result<Self, ChatTextError> {
        let actual = raw.chars().count();
        if actual > MAX_CHARS {
            return Err(ChatTextError::TooLong {
                max: MAX_CHARS,
                actual,
            });
        }
        let text = strip_markup(raw);
        let text: String = text
            .chars()
            .map(|c| if c == '\r' { '\n' } else { c })
            .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
            .collect();
        let text = text.trim();
        if text.is_empty() {
            return Err(ChatTextError::Empty);
        }
        Ok(Self(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Display for ChatText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Removes HTML markup the way a browser would not show it: elements' tags (their contents
/// stay, except for `script` and `style`), comments, declarations; decodes character
/// references. A `<` that cannot start a tag (`2 < 3`) is text.
pub fn strip_markup(input: &str) -> String {
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '<' => match chars.get(i + 1) {
                Some('!') if chars.get(i + 2) == Some(&'-') && chars.get(i + 3) == Some(&'-') => {
                    i = find_seq(&chars, i + 4, &['-', '-', '>'])
                        .map_or(chars.len(), |end| end + 3);
                }
                Some('!' | '?') => i = skip_tag(&chars, i + 2),
                Some('/') if chars.get(i + 2).is_some_and(char::is_ascii_alphabetic) => {
                    i = skip_tag(&chars, i + 2);
                }
                Some(c) if c.is_ascii_alphabetic() => {
                    let name_end = (i + 1..chars.len())
                        .find(|&j| !(chars[j].is_ascii_alphanumeric() || chars[j] == '-'))
                        .unwrap_or(chars.len());
                    let name: String = chars[i + 1..name_end]
                        .iter()
                        .map(char::to_ascii_lowercase)
                        .collect();
                    i = skip_tag(&chars, name_end);
                    if name == "br" {
                        out.push('\n');
                    } else if matches!(name.as_str(), "script" | "style") {
                        // Raw text: everything up to the closing tag is not shown.
                        i = find_closing(&chars, i, &name)
                            .map_or(chars.len(), |end| skip_tag(&chars, end));
                    }
                }
                _ => {
                    out.push('<');
                    i += 1;
                }
            },
            '&' => {
                let (decoded, used) = decode_entity(&chars[i..]);
                match decoded {
                    Some(c) => out.push(c),
                    None => out.push('&'),
                }
                i += used;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The index after the `>` closing a tag whose inside starts at `from`, honouring quoted
/// attribute values; the end of input when it never closes.
fn skip_tag(chars: &[char], from: usize) -> usize {
    let mut quote = None;
    let mut j = from;
    while j < chars.len() {
        let c = chars[j];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '>' => return j + 1,
            None => {}
        }
        j += 1;
    }
    chars.len()
}

fn find_seq(chars: &[char], from: usize, seq: &[char]) -> Option<usize> {
    (from..chars.len().saturating_sub(seq.len() - 1)).find(|&j| chars[j..].starts_with(seq))
}

/// The index of the `/` after `<` in `</name`, case-insensitively; then the tag is skipped.
fn find_closing(chars: &[char], from: usize, name: &str) -> Option<usize> {
    let name: Vec<char> = name.chars().collect();
    (from..chars.len())
        .find(|&j| {
            chars[j] == '<'
                && chars.get(j + 1) == Some(&'/')
                && chars.len() >= j + 2 + name.len()
                && chars[j + 2..j + 2 + name.len()]
                    .iter()
                    .zip(&name)
                    .all(|(a, b)| a.to_ascii_lowercase() == *b)
        })
        .map(|j| j + 2)
}

/// Decodes the character reference at the start of `chars` (which begins with `&`): the
/// character and how many input characters it used, or `None` and 1 for a lone `&`.
fn decode_entity(chars: &[char]) -> (Option<char>, usize) {
    let end = chars.iter().take(34).position(|c| *c == ';');
    let Some(end) = end else {
        return (None, 1);
    };
    let body: String = chars[1..end].iter().collect();
    let decoded = if let Some(number) = body.strip_prefix('#') {
        let value = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => number.parse::<u32>().ok(),
        };
        // NUL and invalid code points become U+FFFD, as browsers do.
        value.map(|v| {
            char::from_u32(v)
                .filter(|c| *c != '\0')
                .unwrap_or('\u{FFFD}')
        })
    } else {
        named_entity(&body)
    };
    match decoded {
        Some(c) => (Some(c), end + 1),
        None => (None, 1),
    }
}

fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{A0}',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "middot" => '·',
        "bull" => '•',
        "deg" => '°',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "sect" => '§',
        "para" => '¶',
        "times" => '×',
        "divide" => '÷',
        "plusmn" => '±',
        "eacute" => 'é',
        "egrave" => 'è',
        "agrave" => 'à',
        "ccedil" => 'ç',
        "uuml" => 'ü',
        "ouml" => 'ö',
        "auml" => 'ä',
        "szlig" => 'ß',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn tags_are_removed_and_their_text_kept() {
        assert_eq!(
            strip_markup("<b>bold</b> and <i class=\"x>y\">it</i>"),
            "bold and it"
        );
        assert_eq!(strip_markup("line<br/>break"), "line\nbreak");
        assert_eq!(
            strip_markup("a<!-- hidden -->b<!DOCTYPE html>c<?xml x?>d"),
            "abcd"
        );
        assert_eq!(
            strip_markup("x<script>alert('<b>')</script>y<STYLE>p{}</style>z"),
            "xyz"
        );
        assert_eq!(strip_markup("unclosed <a href='x"), "unclosed ");
    }

    #[test]
    fn entities_are_decoded_once() {
        assert_eq!(
            strip_markup("fish &amp; chips &lt;3 &#233;&#x263A;"),
            "fish & chips <3 é☺"
        );
        assert_eq!(
            strip_markup("&lt;script&gt;"),
            "<script>",
            "decoded text is not markup again"
        );
        assert_eq!(strip_markup("&amp;lt;"), "&lt;");
        assert_eq!(
            strip_markup("AT&T &unknown; & &#0;"),
            "AT&T &unknown; & \u{FFFD}"
        );
    }

    #[test]
    fn a_less_than_that_starts_no_tag_is_text() {
        assert_eq!(
            strip_markup("2 < 3 and 5 <= 6, a <- b"),
            "2 < 3 and 5 <= 6, a <- b"
        );
    }

    #[test]
    fn parse_refuses_empty_and_too_long_text() {
        assert_eq!(ChatText::parse("  <p> </p>\n"), Err(ChatTextError::Empty));
        assert_eq!(ChatText::parse(""), Err(ChatTextError::Empty));
        let long = "é".repeat(MAX_CHARS + 1);
        assert_eq!(
            ChatText::parse(&long),
            Err(ChatTextError::TooLong {
                max: MAX_CHARS,
                actual: MAX_CHARS + 1
            })
        );
        assert!(
            ChatText::parse(&"é".repeat(MAX_CHARS)).is_ok(),
            "the limit counts characters"
        );
        assert_eq!(
            ChatText::parse(" <em>Hi</em>\u{0}\u{7}\r\nthere ")
                .unwrap()
                .as_str(),
            "Hi\n\nthere"
        );
    }

    proptest! {
        #[test]
        fn plain_text_passes_through(text in "[^<&\\p{Cc}]{0,200}") {
            prop_assert_eq!(strip_markup(&text), text);
        }

        #[test]
        fn stripping_never_grows_the_text_and_never_panics(text in ".{0,300}") {
            prop_assert!(strip_markup(&text).chars().count() <= text.chars().count());
        }
    }
}
