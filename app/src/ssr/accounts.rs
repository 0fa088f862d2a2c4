//! Accounts: registration and sign-in. Plain async Rust over a `DatabaseConnection`; no HTTP.

use std::net::IpAddr;
use std::time::Instant;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

use crate::error::AppError;
use crate::ssr::entities::users;
use crate::ssr::password;
use crate::ssr::rate_limit::{AccountLimiter, Refusal, address_key};
use crate::validation;

pub const WRONG_CREDENTIALS: &str = "email or password is wrong";
const EMAIL_TAKEN: &str = "this email is already registered";

/// Creates an account. The email is stored lower-case; a second account with the same address
/// in any letter case is refused, also when two registrations race.
///
/// The password is hashed before the database is asked anything, so "already registered" takes
/// as long as a new registration: the answer's timing does not tell which emails exist.
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
        // Taken, or lost a race with an identical registration: the unique index decided.
        Err(e) if crate::ssr::is_unique_violation(&e) => Err(AppError::invalid("email", EMAIL_TAKEN)),
        Err(e) => Err(e.into()),
    }
}

/// A registration from the web: valid input is counted against the client address's sign-up
/// allowance before any work is done (invalid input is refused for free and not counted).
pub async fn sign_up(
    db: &DatabaseConnection,
    limiter: &AccountLimiter,
    client: Option<IpAddr>,
    name: &str,
    email: &str,
    password: &str,
    password_confirmation: &str,
) -> Result<users::Model, AppError> {
    validation::name(name)?;
    validation::email(email)?;
    validation::new_password(password, password_confirmation)?;
    if let Some(ip) = client {
        limiter.sign_ups_per_address.acquire(&address_key(ip), Instant::now()).await.map_err(|refusal| {
            AppError::rate_limited("too many sign-ups from your network", refusal.retry_after_secs())
        })?;
    }
    register(db, name, email, password, password_confirmation).await
}

pub async fn find_by_email(db: &DatabaseConnection, email: &str) -> Result<Option<users::Model>, AppError> {
    Ok(users::Entity::find().filter(users::Column::Email.eq(email)).one(db).await?)
}

