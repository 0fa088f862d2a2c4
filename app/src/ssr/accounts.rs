//! Accounts: registration and sign-in. Plain async Rust over a `DatabaseConnection`; no HTTP.

use std::net::IpAddr;
use std::time::Instant;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

use crate::error::AppError;
use crate::ssr::entities::users;
use crate::ssr::password;
use crate::ssr::rate_limit::LoginLimiter;
use crate::validation;

pub const WRONG_CREDENTIALS: &str = "email or password is wrong";
const EMAIL_TAKEN: &str = "this email is already registered";

/// Creates an account. The email is stored lower-case; a second account with the same address
/// in any letter case is refused, also when two registrations race.
pub async fn register(
    db: &DatabaseConnection,
    name: &str,
    email: &str,
    password: &str,
    password_confirmation: &str,
) -> Result<users::Model, AppError> {
    let name = validation::name(name)?;
    let email = validation::email(email)?;
    validation::new_password(password, password_confirmation)?;

    if find_by_email(db, &email).await?.is_some() {
        return Err(AppError::invalid("email", EMAIL_TAKEN));
    }
    let password_hash = password::hash(password.to_owned()).await?;
    let now = Utc::now();
    let inserted = users::ActiveModel {
        name: Set(name),
        email: Set(email),
        password_hash: Set(password_hash),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await;
    match inserted {
        Ok(user) => Ok(user),
        // Lost a race with an identical registration: the unique index decided.
        Err(e) if crate::ssr::is_unique_violation(&e) => Err(AppError::invalid("email", EMAIL_TAKEN)),
        Err(e) => Err(e.into()),
    }
}

pub async fn find_by_email(db: &DatabaseConnection, email: &str) -> Result<Option<users::Model>, AppError> {
    Ok(users::Entity::find().filter(users::Column::Email.eq(email)).one(db).await?)
}

/// Checks a sign-in attempt. Failures are counted per account and per client address; past the
/// limit the attempt is refused before the password is even looked at.
pub async fn sign_in(
    db: &DatabaseConnection,
    limiter: &LoginLimiter,
    email: &str,
    password: &str,
    client: Option<IpAddr>,
) -> Result<users::Model, AppError> {
    let email = email.trim().to_lowercase();
    let account_key = email.clone();
    let address_key = client.map(|ip| ip.to_string());
    let now = Instant::now();

    let blocked = [
        limiter.per_account.check(&account_key, now).err(),
        address_key.as_deref().and_then(|key| limiter.per_address.check(key, now).err()),
    ];
    if let Some(wait) = blocked.into_iter().flatten().max() {
        return Err(AppError::rate_limited("too many failed sign-ins", wait));
    }

    let user = find_by_email(db, &email).await?;
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    if password::verify(stored_hash, password.to_owned()).await {
        limiter.per_account.clear(&account_key);
        // `verify` only says true for a stored hash, so there is a user.
        return user.ok_or(AppError::Internal);
    }
    limiter.per_account.record(&account_key, now);
    if let Some(key) = &address_key {
        limiter.per_address.record(key, now);
    }
    Err(AppError::Invalid { field: None, message: WRONG_CREDENTIALS.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssr::test_support::for_each_database;

    #[tokio::test]
    async fn register_then_sign_in() {
        for_each_database(|db| async move {
            let user = register(&db, " Alice ", "Alice@Example.com", "wonderland", "wonderland").await.unwrap();
            assert_eq!((user.name.as_str(), user.email.as_str()), ("Alice", "alice@example.com"));
            assert_eq!(user.password_hash.algorithm(), "argon2id");

            let limiter = LoginLimiter::default();
            let signed_in = sign_in(&db, &limiter, "ALICE@example.com ", "wonderland", None).await.unwrap();
            assert_eq!(signed_in.id, user.id);
        })
        .await;
    }

    #[tokio::test]
    async fn duplicate_email_is_refused_in_any_case() {
        for_each_database(|db| async move {
            register(&db, "Alice", "alice@example.com", "wonderland", "wonderland").await.unwrap();
            let err = register(&db, "Other", "ALICE@example.COM", "password1", "password1").await.unwrap_err();
            assert_eq!(err, AppError::invalid("email", "this email is already registered"));
        })
        .await;
    }

    #[tokio::test]
    async fn wrong_password_and_unknown_email_look_the_same() {
        for_each_database(|db| async move {
            register(&db, "Alice", "alice@example.com", "wonderland", "wonderland").await.unwrap();
            let limiter = LoginLimiter::default();
            let wrong = sign_in(&db, &limiter, "alice@example.com", "nope-nope", None).await.unwrap_err();
            let unknown = sign_in(&db, &limiter, "bob@example.com", "wonderland", None).await.unwrap_err();
            assert_eq!(wrong, unknown);
            assert_eq!(wrong.to_string(), WRONG_CREDENTIALS);
        })
        .await;
    }

    #[tokio::test]
    async fn repeated_failures_are_rate_limited_even_with_the_right_password() {
        for_each_database(|db| async move {
            register(&db, "Alice", "alice@example.com", "wonderland", "wonderland").await.unwrap();
            let limiter = LoginLimiter::default();
            let ip: IpAddr = "203.0.113.7".parse().unwrap();
            for _ in 0..5 {
                let err = sign_in(&db, &limiter, "alice@example.com", "guess-guess", Some(ip)).await.unwrap_err();
                assert_eq!(err.status(), 400);
            }
            let err = sign_in(&db, &limiter, "alice@example.com", "wonderland", Some(ip)).await.unwrap_err();
            assert_eq!(err.status(), 429);
            assert!(err.to_string().starts_with("too many failed sign-ins: try again in "), "{err}");
        })
        .await;
    }
}
