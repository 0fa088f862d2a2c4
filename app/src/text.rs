//! Message text: split into plain text and web links, so the view can render links as `<a>` and
//! everything else as escaped text. Nothing here ever produces HTML.

/// A piece of a message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    Link(&'a str),
}

/// Longest link, in bytes, that [`segments`] makes: about what browsers, servers and search
/// engines reliably handle. A longer URL is shown as text, whole.
pub const MAX_LINK_LEN: usize = 2048;

/// Splits `body` into text and `http(s)://` links (the scheme in any case). A link runs up to the
/// next whitespace; trailing punctuation that usually ends a sentence (`.,;:!?`, quotes, and an
/// unbalanced `)`) stays out of it, while balanced parentheses (`.../Rust_(language)`) stay in. A
/// bare scheme, or a link longer than [`MAX_LINK_LEN`] bytes, stays text together with the rest of
/// its whitespace-free run.
///
/// Linear in `body.len()`: each byte is looked at a small, fixed number of times (the tests
/// count), as every message is split on the server and again in the browser.
pub fn segments(body: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    // `body[text_from..]` is not yet in `out`; the next link is searched for from `pos`.
    let mut text_from = 0;
    let mut pos = 0;
    while let Some(start) = find_link_start(body, pos) {
        let end = run_end(body, start);
        let link = trim_link(&body[start..end]);
        if link.len() <= "https://".len() || link.ends_with("://") || link.len() > MAX_LINK_LEN {
            // Just a scheme with nothing after it, or too long to be a link: keep it as text.
            push_text(&mut out, &body[text_from..end]);
            text_from = end;
            pos = end;
            continue;
        }
        push_text(&mut out, &body[text_from..start]);
        out.push(Segment::Link(link));
        text_from = start + link.len();
        pos = text_from;
    }
    push_text(&mut out, &body[text_from..]);
    out
}

// Bytes looked at by the link scanner; counted in tests only, to bound the work of `segments`.
#[cfg(test)]
thread_local! {
    static EXAMINED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[inline]
fn examined(_bytes: usize) {
    #[cfg(test)]
    EXAMINED.with(|count| count.set(count.get() + _bytes));
}

/// The first index at or after `from` where `http://` or `https://` starts, ASCII
/// case-insensitively. Scans forward once; nothing is copied or lowercased.
fn find_link_start(body: &str, from: usize) -> Option<usize> {
    let bytes = body.as_bytes();
    // Every match starts with an ASCII byte, so it is always on a char boundary.
    (from..bytes.len()).find(|&i| scheme_at(&bytes[i..]))
}

fn scheme_at(s: &[u8]) -> bool {
    let mut at = 0;
    let mut next = |want: u8| {
        examined(1);
        let found = s.get(at).is_some_and(|b| b.to_ascii_lowercase() == want);
        at += usize::from(found);
        found
    };
    if !(next(b'h') && next(b't') && next(b't') && next(b'p')) {
        return false;
    }
    next(b's');
    next(b':') && next(b'/') && next(b'/')
}

/// Where the whitespace-free run that starts at `start` ends.
fn run_end(body: &str, start: usize) -> usize {
    body[start..]
        .char_indices()
        .find(|&(_, c)| {
            examined(c.len_utf8());
            c.is_whitespace()
        })
        .map_or(body.len(), |(i, _)| start + i)
}

/// Drops trailing punctuation, and each trailing `)` that has no `(` to match, from `link`: one
/// pass counts the brackets, then the end is walked back one byte at a time.
fn trim_link(link: &str) -> &str {
    let bytes = link.as_bytes();
    examined(bytes.len());
    let (mut opens, mut closes) = (0usize, 0usize);
    for &b in bytes {
        match b {
            b'(' => opens += 1,
            b')' => closes += 1,
            _ => {}
        }
    }
    let mut end = bytes.len();
    while end > 0 {
        examined(1);
        match bytes[end - 1] {
            b'.' | b',' | b';' | b':' | b'!' | b'?' | b'"' | b'\'' => end -= 1,
            b')' if opens < closes => {
                closes -= 1;
                end -= 1;
            }
            _ => break,
        }
    }
    // Only ASCII bytes were dropped, so `end` is a char boundary.
    &link[..end]
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
    fn unicode_and_case() {
        assert_eq!(
            segments("voilà HTTPS://Exemple.fr/é?x=ü, fin"),
            vec![Text("voilà "), Link("HTTPS://Exemple.fr/é?x=ü"), Text(", fin")]
        );
        assert_eq!(segments("hthttp://a.bc"), vec![Text("ht"), Link("http://a.bc")]);
    }

    #[test]
    fn links_are_capped_at_max_link_len() {
        let at_cap = format!("https://a.b/{}", "x".repeat(MAX_LINK_LEN - "https://a.b/".len()));
        assert_eq!(segments(&format!("{at_cap}. ok")), vec![Link(&at_cap), Text(". ok")]);
        let over = format!("{at_cap}y");
        let body = format!("see {over}). ok https://a.b/c");
        assert_eq!(
            segments(&body),
            vec![Text(&body[..body.len() - " ok https://a.b/c".len()]), Text(" ok "), Link("https://a.b/c")]
        );
    }

    /// Splits `body` and returns how many bytes the scanner looked at while doing it.
    fn work(body: &str) -> (Vec<Segment<'_>>, usize) {
        EXAMINED.with(|count| count.set(0));
        let out = segments(body);
        (out, EXAMINED.with(std::cell::Cell::get))
    }

    #[test]
    fn work_is_linear_in_the_body_length() {
        // Bodies are at most 5,000 characters; these are the worst shapes for a link scanner.
        let x_closing = format!("http://x{}", ")".repeat(4_992));
        let xy_closing = format!("http://xy{}", ")".repeat(4_991));
        let bodies = [
            x_closing.clone(),
            xy_closing.clone(),
            "http://".repeat(714),
            "http:// ".repeat(625),
            "HtTpS://".repeat(625),
            "http://a.b ".repeat(454),
            "http://a.b/(".repeat(416),
            format!("http://a.b/{}", ".".repeat(4_989)),
            "http:/".repeat(833),
            "h".repeat(5_000),
            format!("https://x.org/{}", "é".repeat(4_986)),
        ];
        for body in &bodies {
            assert!((4_990..=5_000).contains(&body.chars().count()), "{} chars", body.chars().count());
            let (out, work) = work(body);
            let rejoined: String = out.iter().map(|(Text(s) | Link(s))| *s).collect();
            assert_eq!(rejoined, *body);
            assert!(
                work <= 8 * body.len(),
                "{work} bytes examined for a {}-byte body starting {:?}",
                body.len(),
                &body[..12]
            );
        }
        assert_eq!(work(&x_closing).0, vec![Text(&x_closing)]);
        assert_eq!(work(&xy_closing).0, vec![Link("http://xy"), Text(&xy_closing[9..])]);
        assert_eq!(work(&"http://a.b ".repeat(454)).0.iter().filter(|s| matches!(s, Link(_))).count(), 454);
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
