//! The rich text policy: a small HTML subset, cleaned on the way in by `ammonia` (an
//! html5ever-based allow-list sanitiser), so what is stored is already safe to render.
//!
//! Allowed: paragraphs and line breaks, emphasis, lists, quotes, code, headings h1–h4,
//! horizontal rules and links. Links keep only `href` and `title`, only with the `http`,
//! `https` and `mailto` schemes, and get `rel="noopener noreferrer nofollow"`. Everything else
//! is removed: scripts and styles with their content, event handler attributes, `style`,
//! `javascript:`/`data:` URLs, iframes, forms, images, comments.

use std::collections::HashSet;
use std::sync::LazyLock;

/// The tags kept.
const TAGS: [&str; 21] = [
    "p",
    "br",
    "strong",
    "em",
    "b",
    "i",
    "u",
    "s",
    "ul",
    "ol",
    "li",
    "blockquote",
    "code",
    "pre",
    "h1",
    "h2",
    "h3",
    "h4",
    "hr",
    "a",
    "span",
];

static POLICY: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut builder = ammonia::Builder::empty();
    builder
        .tags(TAGS.into_iter().collect::<HashSet<_>>())
        .tag_attributes(
            [("a", ["href", "title"].into_iter().collect::<HashSet<_>>())]
                .into_iter()
                .collect(),
        )
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean_content_tags(["script", "style"].into_iter().collect())
        .strip_comments(true);
    builder
});

/// The HTML `text` reduced to the allowed subset.
pub fn sanitize(text: &str) -> String {
    POLICY.clean(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn the_subset_survives_and_attacks_do_not() {
        assert_eq!(
            sanitize("<p>Hello <strong>there</strong></p>"),
            "<p>Hello <strong>there</strong></p>"
        );
        assert_eq!(sanitize("<script>alert(1)</script>ok"), "ok");
        assert_eq!(sanitize("<p onclick=\"x()\">hi</p>"), "<p>hi</p>");
        assert_eq!(
            sanitize("<a href=\"javascript:alert(1)\">x</a>"),
            "<a rel=\"noopener noreferrer nofollow\">x</a>"
        );
        assert!(!sanitize("<img src=x onerror=alert(1)>").contains("onerror"));
    }
}