/// Checks a sign-in attempt. The input is validated first (nothing oversized reaches the limiter
/// or the hasher); then the attempt is counted per client address and per account *before* the
/// password is checked, so parallel guesses cannot all pass the check; a success gives both back.
pub async fn sign_in(
    db: &DatabaseConnection,
    limiter: &AccountLimiter,
    email: &str,
    password: &str,
    client: Option<IpAddr>,
) -> Result<users::Model, AppError> {
    let wrong = || AppError::Invalid { field: None, message: WRONG_CREDENTIALS.to_owned() };
    let email = validation::email(email)?;
    if password.is_empty() {
        return Err(AppError::invalid("password", "please enter your password"));
    }
    if password.len() > validation::PASSWORD_MAX_CHARS * 4 || password.chars().count() > validation::PASSWORD_MAX_CHARS
    {
        // No account has a longer password: registration refuses them.
        return Err(wrong());
    }

    let now = Instant::now();
    let refused = |refusal: Refusal| AppError::rate_limited("too many failed sign-ins", refusal.retry_after_secs());
    let address_ticket = match client {
        Some(ip) => Some(limiter.sign_ins_per_address.acquire(&address_key(ip), now).await.map_err(refused)?),
        None => None,
    };
    let account_ticket = match limiter.sign_ins_per_account.acquire(&email, now).await {
        Ok(ticket) => ticket,
        Err(refusal) => {
            // Refused before anything was checked: the address is not charged for it.
            if let Some(ticket) = address_ticket {
                limiter.sign_ins_per_address.refund(ticket).await;
            }
            return Err(refused(refusal));
        }
    };

    let user = find_by_email(db, &email).await?;
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    if password::verify(stored_hash, password.to_owned()).await {
        limiter.sign_ins_per_account.refund(account_ticket).await;
        if let Some(ticket) = address_ticket {
            limiter.sign_ins_per_address.refund(ticket).await;
        }
        // `verify` only says true for a stored hash, so there is a user.
        return user.ok_or(AppError::Internal);
    }
    Err(wrong())
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

            let limiter = AccountLimiter::default();
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
            let limiter = AccountLimiter::default();
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
            let limiter = AccountLimiter::default();
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

    #[tokio::test]
    async fn parallel_wrong_passwords_are_counted_before_they_are_checked() {
        for_each_database(|db| async move {
            register(&db, "Alice", "alice@example.com", "wonderland", "wonderland").await.unwrap();
            let limiter = AccountLimiter::default();
            let ip: IpAddr = "203.0.113.7".parse().unwrap();
            let guesses = (0..40).map(|i| {
                let (db, limiter) = (&db, &limiter);
                async move { sign_in(db, limiter, "alice@example.com", &format!("guess-{i:04}"), Some(ip)).await }
            });
            let answers = futures_util::future::join_all(guesses).await;
            let checked = answers.iter().filter(|a| matches!(a, Err(AppError::Invalid { .. }))).count();
            let refused = answers.iter().filter(|a| matches!(a, Err(AppError::RateLimited { .. }))).count();
            assert_eq!((checked, refused), (5, 35), "only the account's 5 attempts reach the password check");
        })
        .await;
    }

    #[tokio::test]
    async fn a_successful_sign_in_gives_its_attempt_back() {
        for_each_database(|db| async move {
            register(&db, "Alice", "alice@example.com", "wonderland", "wonderland").await.unwrap();
            let limiter = AccountLimiter::default();
            for _ in 0..4 {
                assert!(sign_in(&db, &limiter, "alice@example.com", "nope-nope", None).await.is_err());
            }
            for _ in 0..3 {
                sign_in(&db, &limiter, "alice@example.com", "wonderland", None).await.unwrap();
            }
            assert_eq!(sign_in(&db, &limiter, "alice@example.com", "nope-nope", None).await.unwrap_err().status(), 400);
            assert_eq!(
                sign_in(&db, &limiter, "alice@example.com", "wonderland", None).await.unwrap_err().status(),
                429
            );
        })
        .await;
    }

    #[tokio::test]
    async fn oversized_sign_in_input_never_reaches_the_limiter_or_the_hasher() {
        let db = crate::ssr::test_support::memory_db().await;
        let limiter = AccountLimiter::default();
        let huge = "a".repeat(1 << 20);
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let (err, hashed) =
            password::counting(sign_in(&db, &limiter, &format!("{huge}@example.com"), "password1", Some(ip))).await;
        assert_eq!(err.unwrap_err(), AppError::invalid("email", "that email address is too long"));
        assert_eq!(hashed, 0);
        let (err, hashed) = password::counting(sign_in(&db, &limiter, "alice@example.com", &huge, Some(ip))).await;
        assert_eq!(err.unwrap_err().to_string(), WRONG_CREDENTIALS);
        assert_eq!(hashed, 0, "nothing was hashed");
        assert_eq!(limiter.sign_ins_per_account.tracked_keys(), 0);
        assert_eq!(limiter.sign_ins_per_address.tracked_keys(), 0);
    }

    #[tokio::test]
    async fn sign_ups_are_limited_per_address_and_a_taken_email_costs_a_hash_too() {
        for_each_database(|db| async move {
            let limits = crate::ssr::security::Limits {
                sign_ups_per_address: crate::ssr::security::Limit::new(2, 3600),
                ..Default::default()
            };
            let limiter = AccountLimiter::new(&limits);
            let ip: IpAddr = "203.0.113.7".parse().unwrap();
            let (created, new_account) = password::counting(sign_up(
                &db,
                &limiter,
                Some(ip),
                "Alice",
                "alice@example.com",
                "wonderland",
                "wonderland",
            ))
            .await;
            created.unwrap();
            let (taken, taken_work) = password::counting(sign_up(
                &db,
                &limiter,
                Some(ip),
                "Al",
                "ALICE@example.com",
                "password1",
                "password1",
            ))
            .await;
            assert_eq!(taken.unwrap_err(), AppError::invalid("email", "this email is already registered"));
            assert_eq!((new_account, taken_work), (1, 1), "the same work as a new account");

            let invalid = sign_up(&db, &limiter, Some(ip), "", "x@example.com", "password1", "password1").await;
            assert_eq!(invalid.unwrap_err().status(), 400, "invalid input is refused for free");
            let third = sign_up(&db, &limiter, Some(ip), "Carol", "carol@example.com", "password1", "password1").await;
            assert_eq!(third.unwrap_err().status(), 429);
            let elsewhere: IpAddr = "198.51.100.1".parse().unwrap();
            sign_up(&db, &limiter, Some(elsewhere), "Carol", "carol@example.com", "password1", "password1")
                .await
                .unwrap();
        })
        .await;
    }
}
