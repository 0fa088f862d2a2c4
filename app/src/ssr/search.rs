//! Full-text search over the messages a person can see, in each database's own full-text index
//! (see the `message_search` migration): SQLite's FTS5, PostgreSQL's `tsvector`.
//!
//! What a person writes is never handed to the database's query syntax: it is read here into
//! words and quoted phrases, and each engine's query is written from those. Every word matches as
//! a prefix ("deploy" finds "deployment"), a quoted phrase matches those words in a row, and all of
//! them must match. Case and accents never matter.
//!
//! Visibility is the scoping of history: one-to-one messages you sent or received, and a group's
//! messages while you are a member (a former member up to the message they left at).
//!
//! - PostgreSQL reads the ids a person can see first, through the indexes that serve history, and
//!   matches only those against their `tsvector`, ranked by `ts_rank`.
//! - SQLite's FTS5 index carries each message's audience as tokens of a second column (`u{id}`
//!   for both people of a one-to-one message, `g{id}` for a group's), so one `MATCH` asks for the
//!   words *and* the person's conversations, and FTS5 intersects the two lists itself: the cost
//!   follows what the person can see, not what the database holds. FTS5's `bm25()` would recount
//!   its statistics over every message holding each word (seconds for a common word over a
//!   million messages), so the newest [`FTS5_CANDIDATES`] matches are ranked here with BM25's
//!   formula over those candidates.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, QuerySelect};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, Statement, TransactionTrait, Value,
};
use unicode_normalization::UnicodeNormalization;

use crate::error::AppError;
use crate::model::{
    ConversationRef, ExcerptPart, SEARCH_MAX_CHARS, SEARCH_PAGE, SEARCH_PAGES_MAX, SearchHit, SearchPage,
};
use crate::ssr::entities::{chat_room_participants as participants, chat_rooms, messages};
use crate::ssr::messages::names;

/// The most words (in phrases or not) a search may hold.
const TERMS_MAX: usize = 16;
/// A long message's excerpt: about this many characters, around its first match.
const EXCERPT_CHARS: usize = 160;
/// Characters shown before the first match when the excerpt starts inside the message.
const EXCERPT_LEAD: usize = 40;

/// What a person searched for: words (each a prefix) and phrases (words in a row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Prefix(String),
    Phrase(Vec<String>),
}

/// The words of `text` as the index splits them: runs of letters and digits.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty())
}

/// A word as the index compares it: lower case, accents removed.
fn fold(word: &str) -> String {
    if word.is_ascii() {
        return word.to_ascii_lowercase();
    }
    word.nfd().filter(|c| !unicode_normalization::char::is_combining_mark(*c)).flat_map(char::to_lowercase).collect()
}

impl Query {
    /// Reads a search. `Ok(None)` when it holds no word at all (nothing to search for).
    pub fn parse(text: &str) -> Result<Option<Self>, AppError> {
        if text.chars().count() > SEARCH_MAX_CHARS {
            return Err(AppError::invalid("q", format!("a search is at most {SEARCH_MAX_CHARS} characters")));
        }
        let mut terms = Vec::new();
        // Between quotes is a phrase; an unclosed quote runs to the end.
        for (i, part) in text.split('"').enumerate() {
            let folded: Vec<String> = words(part).map(fold).filter(|w| !w.is_empty()).collect();
            if i % 2 == 1 && folded.len() > 1 {
                terms.push(Term::Phrase(folded));
            } else {
                terms.extend(folded.into_iter().map(Term::Prefix));
            }
        }
        let count: usize = terms.iter().map(|t| if let Term::Phrase(w) = t { w.len() } else { 1 }).sum();
        if count > TERMS_MAX {
            return Err(AppError::invalid("q", format!("a search is at most {TERMS_MAX} words")));
        }
        Ok((!terms.is_empty()).then_some(Self { terms }))
    }

