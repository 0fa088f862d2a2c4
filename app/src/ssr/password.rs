//! Password hashing with argon2id. `PasswordHash` can be stored and compared, but has no
//! `Serialize` and a redacted `Debug`, so it cannot leak into a response or a log line.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHash as ParsedHash};
use sea_orm::DeriveValueType;

use crate::error::AppError;

#[derive(Clone, PartialEq, Eq, DeriveValueType)]
pub struct PasswordHash(String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

impl PasswordHash {
    /// Hashes with argon2id and a fresh random salt. CPU-heavy: call through [`hash`].
    fn compute(plain: &str) -> Result<Self, argon2::password_hash::Error> {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let hash = Argon2::default().hash_password(plain.as_bytes(), &salt)?;
        Ok(Self(hash.to_string()))
    }

    /// True when `plain` is the password this hash was made from. Constant-time in the hash.
    fn matches(&self, plain: &str) -> bool {
        match ParsedHash::new(&self.0) {
            Ok(parsed) => Argon2::default().verify_password(plain.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        }
    }

    /// The algorithm identifier, for tests and audits; never the hash itself.
    pub fn algorithm(&self) -> &str {
        self.0.split('$').nth(1).unwrap_or("")
    }
}

/// How many argon2 computations may run at once. Each takes 19 MiB and tens of milliseconds of CPU
/// on purpose; unbounded, a burst of sign-ups or sign-ins would take gigabytes (seen: 500
/// concurrent registrations grew the server by 3.5 GiB, which the allocator then kept). More at
/// once than there are cores only adds memory, not throughput.
static HASHING: LazyLock<tokio::sync::Semaphore> =
    LazyLock::new(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

/// Runs `work` on the blocking pool once a hashing slot is free.
async fn with_hashing_slot<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
    let _slot = HASHING.acquire().await.map_err(|e| internal("password hashing is shut down", &e))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| internal("password hashing task failed", &e))
}

#[cfg(test)]
tokio::task_local! {
    /// Argon2 computations asked for by the current task, inside [`counting`].
    static COMPUTATIONS: std::cell::Cell<u64>;
}

fn count_computation() {
    #[cfg(test)]
    let _ = COMPUTATIONS.try_with(|n| n.set(n.get() + 1));
}

/// Runs `work` and counts the argon2 computations it asks for (of its own task only, so tests
/// running side by side do not disturb each other): answers that must take equally long must do
/// the same work, and a count says so where a clock could not.
#[cfg(test)]
pub(crate) async fn counting<T>(work: impl std::future::Future<Output = T>) -> (T, u64) {
    COMPUTATIONS
        .scope(std::cell::Cell::new(0), async {
            let out = work.await;
            (out, COMPUTATIONS.with(std::cell::Cell::get))
        })
        .await
}

/// Hashes off the async runtime, at most one computation per core at a time.
pub async fn hash(plain: String) -> Result<PasswordHash, AppError> {
    count_computation();
    with_hashing_slot(move || PasswordHash::compute(&plain)).await?.map_err(|e| internal("password hashing failed", &e))
}

/// Verifies off the async runtime. With no stored hash (unknown email) it still does the same
/// work against a fixed hash, so response time does not reveal which emails are registered.
pub async fn verify(stored: Option<PasswordHash>, plain: String) -> bool {
    count_computation();
    static DECOY: LazyLock<Option<PasswordHash>> =
        LazyLock::new(|| PasswordHash::compute("decoy password for unknown accounts").ok());
    with_hashing_slot(move || match stored {
        Some(hash) => hash.matches(&plain),
        None => {
            if let Some(decoy) = DECOY.as_ref() {
                let _ = decoy.matches(&plain);
            }
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
impl PasswordHash {
    /// A syntactically invalid hash that never verifies; for fixtures that skip argon2's cost.
    pub(crate) fn placeholder() -> Self {
        Self("!".to_owned())
    }
}

fn internal(what: &str, err: &dyn std::fmt::Display) -> AppError {
    tracing::error!("{what}: {err}");
    AppError::Internal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery".into()).await.unwrap();
        let b = hash("correct horse battery".into()).await.unwrap();
        assert_eq!(a.algorithm(), "argon2id");
        assert_ne!(a, b, "every hash has its own salt");
        assert!(verify(Some(a.clone()), "correct horse battery".into()).await);
        assert!(!verify(Some(a), "correct horse battery!".into()).await);
        assert!(!verify(None, "anything".into()).await);
    }

    #[test]
    fn debug_output_never_shows_the_hash() {
        let h = PasswordHash::compute("secret password").unwrap();
        assert_eq!(format!("{h:?}"), "PasswordHash(<redacted>)");
    }
}
