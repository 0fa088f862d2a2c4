//! Emoji: the table behind the picker and `:shortcode` completion (parsed from `/emoji.tsv`,
//! which the browser fetches only when first needed), searching it, the `:fragment` being typed,
//! and the recently used list. Pure: no browser APIs, so both sides compile and test it.

/// The reactions offered first, before the full picker.
pub const QUICK_REACTIONS: [&str; 6] = ["👍", "❤️", "😂", "😮", "😢", "🙏"];

/// How many recently used emoji are remembered.
pub const RECENT_MAX: usize = 24;

/// Fewest characters after `:` before suggestions show (`:+1`, `:ok`).
const SHORTCODE_MIN: usize = 2;
/// Longest `:fragment` looked for; the longest shortcode is about 40 characters.
const SHORTCODE_MAX: usize = 64;

/// One emoji of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emoji {
    /// The emoji itself, fully qualified (`❤️` with its U+FE0F), ready to insert.
    pub emoji: String,
    /// Its English name, as screen readers and the picker's labels say it (`thumbs up`).
    pub name: String,
    /// What can be typed after `:` to get it (`thumbsup`, `+1`), most familiar first.
    pub shortcodes: Vec<String>,
    /// Other words it is found by (`like`, `yes`), lower-case.
    pub keywords: Vec<String>,
    /// The picker section it is shown in (`smileys & emotion`).
    pub group: String,
    /// The name's words, lower-case, for matching.
    name_words: Vec<String>,
}

/// Every emoji the picker offers, in Unicode's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmojiTable {
    emoji: Vec<Emoji>,
}

/// How well an emoji matches a search; lower is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    ExactShortcode,
    NameOrShortcodeStart,
    NameWords,
    AnyWords,
}

impl EmojiTable {
    /// Reads the table from `emoji.tsv`: one emoji a line, tab-separated `emoji`, `name`,
    /// `shortcodes` (comma-separated), `keywords` (space-separated), `group`. Lines starting with
    /// `# ` are comments; a line without five fields, or with no emoji or name, is skipped.
    pub fn parse(text: &str) -> EmojiTable {
        let emoji = text
            .lines()
            .filter(|line| !line.starts_with("# ") && *line != "#")
            .filter_map(|line| {
                let mut fields = line.split('\t');
                let (emoji, name, shortcodes, keywords, group) =
                    (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
                let (emoji, name) = (emoji.trim(), name.trim());
                if emoji.is_empty() || name.is_empty() {
                    return None;
                }
                Some(Emoji {
                    emoji: emoji.to_owned(),
                    name: name.to_owned(),
                    shortcodes: shortcodes
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_lowercase)
                        .collect(),
                    keywords: keywords.split_whitespace().map(str::to_lowercase).collect(),
                    group: group.trim().to_owned(),
                    name_words: words(name),
                })
            })
            .collect();
        EmojiTable { emoji }
    }

    /// Every emoji, in the table's order.
    pub fn all(&self) -> &[Emoji] {
        &self.emoji
    }

    /// Whether the table has no emoji (it failed to parse, or was empty).
    pub fn is_empty(&self) -> bool {
        self.emoji.is_empty()
    }

    /// The emoji grouped as the picker shows them: each group once, in the order it first
    /// appears, with its emoji in table order.
    pub fn groups(&self) -> Vec<(&str, Vec<&Emoji>)> {
        let mut groups: Vec<(&str, Vec<&Emoji>)> = Vec::new();
        for emoji in &self.emoji {
            match groups.iter_mut().find(|(name, _)| *name == emoji.group) {
                Some((_, members)) => members.push(emoji),
                None => groups.push((&emoji.group, vec![emoji])),
            }
        }
        groups
    }

    /// The entry for `emoji`, to name a recently used one; a U+FE0F more or less still matches.
    pub fn get(&self, emoji: &str) -> Option<&Emoji> {
        let bare = |s: &str| s.replace('\u{FE0F}', "");
        self.emoji.iter().find(|e| e.emoji == emoji).or_else(|| {
            let wanted = bare(emoji);
            self.emoji.iter().find(|e| bare(&e.emoji) == wanted)
        })
    }