    /// The FTS5 query of the words: each word a quoted prefix, each phrase quoted, all required.
    /// Folded words hold letters and digits only, so quoting cannot be escaped.
    fn fts5(&self) -> String {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|term| match term {
                Term::Prefix(word) => format!("\"{word}\"*"),
                Term::Phrase(words) => format!("\"{}\"", words.join(" ")),
            })
            .collect();
        parts.join(" AND ")
    }

    /// The `to_tsquery` text: `word:*` for a word, `a <-> b` for a phrase, joined by `&`.
    fn tsquery(&self) -> String {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|term| match term {
                Term::Prefix(word) => format!("'{word}':*"),
                Term::Phrase(words) => {
                    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
                    format!("({})", quoted.join(" <-> "))
                }
            })
            .collect();
        parts.join(" & ")
    }

    /// How many times each term occurs in `body` (a phrase: its words in a row), and how many words
    /// `body` has: what PostgreSQL's index would find in it.
    fn occurrences(&self, body: &str) -> (Vec<u32>, u32) {
        let folded: Vec<String> = words(body).map(fold).filter(|w| !w.is_empty()).collect();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let counts = self
            .terms
            .iter()
            .map(|term| match term {
                Term::Prefix(prefix) => count(folded.iter().filter(|w| w.starts_with(prefix.as_str())).count()),
                Term::Phrase(phrase) => {
                    count(folded.windows(phrase.len()).filter(|run| *run == phrase.as_slice()).count())
                }
            })
            .collect();
        (counts, count(folded.len()))
    }

    /// Whether a (folded) word of a message is one this search looks for.
    fn matches(&self, folded: &str) -> bool {
        self.terms.iter().any(|term| match term {
            Term::Prefix(word) => folded.starts_with(word.as_str()),
            Term::Phrase(words) => words.iter().any(|w| w == folded),
        })
    }

    /// `body` cut to an excerpt around its first match, split into matching and other parts.
    pub fn excerpt(&self, body: &str) -> Vec<ExcerptPart> {
        // Byte ranges of the words that match.
        let mut hits: Vec<(usize, usize)> = Vec::new();
        let mut start = None;
        for (i, c) in body.char_indices().chain(std::iter::once((body.len(), ' '))) {
            match (c.is_alphanumeric(), start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    if self.matches(&fold(&body[s..i])) {
                        hits.push((s, i));
                    }
                    start = None;
                }
                _ => {}
            }
        }
        // The window: the whole message when short; else from a little before the first match.
        let chars: Vec<(usize, char)> = body.char_indices().collect();
        let (from, to) = if chars.len() <= EXCERPT_CHARS {
            (0, body.len())
        } else {
            let first = hits.first().map_or(0, |&(s, _)| s);
            let first_char = chars.iter().position(|&(i, _)| i == first).unwrap_or(0);
            let mut from_char = first_char.saturating_sub(EXCERPT_LEAD);
            // Start at a word's beginning, not inside one.
            while from_char > 0 && from_char < first_char && chars[from_char - 1].1.is_alphanumeric() {
                from_char += 1;
            }
            let to_char = (from_char + EXCERPT_CHARS).min(chars.len());
            let byte = |c: usize| chars.get(c).map_or(body.len(), |&(i, _)| i);
            (byte(from_char), byte(to_char))
        };
        let mut parts = Vec::new();
        let mut push = |text: &str, hit: bool| {
            if !text.is_empty() {
                parts.push(ExcerptPart { text: text.to_owned(), hit });
            }
        };
        if from > 0 {
            push("…", false);
        }
        let mut at = from;
        for &(s, e) in hits.iter().filter(|&&(s, e)| s >= from && e <= to) {
            push(&body[at..s], false);
            push(&body[s..e], true);
            at = e;
        }
        push(&body[at..to], false);
        if to < body.len() {
            push("…", false);
        }
        parts
    }
}

