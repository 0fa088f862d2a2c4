//! Sign-in sessions stored in the database, so they survive restarts and can be shared by
//! several server instances. The cookie holds a random token; the table holds only its SHA-256.

use chrono::{Duration, Utc};
use sea_orm::sea_query::Query;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set};
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

/// The user a token belongs to, if the session exists and has not expired.
pub async fn user_for(db: &DatabaseConnection, token: &SessionToken) -> Result<Option<users::Model>, DbErr> {
    // One query: every page and API call starts with it.
    let live_session = Query::select()
        .column(sessions::Column::UserId)
        .from(sessions::Entity)
        .and_where(sessions::Column::Id.eq(token.id()))
        .and_where(sessions::Column::ExpiresAt.gt(Utc::now()))
        .to_owned();
    users::Entity::find().filter(users::Column::Id.in_subquery(live_session)).one(db).await
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
    use crate::ssr::test_support::{memory_db, user};

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
        let db = memory_db().await;
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
    }

    #[tokio::test]
    async fn expired_sessions_do_not_authenticate_and_are_purged() {
        let db = memory_db().await;
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
        assert_eq!(purge_expired(&db).await.unwrap(), 1);
    }
}