    /// Emoji matching what was typed in the picker's search box, best first, at most `limit`.
    /// Case-insensitive; every word typed must start a word of the name, a shortcode or a keyword.
    /// An exact shortcode comes first (`heart` → ❤️), then names and shortcodes that start with
    /// the query, then matches on name words, then on keywords; ties keep the table's order.
    pub fn search(&self, query: &str, limit: usize) -> Vec<&Emoji> {
        let query = query.trim().trim_start_matches(':').trim_end_matches(':').to_lowercase();
        let wanted = words(&query);
        if wanted.is_empty() || limit == 0 {
            return Vec::new();
        }
        let as_shortcode = query.split_whitespace().collect::<Vec<_>>().join("_");
        let mut found: Vec<(Rank, usize, &Emoji)> = self
            .emoji
            .iter()
            .enumerate()
            .filter_map(|(at, emoji)| emoji.rank(&query, &as_shortcode, &wanted).map(|rank| (rank, at, emoji)))
            .collect();
        found.sort_by_key(|&(rank, at, _)| (rank, at));
        found.into_iter().take(limit).map(|(_, _, emoji)| emoji).collect()
    }

    /// Suggestions for a `:shortcode` being typed (`prefix` without the `:`), at most `limit`: an
    /// exact shortcode first, then shortcodes starting with `prefix` (shortest first, so `:thu`
    /// offers 👍 `thumbsup` before 👎 `thumbsdown`), then emoji whose name has a word starting
    /// with it.
    pub fn complete(&self, prefix: &str, limit: usize) -> Vec<&Emoji> {
        let prefix = prefix.trim().to_lowercase();
        if prefix.is_empty() || limit == 0 {
            return Vec::new();
        }
        // (exact?, length of the shortest matching shortcode, table order)
        let mut by_shortcode: Vec<(bool, usize, usize, &Emoji)> = self
            .emoji
            .iter()
            .enumerate()
            .filter_map(|(at, emoji)| {
                let shortest = emoji.shortcodes.iter().filter(|s| s.starts_with(&prefix)).map(String::len).min()?;
                let exact = emoji.shortcodes.contains(&prefix);
                Some((!exact, shortest, at, emoji))
            })
            .collect();
        by_shortcode.sort_by_key(|&(not_exact, len, at, _)| (not_exact, len, at));
        let mut out: Vec<&Emoji> = by_shortcode.into_iter().map(|(_, _, _, emoji)| emoji).take(limit).collect();
        if out.len() < limit {
            let more: Vec<&Emoji> = self
                .emoji
                .iter()
                .filter(|emoji| emoji.name_words.iter().any(|w| w.starts_with(&prefix)))
                .filter(|emoji| !out.iter().any(|picked| std::ptr::eq(*picked, *emoji)))
                .take(limit - out.len())
                .collect();
            out.extend(more);
        }
        out
    }
}

impl Emoji {
    /// The shortcode shown beside a suggestion: the first one, or the name when it has none.
    pub fn label(&self) -> &str {
        self.shortcodes.first().map_or(&self.name, String::as_str)
    }

    /// The shortcode to show for a `:prefix` suggestion: the first one starting with `prefix`
    /// (`:thu` → `thumbsup`, not `+1`), else [`label`](Self::label).
    pub fn shortcode_for(&self, prefix: &str) -> &str {
        let prefix = prefix.to_lowercase();
        self.shortcodes.iter().find(|s| s.starts_with(&prefix)).map_or_else(|| self.label(), String::as_str)
    }

    fn rank(&self, query: &str, as_shortcode: &str, wanted: &[String]) -> Option<Rank> {
        if self.shortcodes.iter().any(|s| s == as_shortcode) {
            return Some(Rank::ExactShortcode);
        }
        if self.name.to_lowercase().starts_with(query) || self.shortcodes.iter().any(|s| s.starts_with(as_shortcode)) {
            return Some(Rank::NameOrShortcodeStart);
        }
        let starts = |words: &[String], w: &str| words.iter().any(|word| word.starts_with(w));
        if wanted.iter().all(|w| starts(&self.name_words, w)) {
            return Some(Rank::NameWords);
        }
        let anywhere =
            |w: &str| starts(&self.name_words, w) || starts(&self.shortcodes, w) || starts(&self.keywords, w);
        wanted.iter().all(|w| anywhere(w)).then_some(Rank::AnyWords)
    }
}

/// The lower-case words of `text`, split at anything that is not a letter, digit or `+`/`-`.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '+' || c == '-'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn is_shortcode_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '+' | '-')
}