/// The messages `me` can see that people wrote (`kind = 'text'`, not deleted), as SELECTs of
/// `columns` (of `m`, the message) joined by UNION ALL, for one conversation or all, each read
/// through an index that serves history. `me` and `other` (the conversation's id) are the
/// parameters' markers.
fn visible(scope: Option<ConversationRef>, me: &str, other: &str, columns: &str) -> String {
    let written = "m.kind = 'text' AND m.deleted_at IS NULL";
    let sent = |from: &str, to: &str| {
        format!("SELECT {columns} FROM messages m WHERE m.user_id = {from} AND m.recipient_id {to} AND {written}")
    };
    let groups = |only_room: &str| {
        format!(
            "SELECT {columns} FROM chat_room_participants p JOIN messages m ON m.chat_room_id = p.chat_room_id \
             WHERE p.user_id = {me}{only_room} AND (p.left_at IS NULL OR m.id <= COALESCE(p.visible_up_to, 0)) \
             AND {written}"
        )
    };
    match scope {
        None => format!(
            "{} UNION ALL SELECT {columns} FROM messages m WHERE m.recipient_id = {me} AND {written} UNION ALL {}",
            sent(me, "IS NOT NULL"),
            groups("")
        ),
        Some(ConversationRef::Direct(_)) => {
            format!("{} UNION ALL {}", sent(me, &format!("= {other}")), sent(other, &format!("= {me}")))
        }
        Some(ConversationRef::Group(_)) => groups(&format!(" AND p.chat_room_id = {other}")),
    }
}

/// Page `page` (from 1) of the messages `me` can see that match `text`, best first, in one
/// conversation or all. An empty search finds nothing.
pub async fn search(
    db: &DatabaseConnection,
    me: i64,
    text: &str,
    scope: Option<ConversationRef>,
    page: u32,
) -> Result<SearchPage, AppError> {
    if !(1..=SEARCH_PAGES_MAX).contains(&page) {
        return Err(AppError::invalid("page", format!("page must be between 1 and {SEARCH_PAGES_MAX}")));
    }
    let Some(query) = Query::parse(text)? else {
        return Ok(SearchPage { hits: Vec::new(), has_more: false });
    };
    let per_page = SEARCH_PAGE as usize;
    let offset = per_page * (page as usize - 1);
    let mut ids = match db.get_database_backend() {
        DbBackend::Sqlite => matched_by_fts5(db, me, &query, scope, offset, per_page + 1).await?,
        DbBackend::Postgres => matched_by_postgres(db, me, &query, scope, offset, per_page + 1).await?,
        _ => return Err(AppError::Internal),
    };
    let has_more = ids.len() > per_page;
    ids.truncate(per_page);
    Ok(SearchPage { hits: hits(db, me, &query, &ids).await?, has_more })
}

/// The conversation's id, when the search is in one.
fn scope_id(scope: Option<ConversationRef>) -> Option<i64> {
    match scope {
        Some(ConversationRef::Direct(id) | ConversationRef::Group(id)) => Some(id),
        None => None,
    }
}

/// PostgreSQL: `limit` matching ids from `offset`, best first (`ts_rank`), then the newest.
async fn matched_by_postgres(
    db: &DatabaseConnection,
    me: i64,
    query: &Query,
    scope: Option<ConversationRef>,
    offset: usize,
    limit: usize,
) -> Result<Vec<i64>, AppError> {
    // Each visible row is read once, its `tsvector` with it (reading the ids first, then the rows
    // by id, took 12 ms for 800 visible messages, warm; this 3 to 6 ms). Materialized, so that the
    // text condition is not pushed into the scans, where the planner would answer it from the GIN
    // index: every message in the database that matches, 25 ms for a medium word.
    let sql = format!(
        "WITH v AS MATERIALIZED ({}) SELECT v.id FROM v, to_tsquery('banter_search', $2) q \
         WHERE v.search @@ q ORDER BY ts_rank(v.search, q) DESC, v.id DESC LIMIT $3 OFFSET $4",
        visible(scope, "$1", "$5", "m.id, m.search")
    );
    let mut values: Vec<Value> = vec![me.into(), query.tsquery().into(), (limit as i64).into(), (offset as i64).into()];
    // The conversation's id only when the text names it: PostgreSQL refuses an unused parameter.
    values.extend(scope_id(scope).map(Value::from));
    // No parallel workers: starting them cost more than the whole search (20 ms against 4).
    let txn = db.begin().await?;
    txn.execute_unprepared("SET LOCAL max_parallel_workers_per_gather = 0").await?;
    let rows = txn.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await?;
    txn.commit().await?;
    Ok(rows.iter().map(|row| row.try_get_by_index::<i64>(0)).collect::<Result<_, _>>()?)
}

