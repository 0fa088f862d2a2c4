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
//! Both indexes hold each word once per *scope* that may read its message (`u{id}` for each person
//! of a one-to-one message, `g{id}` for a group's; see [`migration::search_index`]), so a search
//! asks for its words in the searcher's scopes only (`u7xdeploy*` OR `g3xdeploy*`) and reads the
//! searcher's own postings: its cost follows what the person can see, not what the database holds.
//! One one-to-one conversation is the messages in both people's scopes. A former member's group
//! messages after they left are left out here.
//!
//! - PostgreSQL: the GIN index on the scoped `tsvector` finds the matches; the newest
//!   [`CANDIDATES`] are ranked by `ts_rank`.
//! - SQLite: FTS5 finds the newest [`CANDIDATES`] matches, ranked by its `bm25()`.

use std::collections::HashMap;

use migration::search_index::{fold, scoped, words};
use sea_orm::{ColumnTrait, QuerySelect};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, Statement, Value};

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

    /// The FTS5 query of the words as `scope` holds them: each word a quoted prefix, each phrase
    /// quoted, all required. Folded words hold letters and digits only, so quoting cannot be
    /// escaped.
    fn fts5(&self, scope: &str) -> String {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|term| match term {
                Term::Prefix(word) => format!("\"{}\"*", scoped(scope, word)),
                Term::Phrase(words) => {
                    let words: Vec<String> = words.iter().map(|w| scoped(scope, w)).collect();
                    format!("\"{}\"", words.join(" "))
                }
            })
            .collect();
        format!("({})", parts.join(" AND "))
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
    let room = match scope {
        Some(ConversationRef::Group(room)) => Some(room),
        _ => None,
    };
    let rooms = groups_of(db, me, room).await?;
    let Some((scopes, every)) = scopes_of(me, scope, &rooms) else {
        return Ok(SearchPage { hits: Vec::new(), has_more: false });
    };
    let reading = Reading { scopes, every, rooms };
    let mut ids = match db.get_database_backend() {
        DbBackend::Sqlite => matched_by_fts5(db, &query, &reading, offset, per_page + 1).await?,
        DbBackend::Postgres => matched_by_postgres(db, &query, &reading, offset, per_page + 1).await?,
        _ => return Err(AppError::Internal),
    };
    let has_more = ids.len() > per_page;
    ids.truncate(per_page);
    Ok(SearchPage { hits: hits(db, me, &query, &ids).await?, has_more })
}

/// What one search may read: its scopes, whether a message must be in every one of them, and the
/// groups the searcher is or was in (see [`groups_of`]).
struct Reading {
    scopes: Vec<String>,
    every: bool,
    rooms: HashMap<i64, Option<i64>>,
}

/// The groups `me` is or was in (only `room`, when given), each with the last message they may
/// read: `None` while a member, the message they left at for a former member.
async fn groups_of(db: &DatabaseConnection, me: i64, room: Option<i64>) -> Result<HashMap<i64, Option<i64>>, AppError> {
    let mut rooms = participants::Entity::find().filter(participants::Column::UserId.eq(me));
    if let Some(room) = room {
        rooms = rooms.filter(participants::Column::ChatRoomId.eq(room));
    }
    Ok(rooms
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.chat_room_id, p.left_at.map(|_| p.visible_up_to.unwrap_or(0))))
        .collect())
}

/// The scopes a search reads (see [`migration::search_index`]), and whether a message must be in
/// all of them (one one-to-one conversation: both people's) or in any: mine and my groups' for
/// every conversation, the group's for one group. `None`: nothing this search may read.
fn scopes_of(
    me: i64,
    scope: Option<ConversationRef>,
    rooms: &HashMap<i64, Option<i64>>,
) -> Option<(Vec<String>, bool)> {
    match scope {
        Some(ConversationRef::Direct(peer)) if peer == me => None,
        Some(ConversationRef::Direct(peer)) => Some((vec![format!("u{me}"), format!("u{peer}")], true)),
        Some(ConversationRef::Group(room)) => rooms.contains_key(&room).then(|| (vec![format!("g{room}")], false)),
        None => {
            let mut scopes = vec![format!("u{me}")];
            scopes.extend(rooms.keys().map(|room| format!("g{room}")));
            Some((scopes, false))
        }
    }
}

/// The SQL condition that leaves out, of candidate `id` in group `room` (SQL expressions), what
/// a former member may no longer read: the messages after the one they left at. Empty while they
/// are a member of every group they were in. Only integers from the database go in the text.
fn readable(rooms: &HashMap<i64, Option<i64>>, id: &str, room: &str) -> String {
    let mut former: Vec<(i64, i64)> =
        rooms.iter().filter_map(|(room, up_to)| up_to.map(|up_to| (*room, up_to))).collect();
    if former.is_empty() {
        return String::new();
    }
    former.sort_unstable();
    let cases: Vec<String> = former.iter().map(|(r, up_to)| format!("WHEN {r} THEN {up_to}")).collect();
    format!(" AND {id} <= COALESCE(CASE {room} {} END, {id})", cases.join(" "))
}

