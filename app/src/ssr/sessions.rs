//! Sign-in sessions stored in the database, so they survive restarts and can be shared by
//! several server instances. The cookie holds a random token; the table holds only its SHA-256.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QuerySelect, QueryTrait, Set,
};
use sha2::{Digest, Sha256};

use crate::ssr::entities::{sessions, users};

pub const COOKIE_NAME: &str = "banter_session";
/// The name over https: the `__Host-` prefix makes browsers refuse the cookie unless it is
/// `Secure`, has `Path=/` and no `Domain`, so a sibling subdomain cannot plant or shadow it.
pub const SECURE_COOKIE_NAME: &str = "__Host-banter_session";

fn cookie_name(secure: bool) -> &'static str {
    if secure { SECURE_COOKIE_NAME } else { COOKIE_NAME }
}
pub const LIFETIME_DAYS: i64 = 30;

/// The secret a browser holds: 256 random bits, hex-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

impl SessionToken {
    fn generate() -> Self {
        Self(hex::encode(rand::random::<[u8; 32]>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The row id for this token: its SHA-256, never the token itself.
    pub fn id(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// Reads the token from a `Cookie` request header value, if it is well-formed.
    pub fn from_cookie_header(header: &str) -> Option<Self> {
        header
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE_NAME || *name == SECURE_COOKIE_NAME)
            .map(|(_, value)| value.trim())
            .filter(|value| value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|value| Self(value.to_owned()))
    }

    /// Reads the token from a request's `Cookie` headers (there may be several).
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Option<Self> {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(Self::from_cookie_header)
    }

    /// The `Set-Cookie` value that stores this token in the browser.
    pub fn set_cookie(&self, secure: bool) -> String {
        let max_age = LIFETIME_DAYS * 24 * 60 * 60;
        let name = cookie_name(secure);
        let secure = if secure { "; Secure" } else { "" };
        format!("{name}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}", self.0)
    }

    /// The `Set-Cookie` value that removes the cookie.
    pub fn clear_cookie(secure: bool) -> String {
        let name = cookie_name(secure);
        let secure = if secure { "; Secure" } else { "" };
        format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
    }
}

/// Starts a new session for `user_id`. Any session the browser already had is revoked first, so a
/// sign-in always gets a fresh id (no session fixation).
pub async fn start(
    db: &DatabaseConnection,
    user_id: i64,
    previous: Option<&SessionToken>,
) -> Result<SessionToken, DbErr> {
    if let Some(previous) = previous {
        revoke(db, previous).await?;
    }
    let token = SessionToken::generate();
    let now = Utc::now();
    sessions::ActiveModel {
        id: Set(token.id()),
        user_id: Set(user_id),
        created_at: Set(now),
        expires_at: Set(now + Duration::days(LIFETIME_DAYS)),
    }
    .insert(db)
    .await?;
    Ok(token)
}

/// The user of the live session `id` (one that exists and has not expired) and when that session
/// expires: one query. Requests ask [`SessionCache::user_for`], which remembers the answer for a
/// few seconds.
async fn live_session(db: &DatabaseConnection, id: &str) -> Result<Option<(users::Model, DateTime<Utc>)>, DbErr> {
    let now = Utc::now();
    let session = |column: sessions::Column| {
        Query::select()
            .column(column)
            .from(sessions::Entity)
            .and_where(sessions::Column::Id.eq(id))
            .and_where(sessions::Column::ExpiresAt.gt(now))
            .to_owned()
    };
    let query = users::Entity::find()
        .filter(users::Column::Id.in_subquery(session(sessions::Column::UserId)))
        .expr_as(Expr::SubQuery(None, Box::new(session(sessions::Column::ExpiresAt).into())), "session_expires_at")
        .into_query();
    let Some(row) = db.query_one(&query).await? else { return Ok(None) };
    Ok(Some((users::Model::from_query_result(&row, "")?, row.try_get("", "session_expires_at")?)))
}

/// How long an instance trusts a session it looked up without asking the database again. A
/// session ended on this instance is forgotten at once, one ended on another instance as soon as
/// the cluster bus says so (the embedded Pusher server with `REDIS_URL`); this is the bound when
/// nothing says so (an external Pusher server, or while the bus is down).
pub const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// How many sessions an instance remembers at most (each a user row: about 300 bytes).
const CACHE_CAPACITY: usize = 50_000;

/// The sessions this instance looked up in the last [`CACHE_TTL`], so that a send or a page does
/// not begin a read transaction only to learn who is asking (profiled 2026-12-07: that lookup was
/// 6 % of a send's server CPU, plus its transaction on the database's thread). The database stays
/// the truth: only sessions found there are remembered (a wrong, ended or expired token is asked
/// about every time), never past their expiry, and [`SessionCache::forget`] drops one at once.
pub struct SessionCache {
    known: Mutex<Known>,
    ttl: std::time::Duration,
    capacity: usize,
}

#[derive(Default)]
struct Known {
    sessions: HashMap<String, Remembered>,
    /// How many times a session was forgotten: a lookup that began before one does not remember
    /// what it found (it may have read the session just before it was deleted).
    forgotten: u64,
}

struct Remembered {
    user: users::Model,
    until: Instant,
}

impl Default for SessionCache {
    fn default() -> Self {
        Self::new(CACHE_TTL, CACHE_CAPACITY)
    }
}

impl SessionCache {
    pub fn new(ttl: std::time::Duration, capacity: usize) -> Self {
        Self { known: Mutex::default(), ttl, capacity: capacity.max(1) }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The user `token` belongs to, if its session exists and has not expired: asked of the database
    /// ([`live_session`]) and remembered for [`CACHE_TTL`], never past the session's expiry.
    pub async fn user_for(&self, db: &DatabaseConnection, token: &SessionToken) -> Result<Option<users::Model>, DbErr> {
        let id = token.id();
        let generation = {
            let known = self.known();
            if let Some(user) = known.recall(&id, Instant::now()) {
                return Ok(Some(user));
            }
            known.forgotten
        };
        let found = live_session(db, &id).await?;
        if let Some((user, expires_at)) = &found {
            self.remember(id, user.clone(), *expires_at, generation, Instant::now());
        }
        Ok(found.map(|(user, _)| user))
    }

    /// Keeps `user` for session `id` until the TTL or the session's expiry, whichever is first,
    /// unless a session was forgotten since `generation` was read.
    fn remember(&self, id: String, user: users::Model, expires_at: DateTime<Utc>, generation: u64, now: Instant) {
        let left = (expires_at - Utc::now()).to_std().unwrap_or_default();
        let until = now + self.ttl.min(left);
        let mut known = self.known();
        if known.forgotten != generation || until <= now {
            return;
        }
        if known.sessions.len() >= self.capacity {
            known.sessions.retain(|_, remembered| remembered.until > now);
            // Still mostly full: start over rather than sweep again at the next lookup.
            if known.sessions.len() >= self.capacity / 4 * 3 {
                known.sessions.clear();
            }
        }
        known.sessions.insert(id, Remembered { user, until });
    }

    /// Drops session `id` (its stored id, [`SessionToken::id`]): it ended, here or elsewhere.
    pub fn forget(&self, id: &str) {
        let mut known = self.known();
        known.forgotten += 1;
        known.sessions.remove(id);
    }
}

impl Known {
    fn recall(&self, id: &str, now: Instant) -> Option<users::Model> {
        self.sessions.get(id).filter(|remembered| remembered.until > now).map(|remembered| remembered.user.clone())
    }
}

/// Ends a session server-side: the token stops working even if someone kept a copy.
pub async fn revoke(db: &DatabaseConnection, token: &SessionToken) -> Result<(), DbErr> {
    sessions::Entity::delete_by_id(token.id()).exec(db).await?;
    Ok(())
}

/// Deletes expired sessions; returns how many.
pub async fn purge_expired(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let result = sessions::Entity::delete_many().filter(sessions::Column::ExpiresAt.lte(Utc::now())).exec(db).await?;
    Ok(result.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssr::test_support::{for_each_database, memory_db, user};

    /// The user `token` belongs to, asked of the database (no cache).
    async fn user_for(db: &DatabaseConnection, token: &SessionToken) -> Result<Option<users::Model>, DbErr> {
        Ok(live_session(db, &token.id()).await?.map(|(user, _)| user))
    }

    #[test]
    fn cookie_parsing_accepts_only_our_well_formed_token() {
        let token = SessionToken::generate();
        let header = format!("theme=dark; {COOKIE_NAME}={}; other=1", token.as_str());
        assert_eq!(SessionToken::from_cookie_header(&header), Some(token));
        assert_eq!(SessionToken::from_cookie_header("banter_session=short"), None);
        assert_eq!(SessionToken::from_cookie_header(&format!("x{COOKIE_NAME}={}", "a".repeat(64))), None);
    }

    #[test]
    fn cookie_attributes() {
        let token = SessionToken::generate();
        let plain = token.set_cookie(false);
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax") && plain.contains("Path=/"));
        assert!(!plain.contains("Secure"));
        let secure = token.set_cookie(true);
        assert!(secure.starts_with("__Host-banter_session=") && secure.ends_with("; Secure"), "{secure}");
        assert_eq!(SessionToken::from_cookie_header(secure.split(';').next().unwrap()), Some(token.clone()));
        assert!(SessionToken::clear_cookie(false).contains("Max-Age=0"));
    }

    #[tokio::test]
    async fn sign_in_rotates_the_session_and_revoke_ends_it() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;

            let first = start(&db, alice.id, None).await.unwrap();
            assert_eq!(user_for(&db, &first).await.unwrap().map(|u| u.id), Some(alice.id));

            // Signing in again from the same browser replaces the old session.
            let second = start(&db, alice.id, Some(&first)).await.unwrap();
            assert_ne!(first, second);
            assert_eq!(user_for(&db, &first).await.unwrap(), None, "the old id must stop working");
            assert_eq!(user_for(&db, &second).await.unwrap().map(|u| u.id), Some(alice.id));

            revoke(&db, &second).await.unwrap();
            assert_eq!(user_for(&db, &second).await.unwrap(), None);
        })
        .await;
    }

    #[tokio::test]
    async fn expired_sessions_do_not_authenticate_and_are_purged() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let token = start(&db, alice.id, None).await.unwrap();
            sessions::ActiveModel {
                id: Set(token.id()),
                expires_at: Set(Utc::now() - Duration::seconds(1)),
                ..Default::default()
            }
            .update(&db)
            .await
            .unwrap();
            assert_eq!(user_for(&db, &token).await.unwrap(), None);
            assert_eq!(SessionCache::default().user_for(&db, &token).await.unwrap(), None);
            assert_eq!(purge_expired(&db).await.unwrap(), 1);
        })
        .await;
    }

    impl SessionCache {
        fn recall_at(&self, id: &str, now: Instant) -> Option<i64> {
            self.known().recall(id, now).map(|user| user.id)
        }
    }

    #[tokio::test]
    async fn the_cache_answers_without_the_database_until_told_the_session_ended() {
        for_each_database(|db| async move {
            let alice = user(&db, "alice").await;
            let token = start(&db, alice.id, None).await.unwrap();
            let cache = SessionCache::default();
            assert_eq!(cache.user_for(&db, &token).await.unwrap().map(|u| u.id), Some(alice.id));

            // Deleted behind the cache's back (as by an instance that cannot tell this one): still
            // trusted, for the TTL at most.
            revoke(&db, &token).await.unwrap();
            assert_eq!(cache.user_for(&db, &token).await.unwrap().map(|u| u.id), Some(alice.id));
            // Told (its own sign-out, or the cluster bus): the next request asks the database.
            cache.forget(&token.id());
            assert_eq!(cache.user_for(&db, &token).await.unwrap(), None);
            // Nothing is remembered about a session that does not exist.
            assert!(cache.known().sessions.is_empty());

            // A session with two seconds left is remembered for those two seconds at most: its
            // expiry is read back with the user.
            let short = start(&db, alice.id, None).await.unwrap();
            let two_seconds = Set(Utc::now() + Duration::seconds(2));
            sessions::ActiveModel { id: Set(short.id()), expires_at: two_seconds, ..Default::default() }
                .update(&db)
                .await
                .unwrap();
            assert_eq!(cache.user_for(&db, &short).await.unwrap().map(|u| u.id), Some(alice.id));
            let until = cache.known().sessions[&short.id()].until;
            assert!(until <= Instant::now() + std::time::Duration::from_secs(2), "remembered past its expiry");
        })
        .await;
    }

    #[tokio::test]
    async fn the_cache_trusts_a_session_for_its_ttl_and_never_past_its_expiry() {
        let db = memory_db().await;
        let alice = user(&db, "alice").await;
        let ttl = std::time::Duration::from_secs(5);
        let cache = SessionCache::new(ttl, 10);
        let now = Instant::now();
        let month = Utc::now() + Duration::days(30);
        cache.remember("s1".into(), alice.clone(), month, 0, now);
        assert_eq!(cache.recall_at("s1", now + ttl / 2), Some(alice.id));
        assert_eq!(cache.recall_at("s1", now + ttl), None, "the TTL is over");

        // A session with one second left is trusted for that second only.
        cache.remember("s2".into(), alice.clone(), Utc::now() + Duration::seconds(1), 0, now);
        assert_eq!(cache.recall_at("s2", now + std::time::Duration::from_millis(500)), Some(alice.id));
        assert_eq!(cache.recall_at("s2", now + std::time::Duration::from_secs(2)), None, "expired");
        cache.remember("s3".into(), alice.clone(), Utc::now() - Duration::seconds(1), 0, now);
        assert_eq!(cache.recall_at("s3", now), None, "an expired session is not remembered");
    }

    #[tokio::test]
    async fn a_lookup_that_raced_a_sign_out_is_not_remembered() {
        let db = memory_db().await;
        let alice = user(&db, "alice").await;
        let cache = SessionCache::default();
        let now = Instant::now();
        // The lookup read the session, then some session ended before it could remember it: what it
        // read may be the ended one, so it is used for this request and not kept.
        let generation = cache.known().forgotten;
        cache.forget("s1");
        cache.remember("s1".into(), alice.clone(), Utc::now() + Duration::days(30), generation, now);
        assert_eq!(cache.recall_at("s1", now), None);
        let generation = cache.known().forgotten;
        cache.remember("s1".into(), alice.clone(), Utc::now() + Duration::days(30), generation, now);
        assert_eq!(cache.recall_at("s1", now), Some(alice.id));
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_capacity() {
        let db = memory_db().await;
        let alice = user(&db, "alice").await;
        let cache = SessionCache::new(std::time::Duration::from_secs(5), 4);
        let now = Instant::now();
        let month = Utc::now() + Duration::days(30);
        for i in 0..10 {
            cache.remember(format!("s{i}"), alice.clone(), month, 0, now);
            assert!(cache.known().sessions.len() <= 4, "after {i}: {}", cache.known().sessions.len());
        }
        assert_eq!(cache.recall_at("s9", now), Some(alice.id), "the newest is kept");
    }
}