/// SQLite ranks at most this many of the newest matches (FTS5 finds them newest first).
pub const FTS5_CANDIDATES: i64 = 500;

/// SQLite: `limit` matching ids from `offset`, best first (BM25 over the newest
/// [`FTS5_CANDIDATES`] matches), then the newest.
async fn matched_by_fts5(
    db: &DatabaseConnection,
    me: i64,
    query: &Query,
    scope: Option<ConversationRef>,
    offset: usize,
    limit: usize,
) -> Result<Vec<i64>, AppError> {
    // The groups I am or was in: a former member sees up to the message they left at.
    let mut rooms = participants::Entity::find().filter(participants::Column::UserId.eq(me));
    if let Some(ConversationRef::Group(room)) = scope {
        rooms = rooms.filter(participants::Column::ChatRoomId.eq(room));
    }
    let rooms: HashMap<i64, Option<i64>> = rooms
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.chat_room_id, p.left_at.map(|_| p.visible_up_to.unwrap_or(0))))
        .collect();
    // The audience tokens this search may match: mine, for one-to-one messages (both of ours
    // for one conversation), and my groups'.
    let audience = match scope {
        Some(ConversationRef::Direct(peer)) => format!("(\"u{me}\" AND \"u{peer}\")"),
        Some(ConversationRef::Group(_)) if rooms.is_empty() => return Ok(Vec::new()),
        Some(ConversationRef::Group(_)) => rooms.keys().map(|room| format!("\"g{room}\"")).collect(),
        None => {
            let tokens: Vec<String> =
                std::iter::once(format!("\"u{me}\"")).chain(rooms.keys().map(|room| format!("\"g{room}\""))).collect();
            format!("({})", tokens.join(" OR "))
        }
    };
    let pattern = format!("body : ({}) AND audience : {audience}", query.fts5());
    let sql = "SELECT m.id, m.body, m.chat_room_id FROM \
               (SELECT rowid AS id FROM messages_fts WHERE messages_fts MATCH ?1 ORDER BY rowid DESC LIMIT ?2) c \
               JOIN messages m ON m.id = c.id";
    let values: Vec<Value> = vec![pattern.into(), FTS5_CANDIDATES.into()];
    let rows = db.query_all_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)).await?;
    let mut found: Vec<(i64, Vec<u32>, u32)> = Vec::with_capacity(rows.len());
    let mut words_seen = 0u64;
    for row in &rows {
        let (id, body, room): (i64, String, Option<i64>) =
            (row.try_get_by_index(0)?, row.try_get_by_index(1)?, row.try_get_by_index(2)?);
        if let Some(Some(up_to)) = room.and_then(|room| rooms.get(&room))
            && id > *up_to
        {
            continue;
        }
        let (counts, length) = query.occurrences(&body);
        words_seen += u64::from(length);
        found.push((id, counts, length));
    }
    let containing = vec![u32::try_from(found.len()).unwrap_or(u32::MAX); query.terms.len()];
    let bm25 = Bm25::new(found.len(), words_seen, &containing);
    let mut scored: Vec<(f64, i64)> =
        found.iter().map(|(id, counts, length)| (bm25.score(counts, *length), *id)).collect();
    scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
    Ok(scored.into_iter().skip(offset).take(limit).map(|(_, id)| id).collect())
}

/// BM25 with FTS5's constants, over a collection of messages.
struct Bm25 {
    /// Per term: how telling it is (rarer, more).
    idf: Vec<f64>,
    average_length: f64,
}

impl Bm25 {
    const K1: f64 = 1.2;
    const B: f64 = 0.75;

    /// For `messages` messages of `words` words in all, `containing[t]` of which hold term `t`.
    fn new(messages: usize, words: u64, containing: &[u32]) -> Self {
        let n = messages as f64;
        // As FTS5: a term in more than half the messages still counts, a little.
        let idf = containing
            .iter()
            .map(|&hits| {
                let hits = f64::from(hits);
                ((n - hits + 0.5) / (hits + 0.5)).ln().max(1e-6)
            })
            .collect();
        Self { idf, average_length: (words as f64 / n.max(1.0)).max(1.0) }
    }