/// The `:shortcode` being typed when the cursor is at byte `cursor` of `text`: where its `:` is,
/// and what follows it up to the cursor (`"see :thu"`, cursor at the end → `(4, "thu")`). It needs
/// at least two characters from `a-z 0-9 _ + -` after a `:` that starts the text or follows
/// whitespace, so times (`10:30`) and finished shortcodes (`:ok:`) are left alone, and nothing is
/// offered while the cursor is inside a word. `None` for a cursor past the end or inside a
/// character.
pub fn shortcode_at(text: &str, cursor: usize) -> Option<(usize, &str)> {
    if !text.is_char_boundary(cursor) {
        return None;
    }
    if text[cursor..].chars().next().is_some_and(|c| is_shortcode_char(c) || c == ':') {
        return None;
    }
    let before = &text[..cursor];
    let name_len = before.chars().rev().take(SHORTCODE_MAX + 1).take_while(|&c| is_shortcode_char(c)).count();
    if !(SHORTCODE_MIN..=SHORTCODE_MAX).contains(&name_len) {
        return None;
    }
    // Shortcode characters are ASCII, one byte each, so `colon` is where the `:` would be.
    let colon = cursor.checked_sub(name_len + 1)?;
    if before.as_bytes()[colon] != b':' {
        return None;
    }
    if before[..colon].chars().next_back().is_some_and(|c| !c.is_whitespace()) {
        return None;
    }
    Some((colon, &before[colon + 1..]))
}

/// A move in the picker's grid of emoji, by arrow key, Home or End.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridMove {
    Left,
    Right,
    Up,
    Down,
    Home,
    End,
}

/// Where focus goes in the picker's grid: emoji `at` (counted across all sections), sections of
/// `sections` emoji each, laid out `columns` to a row, each section starting a new row. Left and
/// Right go on into the next or previous section; Up and Down keep the column where they can and
/// cross into the section above or below; nothing moves past either end.
pub fn grid_move(sections: &[usize], columns: usize, at: usize, step: GridMove) -> usize {
    let total: usize = sections.iter().sum();
    if total == 0 {
        return 0;
    }
    let columns = columns.max(1);
    let at = at.min(total - 1);
    // The section holding `at`, its first index and its length; empty sections are skipped.
    let mut start = 0;
    let mut holding = (0, 0, 0);
    for (s, &len) in sections.iter().enumerate() {
        if at < start + len {
            holding = (s, start, len);
            break;
        }
        start += len;
    }
    let (section, start, len) = holding;
    let (row, column) = ((at - start) / columns, (at - start) % columns);
    let last_row = (len - 1) / columns;
    match step {
        GridMove::Left => at.saturating_sub(1),
        GridMove::Right => (at + 1).min(total - 1),
        GridMove::Home => 0,
        GridMove::End => total - 1,
        GridMove::Up if row > 0 => at - columns,
        GridMove::Up => {
            let Some((before, &above)) = sections[..section].iter().enumerate().rev().find(|&(_, &l)| l > 0) else {
                return at;
            };
            let above_start: usize = sections[..before].iter().sum();
            above_start + (((above - 1) / columns) * columns + column).min(above - 1)
        }
        GridMove::Down if at - start + columns < len => at + columns,
        // The row below is shorter and ends before this column: its last emoji.
        GridMove::Down if row < last_row => start + len - 1,
        GridMove::Down => match sections[section + 1..].iter().find(|&&l| l > 0) {
            Some(&below) => start + len + column.min(below - 1),
            None => at,
        },
    }
}

/// Puts `emoji` first in the recently used list, once, keeping at most [`RECENT_MAX`].
pub fn remember_recent(recent: &mut Vec<String>, emoji: &str) {
    if emoji.is_empty() {
        return;
    }
    recent.retain(|e| e != emoji);
    recent.insert(0, emoji.to_owned());
    recent.truncate(RECENT_MAX);
}

/// Reads the recently used list as stored in the browser (comma-separated, newest first),
/// skipping blanks, repeats and anything too long to be one emoji.
pub fn parse_recent(stored: &str) -> Vec<String> {
    let mut recent: Vec<String> = Vec::new();
    for emoji in stored.split(',').map(str::trim) {
        if !emoji.is_empty() && emoji.len() <= 64 && !recent.iter().any(|e| e == emoji) {
            recent.push(emoji.to_owned());
        }
        if recent.len() == RECENT_MAX {
            break;
        }
    }
    recent
}