/// PostgreSQL: `limit` matching ids from `offset`, best first (`ts_rank`), then the newest. The
/// GIN index answers the scoped query: only the searcher's own postings are read.
async fn matched_by_postgres(
    db: &DatabaseConnection,
    query: &Query,
    reading: &Reading,
    offset: usize,
    limit: usize,
) -> Result<Vec<i64>, AppError> {
    // Scopes are `u`/`g` and digits: a comma never occurs in one. Ranked among the newest
    // [`CANDIDATES`] matches, as on SQLite. A subquery, so the query is written once per search
    // (an InitPlan): with the prepared statement's generic plan, a bare call was evaluated again
    // for every row it ranked or rechecked (seen in EXPLAIN ANALYZE: 3.5 ms of 5.6 for 500 rows).
    let q = "(SELECT banter_scope_query(to_tsquery('banter_search', $1), string_to_array($2, ','), $3))";
    // Materialized: every match comes from the GIN index (a few hundred postings of the
    // searcher's), then the newest are kept. Without it the planner walks the primary key from the
    // newest message down, testing each row, until it has enough: 330 ms for a common word.
    let sql = format!(
        "WITH c AS MATERIALIZED (SELECT m.id, m.search FROM messages m WHERE m.search @@ {q} \
         AND m.kind = 'text' AND m.deleted_at IS NULL{}) \
         SELECT n.id FROM (SELECT id, search FROM c ORDER BY id DESC LIMIT $4) n \
         ORDER BY ts_rank(n.search, {q}) DESC, n.id DESC LIMIT $5 OFFSET $6",
        readable(&reading.rooms, "m.id", "m.chat_room_id")
    );
    let values: Vec<Value> = vec![
        query.tsquery().into(),
        reading.scopes.join(",").into(),
        reading.every.into(),
        CANDIDATES.into(),
        (limit as i64).into(),
        (offset as i64).into(),
    ];
    ids(db.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await?)
}

/// The first column of `rows`, as ids.
fn ids(rows: Vec<sea_orm::QueryResult>) -> Result<Vec<i64>, AppError> {
    Ok(rows.iter().map(|row| row.try_get_by_index::<i64>(0)).collect::<Result<_, _>>()?)
}

/// A search ranks at most this many of the newest matches it may read.
pub const CANDIDATES: i64 = 500;

/// SQLite: `limit` matching ids from `offset`, best first (FTS5's `bm25()` over the newest
/// [`CANDIDATES`] matches), then the newest.
async fn matched_by_fts5(
    db: &DatabaseConnection,
    query: &Query,
    reading: &Reading,
    offset: usize,
    limit: usize,
) -> Result<Vec<i64>, AppError> {
    let parts: Vec<String> = reading.scopes.iter().map(|scope| query.fts5(scope)).collect();
    let pattern = parts.join(if reading.every { " AND " } else { " OR " });
    let sql = format!(
        "SELECT c.id FROM (SELECT rowid AS id, bm25(messages_fts) AS score FROM messages_fts \
         WHERE messages_fts MATCH ?1 ORDER BY rowid DESC LIMIT ?2) c WHERE 1{} \
         ORDER BY c.score, c.id DESC LIMIT ?3 OFFSET ?4",
        readable(&reading.rooms, "c.id", "(SELECT m.chat_room_id FROM messages m WHERE m.id = c.id)")
    );
    let values: Vec<Value> = vec![pattern.into(), CANDIDATES.into(), (limit as i64).into(), (offset as i64).into()];
    ids(db.query_all_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)).await?)
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
            q.fts5("u7"),
            r#"("u7xdeploy"* AND "u7xthe u7xnew u7xbuild" AND "u7xx"* AND "u7xor"* AND "u7xnear"* AND "u7xa"* AND "u7xunclosed"*)"#
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
    async fn messages_stored_before_the_scoped_index_are_found_after_it_and_after_a_round_trip() {
        use migration::MigratorTrait;
        use sea_orm::{ActiveModelTrait, Set};
        let db = crate::ssr::connect("sqlite::memory:").await.unwrap();
        // The schema as the unscoped index left it, with a message in it.
        migration::Migrator::up(&db, Some(9)).await.unwrap();
        let alice = user(&db, "alice").await;
        let bob = user(&db, "bob").await;
        let carol = user(&db, "carol").await;
        let now = chrono::Utc::now();
        let old = messages::ActiveModel {
            body: Set("Déjà prêt pour le déploiement".into()),
            user_id: Set(alice.id),
            recipient_id: Set(Some(bob.id)),
            client_id: Set("before-scoped".into()),
            kind: Set("text".into()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        assert_eq!(found(&db, bob.id, "deploiement").await, [old.id]);
        assert_eq!(found(&db, carol.id, "deploiement").await, Vec::<i64>::new());
        // Back to the unscoped index and forward again: rebuilt both ways.
        migration::Migrator::down(&db, Some(1)).await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        assert_eq!(found(&db, alice.id, "pret deploi").await, [old.id]);
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

            crate::ssr::messages::delete(&db, None, alice.id, id).await.unwrap();
            assert_eq!(found(&db, bob.id, "dinner").await, Vec::<i64>::new());
            assert_eq!(found(&db, alice.id, "eight").await, Vec::<i64>::new());
        })
        .await;
    }
}
