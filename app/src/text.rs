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

/// A block of a formatted message: a paragraph of running text, or a fenced code block shown
/// as-is in a monospace box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block<'a> {
    /// Text with light formatting; its newlines are kept as text (the view wraps with
    /// `white-space: pre-wrap`).
    Paragraph(Vec<Inline<'a>>),
    /// The lines between a ` ``` ` line and the next ` ``` ` line, without the fences or the
    /// language word after the opening one.
    CodeBlock(&'a str),
}

/// A piece of a paragraph. Each is shown as escaped text, inside `<strong>`, `<em>`, `<code>` or
/// `<a>` where it says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inline<'a> {
    /// Plain text, newlines included.
    Text(&'a str),
    /// `*bold*`. Never contains another `Bold`.
    Bold(Vec<Inline<'a>>),
    /// `_italic_`. Never contains another `Italic`.
    Italic(Vec<Inline<'a>>),
    /// `` `code` ``: shown verbatim, with no formatting or links inside.
    Code(&'a str),
    /// A web link, as [`segments`] finds them; nothing inside a link is formatted.
    Link(&'a str),
}

/// Formats a message body the way chat apps do: `*bold*`, `_italic_`, `` `code` ``, code blocks
/// fenced by ` ``` ` lines (an optional language word after the opening fence is dropped; with
/// no closing fence, the text stays as typed), and links as [`segments`] finds them.
///
/// A `*` or `_` opens only before a non-space and after the start or a non-alphanumeric
/// character, and closes only after a non-space and before the end or a non-alphanumeric
/// character, so `2*3*4` and `snake_case_name` stay as typed; a run like `**` counts as one
/// marker. Formatting never spans lines, never nests inside itself, and unmatched markers stay as
/// text. Links and inline code are found first, so a URL with underscores stays one link.
///
/// Linear in `body.len()` (the tests count), as every message is formatted on the server and
/// again in the browser.
pub fn format(body: &str) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    // `body[paragraph_from..]` is not yet in `blocks`.
    let mut paragraph_from = 0;
    let mut line_start = 0;
    while line_start < body.len() {
        let line_end = line_end(body, line_start);
        if is_opening_fence(&body[line_start..line_end]) {
            let Some(fence) = closing_fence(body, line_end) else {
                // No fence closes this one, so none later can open a block: the rest is text.
                break;
            };
            push_paragraph(&mut blocks, body, paragraph_from, line_start);
            blocks.push(Block::CodeBlock(&body[fence.content.clone()]));
            paragraph_from = fence.after;
            line_start = fence.after;
            continue;
        }
        line_start = line_end + 1;
    }
    push_paragraph(&mut blocks, body, paragraph_from, body.len());
    blocks
}

/// Where the line starting at `start` ends: the index of its `\n`, or the body's end.
fn line_end(body: &str, start: usize) -> usize {
    let rest = &body.as_bytes()[start..];
    let len = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    examined(len + 1);
    start + len
}

/// ` ``` ` alone, or followed by one word (the language), with optional spaces around.
fn is_opening_fence(line: &str) -> bool {
    line.trim().strip_prefix("```").is_some_and(|rest| !rest.contains(|c: char| c.is_whitespace() || c == '`'))
}

struct Fence {
    /// The code between the fence lines, without their newlines.
    content: std::ops::Range<usize>,
    /// Where the text after the closing fence line starts.
    after: usize,
}

/// The first line after `opening_end` (the `\n` ending an opening fence line) that is ` ``` `
/// alone, and the code in between.
fn closing_fence(body: &str, opening_end: usize) -> Option<Fence> {
    if opening_end >= body.len() {
        return None;
    }
    let content_start = opening_end + 1;
    let mut line_start = content_start;
    loop {
        let end = line_end(body, line_start);
        if body[line_start..end].trim() == "```" {
            // The newline (and a carriage return) before the closing line belongs to the fence.
            let mut content_end = line_start.saturating_sub(1).max(content_start);
            if body[content_start..content_end].ends_with('\r') {
                content_end -= 1;
            }
            return Some(Fence { content: content_start..content_end, after: (end + 1).min(body.len()) });
        }
        if end >= body.len() {
            return None;
        }
        line_start = end + 1;
    }
}

/// Adds `body[from..to]` as a paragraph, without the newlines that separate it from a code
/// block, unless it is only whitespace.
fn push_paragraph<'a>(blocks: &mut Vec<Block<'a>>, body: &'a str, from: usize, to: usize) {
    let text = &body[from..to];
    let trimmed = text.trim_matches(['\n', '\r']);
    if trimmed.trim().is_empty() {
        return;
    }
    let from = from + (text.len() - text.trim_start_matches(['\n', '\r']).len());
    let to = from + trimmed.len();
    let mut inlines = Vec::new();
    let mut tokens = Vec::new();
    let mut line_start = from;
    loop {
        let end = line_end(body, line_start).min(to);
        format_line(body, line_start..end, &mut tokens, &mut inlines);
        if end >= to {
            break;
        }
        push_inline(&mut inlines, body, Inline::Text(&body[end..end + 1]));
        line_start = end + 1;
    }
    blocks.push(Block::Paragraph(inlines));
}

/// A marker kind: `*` (bold) or `_` (italic).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Marker {
    Bold = 0,
    Italic = 1,
}

/// A piece of one line, before the markers are paired; ranges are byte ranges of the body.
enum Token {
    Text(std::ops::Range<usize>),
    Link(std::ops::Range<usize>),
    Code(std::ops::Range<usize>),
    Marker { run: std::ops::Range<usize>, marker: Marker, can_open: bool, can_close: bool, paired: Pairing },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pairing {
    Unpaired,
    Opens,
    Closes,
}

/// Formats one line (`range`, no newline inside) into `out`. `tokens` is scratch space.
fn format_line<'a>(body: &'a str, range: std::ops::Range<usize>, tokens: &mut Vec<Token>, out: &mut Vec<Inline<'a>>) {
    tokens.clear();
    tokenize_line(body, range, tokens);
    pair_markers(tokens);

    // The paragraph, then at most one frame per marker kind (they never nest in themselves).
    let mut frames: Vec<(Marker, Vec<Inline<'a>>)> = Vec::new();
    for token in tokens.iter() {
        examined(1);
        let frame = match frames.last_mut() {
            Some((_, inlines)) => inlines,
            None => &mut *out,
        };
        match token {
            Token::Text(r) => push_inline(frame, body, Inline::Text(&body[r.clone()])),
            Token::Link(r) => frame.push(Inline::Link(&body[r.clone()])),
            Token::Code(r) => frame.push(Inline::Code(&body[r.clone()])),
            Token::Marker { run, paired: Pairing::Unpaired, .. } => {
                push_inline(frame, body, Inline::Text(&body[run.clone()]))
            }
            Token::Marker { marker, paired: Pairing::Opens, .. } => frames.push((*marker, Vec::new())),
            Token::Marker { paired: Pairing::Closes, .. } => {
                if let Some((marker, inlines)) = frames.pop() {
                    let styled = match marker {
                        Marker::Bold => Inline::Bold(inlines),
                        Marker::Italic => Inline::Italic(inlines),
                    };
                    match frames.last_mut() {
                        Some((_, parent)) => parent.push(styled),
                        None => out.push(styled),
                    }
                }
            }
        }
    }
}

/// Splits a line into inline code, links, text and marker runs.
fn tokenize_line(body: &str, range: std::ops::Range<usize>, tokens: &mut Vec<Token>) {
    let bytes = body.as_bytes();
    let line = &bytes[range.clone()];
    examined(line.len());
    // Inline code first: a backtick before a non-space opens; the next backtick closes it when
    // there is code in between and no space just before it. Either way the search goes on from
    // that next backtick, so each byte is looked at once.
    let mut text_from = range.start;
    let mut open: Option<usize> = None;
    for (i, _) in line.iter().enumerate().filter(|&(_, &b)| b == b'`') {
        let at = range.start + i;
        if let Some(opened) = open.take()
            && at > opened + 1
            && !char_before(body, at).is_some_and(char::is_whitespace)
        {
            tokenize_text(body, text_from..opened, tokens);
            tokens.push(Token::Code(opened + 1..at));
            text_from = at + 1;
            continue;
        }
        let next = body[at + 1..range.end].chars().next();
        open = next.is_some_and(|c| !c.is_whitespace()).then_some(at);
    }
    tokenize_text(body, text_from..range.end, tokens);
}

/// Splits text (no inline code) into links, text and marker runs.
fn tokenize_text(body: &str, range: std::ops::Range<usize>, tokens: &mut Vec<Token>) {
    if range.is_empty() {
        return;
    }
    for segment in segments(&body[range]) {
        match segment {
            Segment::Link(link) => {
                let start = offset_in(body, link);
                tokens.push(Token::Link(start..start + link.len()));
            }
            Segment::Text(text) => tokenize_markers(body, offset_in(body, text), text.len(), tokens),
        }
    }
}

/// Splits text into plain text and runs of `*` or `_`, each with whether it can open or close.
fn tokenize_markers(body: &str, start: usize, len: usize, tokens: &mut Vec<Token>) {
    let bytes = body.as_bytes();
    let end = start + len;
    let mut text_from = start;
    let mut i = start;
    while i < end {
        examined(1);
        let marker = match bytes[i] {
            b'*' => Marker::Bold,
            b'_' => Marker::Italic,
            _ => {
                i += 1;
                continue;
            }
        };
        let run_start = i;
        while i < end && bytes[i] == bytes[run_start] {
            examined(1);
            i += 1;
        }
        // Markers are ASCII, so both ends of a run are char boundaries.
        let (before, after) = (char_before(body, run_start), body[i..].chars().next());
        let can_open = after.is_some_and(|c| !c.is_whitespace()) && !before.is_some_and(char::is_alphanumeric);
        let can_close = before.is_some_and(|c| !c.is_whitespace()) && !after.is_some_and(char::is_alphanumeric);
        if !can_open && !can_close {
            continue;
        }
        if text_from < run_start {
            tokens.push(Token::Text(text_from..run_start));
        }
        tokens.push(Token::Marker { run: run_start..i, marker, can_open, can_close, paired: Pairing::Unpaired });
        text_from = i;
    }
    if text_from < end {
        tokens.push(Token::Text(text_from..end));
    }
}

/// Pairs markers left to right: a closer takes the open marker of its kind, and an open marker of
/// the other kind opened after that one stays text (no crossing). At most one marker per kind is
/// open at a time, so this is one pass with constant work per marker.
fn pair_markers(tokens: &mut [Token]) {
    let mut open: [Option<usize>; 2] = [None, None];
    for at in 0..tokens.len() {
        examined(1);
        let Token::Marker { marker, can_open, can_close, .. } = tokens[at] else { continue };
        let kind = marker as usize;
        match open[kind] {
            Some(opened) if can_close && at > opened + 1 => {
                set_pairing(&mut tokens[opened], Pairing::Opens);
                set_pairing(&mut tokens[at], Pairing::Closes);
                open[kind] = None;
                // The other kind, opened inside this pair and not closed in it, stays text.
                if open[1 - kind].is_some_and(|other| other > opened) {
                    open[1 - kind] = None;
                }
            }
            None if can_open => open[kind] = Some(at),
            _ => {}
        }
    }
}

fn set_pairing(token: &mut Token, to: Pairing) {
    if let Token::Marker { paired, .. } = token {
        *paired = to;
    }
}

/// Adds `inline` to `out`, joining text that continues the text before it.
fn push_inline<'a>(out: &mut Vec<Inline<'a>>, body: &'a str, inline: Inline<'a>) {
    if let (Some(Inline::Text(previous)), Inline::Text(text)) = (out.last_mut(), &inline) {
        let start = offset_in(body, previous);
        if start + previous.len() == offset_in(body, text) {
            *previous = &body[start..start + previous.len() + text.len()];
            return;
        }
    }
    if !matches!(inline, Inline::Text("")) {
        out.push(inline);
    }
}

/// Where `part`, a slice of `body`, starts in it.
fn offset_in(body: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(body.as_ptr() as usize).min(body.len())
}

fn char_before(body: &str, at: usize) -> Option<char> {
    body[..at].chars().next_back()
}

/// `body` as it reads once formatted, without the markers: `*hike* at 9` → `hike at 9` (for
/// quotes and previews, which show plain text). Code blocks keep their text.
pub fn plain(body: &str) -> String {
    fn push(out: &mut String, inlines: &[Inline<'_>]) {
        for inline in inlines {
            match inline {
                Inline::Text(text) | Inline::Code(text) | Inline::Link(text) => out.push_str(text),
                Inline::Bold(inner) | Inline::Italic(inner) => push(out, inner),
            }
        }
    }
    let mut out = String::with_capacity(body.len());
    for (i, block) in format(body).iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match block {
            Block::Paragraph(inlines) => push(&mut out, inlines),
            Block::CodeBlock(code) => out.push_str(code),
        }
    }
    out
}

/// Whether a message is nothing but one to three emoji (spaces between them allowed), which the
/// conversation shows large. An emoji is one picture however it is spelled: a flag pair, a keycap,
/// a skin tone or a U+FE0F after its base, and people or things joined with U+200D all count once.
/// Digits and symbols like `#` or `©` alone are text, not emoji.
pub fn emoji_only(body: &str) -> bool {
    let mut chars = body.trim().chars().peekable();
    let mut count = 0;
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if !take_emoji(c, &mut chars) {
            return false;
        }
        count += 1;
        if count > 3 {
            return false;
        }
    }
    count > 0
}

const VARIATION_EMOJI: char = '\u{FE0F}';
const VARIATION_TEXT: char = '\u{FE0E}';
const ZERO_WIDTH_JOINER: char = '\u{200D}';
const KEYCAP: char = '\u{20E3}';

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// Consumes the rest of the emoji that starts with `first`; false when it is not one.
fn take_emoji(first: char, chars: &mut Chars<'_>) -> bool {
    if is_regional_indicator(first) {
        // Flags are pairs; a lone letter in a box is not an emoji.
        return chars.next_if(|&c| is_regional_indicator(c)).is_some();
    }
    if first.is_ascii_digit() || first == '#' || first == '*' {
        chars.next_if_eq(&VARIATION_EMOJI);
        return chars.next_if_eq(&KEYCAP).is_some();
    }
    if !take_element(first, chars, false) {
        return false;
    }
    while chars.next_if_eq(&ZERO_WIDTH_JOINER).is_some() {
        match chars.next() {
            Some(next) if take_element(next, chars, true) => {}
            _ => return false,
        }
    }
    true
}

/// One pictograph with its modifiers. Symbols that are text unless asked (`❤`, `☺`) count
/// when a U+FE0F or skin tone follows them, or after a joiner.
fn take_element(c: char, chars: &mut Chars<'_>, joined: bool) -> bool {
    let mut shown_as_emoji = if is_emoji_presentation(c) {
        true
    } else if is_text_default_emoji(c) {
        joined
    } else {
        return false;
    };
    if chars.next_if_eq(&VARIATION_EMOJI).is_some() {
        shown_as_emoji = true;
    } else if chars.next_if_eq(&VARIATION_TEXT).is_some() {
        return false;
    }
    if chars.next_if(|&c| is_skin_tone(c)).is_some() {
        shown_as_emoji = true;
    }
    // Tag sequences: the flags of England, Scotland and Wales.
    while chars.next_if(|c| ('\u{E0020}'..='\u{E007F}').contains(c)).is_some() {}
    shown_as_emoji
}

fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

fn is_skin_tone(c: char) -> bool {
    ('\u{1F3FB}'..='\u{1F3FF}').contains(&c)
}

/// Characters shown as emoji by default: the pictographic planes, and the few in the Basic
/// Multilingual Plane that Unicode gives emoji presentation.
fn is_emoji_presentation(c: char) -> bool {
    matches!(c as u32,
        0x1F004 | 0x1F0CF | 0x1F18E | 0x1F191..=0x1F19A | 0x1F201 | 0x1F21A | 0x1F22F
        | 0x1F232..=0x1F236 | 0x1F238..=0x1F23A | 0x1F250..=0x1F251 | 0x1F300..=0x1F64F
        | 0x1F680..=0x1F6FF | 0x1F7E0..=0x1F7EB | 0x1F7F0 | 0x1F90C..=0x1F9FF | 0x1FA70..=0x1FAFF
        | 0x231A..=0x231B | 0x23E9..=0x23EC | 0x23F0 | 0x23F3 | 0x25FD..=0x25FE | 0x2614..=0x2615
        | 0x2648..=0x2653 | 0x267F | 0x2693 | 0x26A1 | 0x26AA..=0x26AB | 0x26BD..=0x26BE
        | 0x26C4..=0x26C5 | 0x26CE | 0x26D4 | 0x26EA | 0x26F2..=0x26F3 | 0x26F5 | 0x26FA | 0x26FD
        | 0x2705 | 0x270A..=0x270B | 0x2728 | 0x274C | 0x274E | 0x2753..=0x2755 | 0x2757
        | 0x2795..=0x2797 | 0x27B0 | 0x27BF | 0x2B1B..=0x2B1C | 0x2B50 | 0x2B55)
}

/// Symbols that are emoji only when asked for with U+FE0F (`❤️`, `☺️`, `©️`, `🅰️`).
fn is_text_default_emoji(c: char) -> bool {
    matches!(c as u32,
        0xA9 | 0xAE | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x2190..=0x21FF | 0x2300..=0x23FF | 0x24C2
        | 0x25A0..=0x25FF | 0x2600..=0x27BF | 0x2934..=0x2935 | 0x2B05..=0x2B07 | 0x3030 | 0x303D
        | 0x3297 | 0x3299 | 0x1F170..=0x1F171 | 0x1F17E..=0x1F17F | 0x1F202 | 0x1F237)
}

/// The byte offset in `text` of a position counted in UTF-16 units, as a browser's
/// `selectionStart` counts; clamped to the text, and moved back to a character's start if it
/// falls inside one.
pub fn byte_offset_of_utf16(text: &str, units: u32) -> usize {
    let mut counted = 0u32;
    for (at, c) in text.char_indices() {
        counted += c.len_utf16() as u32;
        if counted > units {
            return at;
        }
    }
    text.len()
}

/// The length of `text` in UTF-16 units, as a browser counts positions in a text field.
pub fn utf16_len(text: &str) -> u32 {
    text.chars().map(|c| c.len_utf16() as u32).sum()
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

/// `text` as a URL query value: everything but unreserved characters percent-encoded (UTF-8).
pub fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
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

    mod formatting {
        use super::super::Block::{CodeBlock, Paragraph};
        use super::super::Inline::{self, Bold, Code, Italic, Link, Text};
        use super::super::*;

        #[test]
        fn bold_italic_and_code() {
            assert_eq!(
                format("*hi* _there_ `x_y` ok"),
                vec![Paragraph(vec![
                    Bold(vec![Text("hi")]),
                    Text(" "),
                    Italic(vec![Text("there")]),
                    Text(" "),
                    Code("x_y"),
                    Text(" ok")
                ])]
            );
            assert_eq!(
                format("(*yes*), **twice**"),
                vec![Paragraph(vec![Text("("), Bold(vec![Text("yes")]), Text("), "), Bold(vec![Text("twice")])])]
            );
            assert_eq!(
                format("*bold _both_ here*"),
                vec![Paragraph(vec![Bold(vec![Text("bold "), Italic(vec![Text("both")]), Text(" here")])])]
            );
            assert_eq!(format("*see `x`*"), vec![Paragraph(vec![Bold(vec![Text("see "), Code("x")])])]);
        }

        #[test]
        fn markers_inside_words_or_before_spaces_stay_as_typed() {
            for body in
                ["2*3*4 = 24", "snake_case_name", "a * b * c", "a _ b _ c", "*open only", "_x", "x_", "**", "* *"]
            {
                assert_eq!(format(body), vec![Paragraph(vec![Text(body)])], "{body:?}");
            }
            // Crossing markers: the first to close wins, the other stays text.
            assert_eq!(format("*a _b* c_"), vec![Paragraph(vec![Bold(vec![Text("a _b")]), Text(" c_")])]);
        }

        #[test]
        fn links_and_code_are_never_formatted_inside() {
            assert_eq!(
                format("*look* https://a.b/snake_case_*x* ok"),
                vec![Paragraph(vec![
                    Bold(vec![Text("look")]),
                    Text(" "),
                    Link("https://a.b/snake_case_*x*"),
                    Text(" ok")
                ])]
            );
            assert_eq!(format("`*no* https://a.b _c_`"), vec![Paragraph(vec![Code("*no* https://a.b _c_")])]);
            assert_eq!(format("` spaced `, ``"), vec![Paragraph(vec![Text("` spaced `, ``")])]);
        }

        #[test]
        fn newlines_are_kept_and_formatting_stays_on_its_line() {
            assert_eq!(format("*a\nb*"), vec![Paragraph(vec![Text("*a\nb*")])]);
            assert_eq!(
                format("one\n\n*two*\nthree"),
                vec![Paragraph(vec![Text("one\n\n"), Bold(vec![Text("two")]), Text("\nthree")])]
            );
        }

        #[test]
        fn fenced_code_blocks() {
            assert_eq!(
                format("look:\n```rust\nfn main() {\n    *x* = 1;\n}\n```\nafter _it_"),
                vec![
                    Paragraph(vec![Text("look:")]),
                    CodeBlock("fn main() {\n    *x* = 1;\n}"),
                    Paragraph(vec![Text("after "), Italic(vec![Text("it")])])
                ]
            );
            assert_eq!(format("```\n```"), vec![CodeBlock("")]);
            assert_eq!(
                format("a\r\n```\r\ncode\r\n```\r\nb"),
                vec![Paragraph(vec![Text("a")]), CodeBlock("code"), Paragraph(vec![Text("b")])]
            );
            assert_eq!(format("```\none\n```\n\n```\ntwo\n```"), vec![CodeBlock("one"), CodeBlock("two")]);
            // Not a fence: text after it, or more than one word.
            assert_eq!(format("```a b\nx\n```"), vec![Paragraph(vec![Text("```a b\nx\n```")])]);
        }

        #[test]
        fn an_unclosed_fence_is_text() {
            assert_eq!(format("```\ncode *b*"), vec![Paragraph(vec![Text("```\ncode "), Bold(vec![Text("b")])])]);
            assert_eq!(format("```js\nx\n```js"), vec![Paragraph(vec![Text("```js\nx\n```js")])]);
        }

        #[test]
        fn markup_is_only_ever_text() {
            assert_eq!(
                format("<b>*x*</b><script>"),
                vec![Paragraph(vec![Text("<b>"), Bold(vec![Text("x")]), Text("</b><script>")])]
            );
        }

        /// Every leaf of `blocks` in order, each a slice of the body.
        fn leaves<'a>(blocks: &[Block<'a>]) -> Vec<&'a str> {
            fn walk<'a>(inlines: &[Inline<'a>], out: &mut Vec<&'a str>) {
                for inline in inlines {
                    match inline {
                        Text(s) | Code(s) | Link(s) => out.push(s),
                        Bold(inner) | Italic(inner) => walk(inner, out),
                    }
                }
            }
            let mut out = Vec::new();
            for block in blocks {
                match block {
                    Paragraph(inlines) => walk(inlines, &mut out),
                    CodeBlock(code) => out.push(code),
                }
            }
            out
        }

        /// Formats `body` and returns how many bytes were looked at while doing it.
        fn work(body: &str) -> (Vec<Block<'_>>, usize) {
            EXAMINED.with(|count| count.set(0));
            let out = format(body);
            (out, EXAMINED.with(std::cell::Cell::get))
        }

        #[test]
        fn work_is_linear_and_nothing_typed_is_lost() {
            let bodies = [
                "*_".repeat(2_500),
                "*_*".repeat(1_666),
                "_*a ".repeat(1_250),
                "*a _b ".repeat(833),
                "_x_ ".repeat(1_250),
                "`a `".repeat(1_250),
                "`".repeat(5_000),
                "`x".repeat(2_500),
                "```\n".repeat(1_250),
                "```x\n".repeat(1_000),
                "\n".repeat(5_000),
                "```\n*a*\n".repeat(625),
                "https://a.b/_*_ ".repeat(312),
                format!("*{}", "é_".repeat(2_499)),
            ];
            for body in &bodies {
                assert!((4_990..=5_000).contains(&body.chars().count()), "{} chars", body.chars().count());
                let (blocks, work) = work(body);
                assert!(
                    work <= 12 * body.len(),
                    "{work} bytes examined for a {}-byte body starting {:?}",
                    body.len(),
                    &body[..8]
                );
                // The leaves are in order and only markers, fences and edge newlines are left out.
                let mut at = 0;
                for leaf in leaves(&blocks) {
                    let start = offset_in(body, leaf);
                    assert!(start >= at, "leaves out of order in {:?}", &body[..8]);
                    assert!(body[at..start].chars().all(|c| "*_`\n\r x".contains(c)), "{:?} dropped", &body[at..start]);
                    at = start + leaf.len();
                }
            }
            let nested = "*_".repeat(2_500);
            let (blocks, _) = work(&nested);
            assert!(!blocks.is_empty());
        }
    }

    #[test]
    fn emoji_only_messages() {
        for body in
            ["👍", " 👍👍👍 ", "👍 ❤️ 😂", "❤️", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷🇩🇪", "#️⃣", "1️⃣2️⃣3️⃣", "🏴󠁧󠁢󠁥󠁮󠁧󠁿", "✅", "❤️‍🔥", "🧑🏽‍💻", "👁️‍🗨️"]
        {
            assert!(emoji_only(body), "{body:?} is emoji only");
        }
        for body in [
            "",
            "  ",
            "1",
            "#",
            "*",
            "©",
            "❤",
            "hi 👍",
            "👍!",
            "👍👍👍👍",
            "🇫",
            "a",
            "👍\u{200D}",
            "☺\u{FE0E}",
            "😀 😀 😀 😀",
        ] {
            assert!(!emoji_only(body), "{body:?} is not emoji only");
        }
    }

    #[test]
    fn utf16_positions_map_to_bytes() {
        let text = "a😀é";
        assert_eq!(utf16_len(text), 4);
        assert_eq!(byte_offset_of_utf16(text, 0), 0);
        assert_eq!(byte_offset_of_utf16(text, 1), 1);
        assert_eq!(byte_offset_of_utf16(text, 2), 1, "inside the surrogate pair: back to the emoji's start");
        assert_eq!(byte_offset_of_utf16(text, 3), 5);
        assert_eq!(byte_offset_of_utf16(text, 4), 7);
        assert_eq!(byte_offset_of_utf16(text, 99), 7);
    }

    #[test]
    fn query_values_escape_everything_but_unreserved_characters() {
        assert_eq!(query_value("a b&c=d/é.png"), "a%20b%26c%3Dd%2F%C3%A9.png");
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