/// The recently used list as stored in the browser; [`parse_recent`] reads it back.
pub fn store_recent(recent: &[String]) -> String {
    recent.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
# A comment line, then a blank one, then malformed ones.

not enough\tfields
\tnameless\t\t\tgroup
😀\tgrinning face\tgrinning,grinning_face\tcheerful happy smile\tsmileys & emotion
❤️\tred heart\theart,red_heart\tlove emotion\tsmileys & emotion
💔\tbroken heart\tbroken_heart\tbreak sad\tsmileys & emotion
👍\tthumbs up\t+1,thumbsup,thumbs_up\t+1 good like yes\tpeople & body
👎\tthumbs down\t-1,thumbsdown,thumbs_down\t-1 bad no\tpeople & body
⛈️\tcloud with lightning and rain\tthunder_cloud_and_rain\tweather\ttravel & places
🇫🇷\tflag: France\tfr,flag_france\tflag\tflags
";

    fn emoji<'a>(found: &[&'a Emoji]) -> Vec<&'a str> {
        found.iter().map(|e| e.emoji.as_str()).collect()
    }

    #[test]
    fn parses_good_lines_and_skips_the_rest() {
        let table = EmojiTable::parse(TABLE);
        assert_eq!(emoji(&table.all().iter().collect::<Vec<_>>()), ["😀", "❤️", "💔", "👍", "👎", "⛈️", "🇫🇷"]);
        let thumbs = &table.all()[3];
        assert_eq!(thumbs.name, "thumbs up");
        assert_eq!(thumbs.shortcodes, ["+1", "thumbsup", "thumbs_up"]);
        assert_eq!(thumbs.keywords, ["+1", "good", "like", "yes"]);
        assert_eq!(thumbs.label(), "+1");
        assert_eq!(thumbs.shortcode_for("THU"), "thumbsup");
        assert_eq!(thumbs.shortcode_for("good"), "+1");
        assert!(EmojiTable::parse("").is_empty());
        assert!(EmojiTable::parse("garbage\n\t\t\t\t\n").is_empty());
    }

    #[test]
    fn groups_keep_their_order() {
        let table = EmojiTable::parse(TABLE);
        let groups: Vec<(&str, usize)> = table.groups().iter().map(|(g, members)| (*g, members.len())).collect();
        assert_eq!(groups, [("smileys & emotion", 3), ("people & body", 2), ("travel & places", 1), ("flags", 1)]);
    }

    #[test]
    fn search_finds_names_shortcodes_and_keywords_best_first() {
        let table = EmojiTable::parse(TABLE);
        // The exact shortcode first, then names containing a word starting with the query.
        assert_eq!(emoji(&table.search("Heart", 10)), ["❤️", "💔"]);
        assert_eq!(emoji(&table.search("thumbs", 10)), ["👍", "👎"]);
        assert_eq!(emoji(&table.search("thumbs d", 10)), ["👎"]);
        assert_eq!(emoji(&table.search("like", 10)), ["👍"]);
        assert_eq!(emoji(&table.search(":+1:", 10)), ["👍"]);
        assert_eq!(emoji(&table.search("france", 10)), ["🇫🇷"]);
        assert_eq!(emoji(&table.search("sad heart", 10)), ["💔"]);
        assert_eq!(emoji(&table.search("h", 1)), ["❤️"]);
        assert!(table.search("  ", 10).is_empty());
        assert!(table.search("zebra", 10).is_empty());
    }

    #[test]
    fn completion_offers_shortcodes_then_names() {
        let table = EmojiTable::parse(TABLE);
        assert_eq!(emoji(&table.complete("thu", 6)), ["👍", "👎", "⛈️"]);
        assert_eq!(emoji(&table.complete("+1", 6)), ["👍"]);
        assert_eq!(emoji(&table.complete("heart", 6)), ["❤️", "💔"], "the exact shortcode, then a name word");
        assert_eq!(emoji(&table.complete("THU", 1)), ["👍"]);
        assert!(table.complete("", 6).is_empty());
        assert!(table.complete("zz", 6).is_empty());
    }

    #[test]
    fn finds_the_shortcode_being_typed() {
        assert_eq!(shortcode_at(":thu", 4), Some((0, "thu")));
        assert_eq!(shortcode_at("see :thu", 8), Some((4, "thu")));
        assert_eq!(shortcode_at("é\n:+1 later", 6), Some((3, "+1")));
        assert_eq!(shortcode_at("see :thu ok", 8), Some((4, "thu")), "the cursor may be before a space");
        assert_eq!(shortcode_at(":t", 2), None, "one character is too few");
        assert_eq!(shortcode_at("at 10:30", 8), None, "a colon inside a word is a time");
        assert_eq!(shortcode_at("a:thu", 5), None);
        assert_eq!(shortcode_at(":thumbsup:", 10), None, "a finished shortcode");
        assert_eq!(shortcode_at(":thumbsup", 4), None, "the cursor inside a word");
        assert_eq!(shortcode_at(":Thu", 4), None);
        assert_eq!(shortcode_at(":thu", 99), None);
        assert_eq!(shortcode_at("é:thu", 1), None, "inside a character");
        assert_eq!(shortcode_at(&format!(":{}", "a".repeat(70)), 71), None);
    }

    #[test]
    fn recent_emoji_are_newest_first_unique_and_few() {
        let mut recent = Vec::new();
        for emoji in ["👍", "❤️", "👍", ""] {
            remember_recent(&mut recent, emoji);
        }
        assert_eq!(recent, ["👍", "❤️"]);
        for i in 0..30 {
            remember_recent(&mut recent, &format!("e{i}"));
        }
        assert_eq!(recent.len(), RECENT_MAX);
        assert_eq!(recent[0], "e29");
        assert_eq!(parse_recent(&store_recent(&recent)), recent);
        assert_eq!(parse_recent(" 👍,,❤️,👍 , "), ["👍", "❤️"]);
        assert!(parse_recent("").is_empty());
    }

    #[test]
    fn arrow_keys_move_through_the_grid() {
        use GridMove::*;
        // Recent: 3 emoji; a group of 10 (rows of 4: 4, 4, 2); a group of 5.
        let sections = [3, 10, 5];
        let go = |at, step| grid_move(&sections, 4, at, step);
        assert_eq!(go(0, Left), 0);
        assert_eq!(go(2, Right), 3, "on into the next section");
        assert_eq!(go(17, Right), 17);
        assert_eq!((go(5, Home), go(5, End)), (0, 17));
        assert_eq!(go(1, Up), 1, "nothing above the first row");
        assert_eq!(go(8, Up), 4);
        assert_eq!(go(4, Up), 1, "into the row above, same column");
        assert_eq!(go(6, Up), 2, "the row above is short: its last emoji");
        assert_eq!(go(1, Down), 4);
        assert_eq!(go(4, Down), 8);
        assert_eq!(go(10, Down), 12, "the row below is shorter: its last emoji");
        assert_eq!(go(12, Down), 14, "into the next section, same column");
        assert_eq!(go(15, Up), 12, "back up to the last row of the section above");
        assert_eq!(go(17, Down), 17, "nothing below the last row");
        assert_eq!(grid_move(&[], 8, 3, Down), 0);
        assert_eq!(grid_move(&[2, 0, 2], 8, 1, Down), 3, "empty sections are skipped");
        assert_eq!(grid_move(&[2, 0, 2], 8, 2, Up), 0);
    }

    #[test]
    fn quick_reactions_are_in_the_table() {
        let table = EmojiTable::parse(include_str!("../../public/emoji.tsv"));
        for reaction in QUICK_REACTIONS {
            assert!(table.get(reaction).is_some(), "{reaction} is in emoji.tsv");
        }
    }

    #[test]
    fn the_real_table_completes_and_searches() {
        let table = EmojiTable::parse(include_str!("../../public/emoji.tsv"));
        assert!(table.all().len() > 1_500, "{} emoji", table.all().len());
        assert_eq!(table.complete("thu", 6).first().map(|e| e.emoji.as_str()), Some("👍"));
        assert_eq!(table.complete("+1", 6).first().map(|e| e.emoji.as_str()), Some("👍"));
        assert_eq!(table.search("heart", 10).first().map(|e| e.emoji.as_str()), Some("❤️"));
        assert!(table.all().iter().all(|e| !e.emoji.contains([
            '\u{1F3FB}',
            '\u{1F3FC}',
            '\u{1F3FD}',
            '\u{1F3FE}',
            '\u{1F3FF}'
        ])));
        assert!(table.groups().len() >= 9);
    }

    #[test]
    fn every_emoji_of_the_table_counts_as_one() {
        use crate::text::emoji_only;
        let table = EmojiTable::parse(include_str!("../../public/emoji.tsv"));
        for e in table.all() {
            let three = e.emoji.repeat(3);
            assert!(emoji_only(&e.emoji) && emoji_only(&three), "{} ({}) is one emoji", e.emoji, e.name);
            assert!(
                !emoji_only(&format!("{three}{}", e.emoji)),
                "{} ({}) four times is more than three",
                e.emoji,
                e.name
            );
        }
    }
}