    /// A message's score: `counts[t]` occurrences of each term in `length` words.
    fn score(&self, counts: &[u32], length: u32) -> f64 {
        let norm = Self::K1 * (1.0 - Self::B + Self::B * f64::from(length) / self.average_length);
        counts
            .iter()
            .zip(&self.idf)
            .map(|(&count, idf)| {
                let tf = f64::from(count);
                idf * tf * (Self::K1 + 1.0) / (tf + norm)
            })
            .sum()
    }
}

/// The hits for message `ids`, in that order: each with its conversation, sender and excerpt.
async fn hits(db: &DatabaseConnection, me: i64, query: &Query, ids: &[i64]) -> Result<Vec<SearchHit>, AppError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: HashMap<i64, messages::Model> = messages::Entity::find()
        .filter(messages::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    let peer_of = |m: &messages::Model| if m.user_id == me { m.recipient_id.unwrap_or(0) } else { m.user_id };
    let people = names(db, rows.values().flat_map(|m| [m.user_id, peer_of(m)])).await?;
    let room_ids: Vec<i64> = rows.values().filter_map(|m| m.chat_room_id).collect();
    let rooms: HashMap<i64, String> = if room_ids.is_empty() {
        HashMap::new()
    } else {
        chat_rooms::Entity::find()
            .select_only()
            .column(chat_rooms::Column::Id)
            .column(chat_rooms::Column::Name)
            .filter(chat_rooms::Column::Id.is_in(room_ids))
            .into_tuple::<(i64, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect()
    };
    let name = |map: &HashMap<i64, String>, id: i64| map.get(&id).cloned().unwrap_or_default();
    Ok(ids
        .iter()
        .filter_map(|id| rows.get(id))
        .map(|m| {
            let (conversation, conversation_name) = match m.chat_room_id {
                Some(room) => (ConversationRef::Group(room), name(&rooms, room)),
                None => (ConversationRef::Direct(peer_of(m)), name(&people, peer_of(m))),
            };
            SearchHit {
                message_id: m.id,
                conversation,
                conversation_name,
                sender_id: m.user_id,
                sender_name: name(&people, m.user_id),
                created_at: m.created_at,
                excerpt: query.excerpt(&m.body),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssr::groups;
    use crate::ssr::test_support::{for_each_database, message, unlimited, user};

    /// The message ids page 1 of a search finds, best first.
    async fn found(db: &DatabaseConnection, me: i64, text: &str) -> Vec<i64> {
        search(db, me, text, None, 1).await.unwrap().hits.iter().map(|h| h.message_id).collect()
    }

    fn marked(parts: &[ExcerptPart]) -> Vec<&str> {
        parts.iter().filter(|p| p.hit).map(|p| p.text.as_str()).collect()
    }

    #[test]
    fn searches_are_read_into_prefixes_and_phrases_never_into_query_syntax() {
        let q = Query::parse(r#"Déploy "the new BUILD" x* OR NEAR(a) "unclosed"#).unwrap().unwrap();
        assert_eq!(
            q.fts5(),
            r#""deploy"* AND "the new build" AND "x"* AND "or"* AND "near"* AND "a"* AND "unclosed"*"#
        );
        assert_eq!(
            q.tsquery(),
            "'deploy':* & ('the' <-> 'new' <-> 'build') & 'x':* & 'or':* & 'near':* & 'a':* & 'unclosed':*"
        );
        assert_eq!(Query::parse("  \"\" -- ;  ").unwrap(), None);
        assert!(Query::parse(&"a ".repeat(17)).is_err());
        assert!(Query::parse(&"a".repeat(SEARCH_MAX_CHARS + 1)).is_err());
    }

    #[test]
    fn terms_are_counted_as_the_index_would_prefixes_phrases_in_a_row_and_accents_folded() {
        let q = Query::parse(r#"deploy "new build" cafe"#).unwrap().unwrap();
        assert_eq!(q.occurrences("Deployed the new build, then deploys at the Café"), (vec![2, 1, 1], 9));
        assert_eq!(q.occurrences("build a new café").0, [0, 0, 1]);
        // BM25: more occurrences in fewer words rank higher; a term most messages hold tells little.
        let bm25 = Bm25::new(4, 40, &[1]);
        assert!(bm25.score(&[3], 3) > bm25.score(&[1], 20));
        assert!(Bm25::new(4, 40, &[4]).score(&[1], 10) < bm25.score(&[1], 10));
    }

    #[test]
    fn an_excerpt_marks_the_matching_words_and_cuts_a_long_message_around_the_first() {
        let q = Query::parse("cafe deploy").unwrap().unwrap();
        let parts = q.excerpt("Meet at the Café before the deployment?");
        assert_eq!(marked(&parts), ["Café", "deployment"]);
        assert_eq!(
            parts.iter().map(|p| p.text.as_str()).collect::<String>(),
            "Meet at the Café before the deployment?"
        );

        let long = format!("{} then we deploy it {}", "word ".repeat(60), "tail ".repeat(60));
        let parts = q.excerpt(&long);
        let text: String = parts.iter().map(|p| p.text.as_str()).collect();
        assert!(text.starts_with('…') && text.ends_with('…'), "{text}");
        assert!(text.chars().count() <= EXCERPT_CHARS + 2);
        assert_eq!(marked(&parts), ["deploy"]);
        assert!(!text.starts_with("…ord"), "starts at a word: {text}");
    }

    #[tokio::test]
    async fn words_match_as_prefixes_phrases_in_a_row_any_case_and_accent() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let deployment = message(&db, alice.id, bob.id, "The deployment went fine").await.id;
            let cafe = message(&db, bob.id, alice.id, "Meet at the CAFÉ on Rue Süd").await.id;
            let phrase = message(&db, alice.id, bob.id, "new build is green").await.id;
            let scattered = message(&db, bob.id, alice.id, "build a new shed").await.id;

            assert_eq!(found(&db, alice.id, "deploy").await, [deployment]);
            assert_eq!(found(&db, alice.id, "DEPLOYMENT").await, [deployment]);
            assert_eq!(found(&db, alice.id, "deployments").await, Vec::<i64>::new());
            assert_eq!(found(&db, bob.id, "cafe sud").await, [cafe]);
            assert_eq!(found(&db, bob.id, "Café").await, [cafe]);
            assert_eq!(found(&db, alice.id, "\"new build\"").await, [phrase]);
            let mut both = found(&db, alice.id, "new build").await;
            both.sort_unstable();
            assert_eq!(both, [phrase, scattered]);
            // Every word must match.
            assert_eq!(found(&db, alice.id, "deploy shed").await, Vec::<i64>::new());
            // Query syntax is text: no error, no injection.
            assert_eq!(found(&db, alice.id, "deploy* OR \" NEAR( ' ; --").await, Vec::<i64>::new());
            assert_eq!(found(&db, alice.id, "   ").await, Vec::<i64>::new());
        })
        .await;
    }

    #[tokio::test]
    async fn the_best_match_comes_first_then_the_newest_and_pages_hold_twenty() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let passing = message(&db, alice.id, bob.id, "we should release the new version to all the staging and production servers tomorrow morning after the standup").await.id;
            let focused = message(&db, bob.id, alice.id, "release release release").await.id;
            assert_eq!(found(&db, alice.id, "release").await, [focused, passing]);

            let mut ids = Vec::new();
            for n in 0..45 {
                ids.push(message(&db, alice.id, bob.id, &format!("ticket {n}")).await.id);
            }
            let first = search(&db, alice.id, "ticket", None, 1).await.unwrap();
            assert_eq!(first.hits.len(), 20);
            assert!(first.has_more);
            // Equal rank: the newest first.
            assert_eq!(first.hits[0].message_id, *ids.last().unwrap());
            let third = search(&db, alice.id, "ticket", None, 3).await.unwrap();
            assert_eq!(third.hits.len(), 5);
            assert!(!third.has_more);
            let mut seen: Vec<i64> = Vec::new();
            for page in 1..=3 {
                seen.extend(search(&db, alice.id, "ticket", None, page).await.unwrap().hits.iter().map(|h| h.message_id));
            }
            seen.sort_unstable();
            assert_eq!(seen, ids, "three pages hold every hit once");
            assert!(matches!(search(&db, alice.id, "ticket", None, 0).await, Err(AppError::Invalid { .. })));
        })
        .await;
    }

    #[tokio::test]
    async fn nobody_finds_what_they_cannot_see() {
        for_each_database(|db| async move {
            let limiter = unlimited();
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let carol = user(&db, "carol").await;
            let rex = user(&db, "rex").await;
            let mine = message(&db, alice.id, bob.id, "secret plan one").await.id;
            let theirs = message(&db, bob.id, carol.id, "secret plan two").await.id;

            let room = groups::create(&db, &alice, "Plotters", &[bob.id, rex.id]).await.unwrap().group.id;
            let in_group = groups::send(&db, &limiter, &bob, room, "secret plan three", "c-1", None).await.unwrap();
            let in_group = in_group.message.id;
            groups::remove(&db, &alice, room, rex.id).await.unwrap();
            let after_removal = groups::send(&db, &limiter, &bob, room, "secret plan four", "c-2", None).await.unwrap();
            let after_removal = after_removal.message.id;

            let sorted = |mut ids: Vec<i64>| {
                ids.sort_unstable();
                ids
            };
            assert_eq!(sorted(found(&db, alice.id, "secret").await), [mine, in_group, after_removal]);
            assert_eq!(sorted(found(&db, carol.id, "secret").await), [theirs]);
            // Rex still reads the group up to his removal, as its history shows him; nothing after.
            assert_eq!(found(&db, rex.id, "secret").await, [in_group]);
            // Nobody sees a group's system lines as results ("alice added bob and rex").
            assert_eq!(found(&db, alice.id, "added").await, Vec::<i64>::new());

            // One conversation at a time.
            let db = &db;
            let only = |scope| async move {
                search(db, alice.id, "secret", Some(scope), 1)
                    .await
                    .unwrap()
                    .hits
                    .iter()
                    .map(|h| h.message_id)
                    .collect::<Vec<_>>()
            };
            assert_eq!(only(ConversationRef::Direct(bob.id)).await, [mine]);
            assert_eq!(only(ConversationRef::Direct(carol.id)).await, Vec::<i64>::new());
            assert_eq!(sorted(only(ConversationRef::Group(room)).await), [in_group, after_removal]);
            let rex_in_room = search(db, rex.id, "secret", Some(ConversationRef::Group(room)), 1).await.unwrap();
            assert_eq!(rex_in_room.hits.iter().map(|h| h.message_id).collect::<Vec<_>>(), [in_group]);

            // Where each hit is, and who wrote it.
            let hit = &search(db, alice.id, "one", None, 1).await.unwrap().hits[0];
            assert_eq!((hit.conversation, hit.conversation_name.as_str()), (ConversationRef::Direct(bob.id), "bob"));
            assert_eq!((hit.sender_id, hit.sender_name.as_str()), (alice.id, "alice"));
            assert_eq!(marked(&hit.excerpt), ["one"]);
            assert_eq!(hit.href(), format!("/chat/{}?at={mine}#m-{mine}", bob.id));
            let hit = &search(db, bob.id, "three", None, 1).await.unwrap().hits[0];
            assert_eq!((hit.conversation, hit.conversation_name.as_str()), (ConversationRef::Group(room), "Plotters"));
        })
        .await;
    }

    #[tokio::test]
    async fn the_index_follows_edits_and_deletions() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let id = message(&db, alice.id, bob.id, "lunch at noon").await.id;
            assert_eq!(found(&db, bob.id, "lunch").await, [id]);

            crate::ssr::messages::edit(&db, alice.id, id, "dinner at eight").await.unwrap();
            assert_eq!(found(&db, bob.id, "lunch").await, Vec::<i64>::new());
            assert_eq!(found(&db, bob.id, "dinner").await, [id]);

            crate::ssr::messages::delete(&db, alice.id, id).await.unwrap();
            assert_eq!(found(&db, bob.id, "dinner").await, Vec::<i64>::new());
            assert_eq!(found(&db, alice.id, "eight").await, Vec::<i64>::new());
        })
        .await;
    }
}
