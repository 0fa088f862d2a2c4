//! Message text: split into plain text and web links, so the view can render links as `<a>` and
//! everything else as escaped text. Nothing here ever produces HTML.

/// A piece of a message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    Link(&'a str),
}

/// Splits `body` into text and `http(s)://` links. Trailing punctuation that usually ends a
/// sentence (`.,;:!?` and an unbalanced `)`) stays out of the link.
pub fn segments(body: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = find_link_start(rest) {
        let (before, from_link) = rest.split_at(start);
        let end = from_link.find(char::is_whitespace).unwrap_or(from_link.len());
        let link = trim_link(&from_link[..end]);
        if link.len() <= "https://".len() || !link.contains("://") || link.ends_with("://") {
            // Just a scheme with nothing after it: keep it as text.
            let (text, after) = rest.split_at(start + end);
            push_text(&mut out, text);
            rest = after;
            continue;
        }
        push_text(&mut out, before);
        out.push(Segment::Link(link));
        rest = &from_link[link.len()..];
    }
    push_text(&mut out, rest);
    out
}

fn find_link_start(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    [lower.find("https://"), lower.find("http://")].into_iter().flatten().min()
}

fn trim_link(link: &str) -> &str {
    let mut link = link;
    loop {
        let trimmed = link.trim_end_matches(['.', ',', ';', ':', '!', '?', '"', '\'']);
        let trimmed = if trimmed.ends_with(')') && trimmed.matches('(').count() < trimmed.matches(')').count() {
            &trimmed[..trimmed.len() - 1]
        } else {
            trimmed
        };
        if trimmed == link {
            return link;
        }
        link = trimmed;
    }
}

fn push_text<'a>(out: &mut Vec<Segment<'a>>, text: &'a str) {
    if !text.is_empty() {
        out.push(Segment::Text(text));
    }
}

/// Initials for an avatar: the first letter of the first two words, upper-cased.
pub fn initials(name: &str) -> String {
    name.split_whitespace().filter_map(|w| w.chars().next()).take(2).flat_map(char::to_uppercase).collect()
}

/// A one-line preview of a message for the contact list.
pub fn preview(body: &str, max_chars: usize) -> String {
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max_chars {
        return line;
    }
    let cut: String = line.chars().take(max_chars).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::Segment::{Link, Text};
    use super::*;

    #[test]
    fn finds_links_and_keeps_punctuation_out() {
        assert_eq!(
            segments("see https://example.com/a?b=1. and (http://x.org/y) ok"),
            vec![
                Text("see "),
                Link("https://example.com/a?b=1"),
                Text(". and ("),
                Link("http://x.org/y"),
                Text(") ok")
            ]
        );
        assert_eq!(
            segments("https://en.wikipedia.org/wiki/Rust_(programming_language)"),
            vec![Link("https://en.wikipedia.org/wiki/Rust_(programming_language)")]
        );
    }

    #[test]
    fn markup_is_only_ever_text() {
        let body = "<img src=x onerror=alert(1)>";
        assert_eq!(segments(body), vec![Text(body)]);
        assert_eq!(segments("javascript:alert(1)"), vec![Text("javascript:alert(1)")]);
        assert_eq!(segments("just https:// here"), vec![Text("just https://"), Text(" here")]);
    }

    #[test]
    fn initials_and_previews() {
        assert_eq!(initials("alice liddell"), "AL");
        assert_eq!(initials("Bob"), "B");
        assert_eq!(initials("  "), "");
        assert_eq!(preview("line one\nline   two", 40), "line one line two");
        assert_eq!(preview("abcdef ghij", 6), "abcdef…");
    }
}
