//! Player text: the length limit and the markup stripper applied to free-text answers and to
//! characters' lines.
//!
//! [`strip_markup`] turns text that may contain HTML into plain text:
//!
//! 1. Control characters other than newline and tab are dropped first, so that none can hide
//!    a tag from step 2 (`<\u{1}b>`).
//! 2. A `<` followed by an ASCII letter, `/`, `!` or `?` starts markup, which runs to the next
//!    `>` outside a quoted attribute value (or to the end of the text). Comments (`<!-- … -->`)
//!    run to `-->`. The contents of `<script>` and `<style>` elements are dropped with them.
//!    Every piece of markup is replaced by one space, never by nothing, so that removing
//!    `<b>` from `<<b>b>` cannot join the pieces around it into a new tag.
//! 3. Runs of whitespace become one space, or one newline when the run held one; the ends are
//!    trimmed.
//!
//! Any other `<` (as in `3 < 4` or `<3`) is kept, and entities such as `&lt;` are kept as
//! written: decoding them would bring back the very characters stripping removed. The result
//! is plain text that still has to be escaped wherever it is shown.

/// The most characters (Unicode scalar values) a free-text answer may have, counted before
/// markup is stripped.
pub const MAX_ANSWER_CHARS: usize = 10_000;

/// The most characters kept of a character's line in a conversation; longer lines are cut.
pub const MAX_LINE_CHARS: usize = 2_000;

/// Plain text from text that may hold HTML markup (see the [module docs](self)).
///
/// ```
/// use hearth_life::text::strip_markup;
///
/// assert_eq!(strip_markup("<p>I <b>love</b> it</p><script>alert(1)</script>"), "I love it");
/// assert_eq!(strip_markup("3 < 4 and I <3 you"), "3 < 4 and I <3 you");
/// ```
#[must_use]
pub fn strip_markup(input: &str) -> String {
    let chars: Vec<char> = input
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '<' && chars.get(i + 1).is_some_and(|n| starts_markup(*n)) {
            i = skip_markup(&chars, i);
            out.push(' ');
        } else {
            out.push(c);
            i += 1;
        }
    }
    normalise_whitespace(&out)
}

/// Whether `c`, right after a `<`, makes the `<` the start of a tag, comment or declaration.
fn starts_markup(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?')
}

/// The index just past the markup that starts at `start` (a `<`).
fn skip_markup(chars: &[char], start: usize) -> usize {
    if matches_at(chars, start, "<!--") {
        return find(chars, start + 4, "-->").map_or(chars.len(), |end| end + 3);
    }
    let end = tag_end(chars, start);
    // An opening script or style tag takes its contents with it, up to and including the
    // closing tag.
    let name: String = chars[start + 1..end.min(chars.len())]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric())
        .map(char::to_ascii_lowercase)
        .collect();
    if name == "script" || name == "style" {
        let closing = format!("</{name}");
        return match find_ignore_case(chars, end, &closing) {
            Some(at) => tag_end(chars, at),
            None => chars.len(),
        };
    }
    end
}

/// The index just past the `>` that closes the tag starting at `start`, skipping `>` inside
/// quoted attribute values; the end of the text when the tag is never closed.
fn tag_end(chars: &[char], start: usize) -> usize {
    let mut quote: Option<char> = None;
    for (offset, &c) in chars[start..].iter().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '>' => return start + offset + 1,
            None => {}
        }
    }
    chars.len()
}

fn matches_at(chars: &[char], at: usize, needle: &str) -> bool {
    needle
        .chars()
        .enumerate()
        .all(|(k, n)| chars.get(at + k) == Some(&n))
}

fn find(chars: &[char], from: usize, needle: &str) -> Option<usize> {
    (from..chars.len()).find(|&i| matches_at(chars, i, needle))
}

fn find_ignore_case(chars: &[char], from: usize, needle: &str) -> Option<usize> {
    let needle: Vec<char> = needle.chars().collect();
    (from..chars.len()).find(|&i| {
        needle.iter().enumerate().all(|(k, n)| {
            chars
                .get(i + k)
                .is_some_and(|c| c.to_ascii_lowercase() == *n)
        })
    })
}

fn normalise_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run: Option<bool> = None; // Some(saw_newline) while inside a whitespace run.
    for c in text.chars() {
        if c.is_whitespace() {
            let newline = c == '\n';
            run = Some(run.unwrap_or(false) || newline);
        } else {
            if let Some(newline) = run.take()
                && !out.is_empty()
            {
                out.push(if newline { '\n' } else { ' ' });
            }
            out.push(c);
        }
    }
    out
}

/// `text` cut to at most `max` characters, on a character boundary.
pub(crate) fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn tags_comments_and_scripts_are_removed() {
        assert_eq!(strip_markup("<b>bold</b> move"), "bold move");
        assert_eq!(strip_markup("a<!-- secret -->b"), "a b");
        assert_eq!(
            strip_markup("x<SCRIPT type='a'>let s = '</b>';</ScRiPt >y"),
            "x y"
        );
        assert_eq!(strip_markup("<style>p { color: red }</style>hi"), "hi");
        assert_eq!(strip_markup("<a title=\"1 > 0\">link</a>"), "link");
        assert_eq!(
            strip_markup("<?xml version='1.0'?><!DOCTYPE html>text"),
            "text"
        );
    }

    #[test]
    fn unclosed_markup_runs_to_the_end() {
        assert_eq!(strip_markup("safe <img src=x onerror=alert(1)"), "safe");
        assert_eq!(strip_markup("a <!-- never closed"), "a");
        assert_eq!(strip_markup("a <script>alert(1)"), "a");
    }

    #[test]
    fn text_that_only_looks_like_markup_is_kept() {
        assert_eq!(strip_markup("3 < 4 > 2"), "3 < 4 > 2");
        assert_eq!(strip_markup("I <3 you"), "I <3 you");
        assert_eq!(strip_markup("&lt;b&gt;"), "&lt;b&gt;");
    }

    #[test]
    fn removed_markup_cannot_join_into_a_new_tag() {
        assert_eq!(strip_markup("<<b>b>"), "< b>");
        assert_eq!(strip_markup("<\u{1}b>x"), "x");
        assert_eq!(strip_markup("<scr<b>ipt>"), "ipt>");
    }

    #[test]
    fn whitespace_is_normalised() {
        assert_eq!(strip_markup("  a \t b\n\n c  "), "a b\nc");
        assert_eq!(strip_markup("<p>one</p>\n<p>two</p>"), "one\ntwo");
        assert_eq!(strip_markup("   "), "");
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hi", 5), "hi");
    }

    proptest! {
        #[test]
        fn no_markup_survives(input in "[<>a-z/!?'\" \n\u{1}-]{0,60}") {
            let out = strip_markup(&input);
            let chars: Vec<char> = out.chars().collect();
            for pair in chars.windows(2) {
                prop_assert!(!(pair[0] == '<' && starts_markup(pair[1])), "{out:?}");
            }
            prop_assert!(!out.chars().any(|c| c.is_control() && c != '\n'));
        }

        #[test]
        fn stripping_is_idempotent(input in "[<>a-zA-Z/!?'\" \n-]{0,60}") {
            let once = strip_markup(&input);
            prop_assert_eq!(strip_markup(&once), once.clone());
        }

        #[test]
        fn plain_text_keeps_its_words(words in proptest::collection::vec("[a-z0-9.,]{1,8}", 0..10)) {
            let text = words.join(" ");
            prop_assert_eq!(strip_markup(&text), text);
        }
    }
}
