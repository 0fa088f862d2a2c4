//! The demo: three accounts with a known password and a conversation history between Alice and
//! Bob, created by `server demo-accounts`.

use app::error::AppError;
use sea_orm::DatabaseConnection;

/// The demo accounts `server demo-accounts` creates: name, email, password.
pub const DEMO_ACCOUNTS: [(&str, &str); 3] =
    [("Alice", "alice@example.com"), ("Bob", "bob@example.com"), ("Carol", "carol@example.com")];
pub const DEMO_PASSWORD: &str = "banter-demo";

/// Messages in the demo conversation between Alice and Bob.
pub const DEMO_HISTORY: i64 = 120;

/// Creates the demo accounts that do not exist yet, and a conversation history between Alice and
/// Bob when they have none; returns the emails it created.
pub async fn create_demo_accounts(db: &DatabaseConnection) -> Result<Vec<&'static str>, AppError> {
    use app::ssr::accounts;
    let mut created = Vec::new();
    let mut ids = Vec::new();
    for (name, email) in DEMO_ACCOUNTS {
        let user = match accounts::find_by_email(db, email).await? {
            Some(user) => user,
            None => match accounts::register(db, name, email, DEMO_PASSWORD, DEMO_PASSWORD).await {
                Ok(user) => {
                    created.push(email);
                    user
                }
                // A concurrent run registered it first: use that account.
                Err(AppError::Invalid { .. }) => accounts::find_by_email(db, email).await?.ok_or(AppError::Internal)?,
                Err(e) => return Err(e),
            },
        };
        ids.push(user.id);
    }
    create_demo_history(db, ids[0], ids[1]).await?;
    Ok(created)
}

/// 120 numbered messages, alternating, one every 40 minutes up to now (so they span several
/// days); all read except Bob's last one.
async fn create_demo_history(db: &DatabaseConnection, alice: i64, bob: i64) -> Result<(), AppError> {
    use app::ssr::entities::messages;
    use sea_orm::{ActiveValue::Set, EntityTrait};
    if !app::ssr::conversations::conversation(db, alice, bob, None, Some(1)).await?.messages.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now();
    let rows = (1..=DEMO_HISTORY).map(|i| {
        let (from, to) = if i % 2 == 1 { (alice, bob) } else { (bob, alice) };
        let at = now - chrono::Duration::minutes(40 * (DEMO_HISTORY - i));
        let read = i < DEMO_HISTORY;
        messages::ActiveModel {
            body: Set(format!("Demo message {i} of {DEMO_HISTORY}")),
            user_id: Set(from),
            recipient_id: Set(Some(to)),
            chat_room_id: Set(None),
            client_id: Set(format!("demo-{i}")),
            kind: Set("text".into()),
            read_at: Set(read.then(|| at + chrono::Duration::minutes(1))),
            edited_at: Set(None),
            deleted_at: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        }
    });
    match messages::Entity::insert_many(rows).exec(db).await {
        // Another `demo-accounts` run inserted the same history first.
        Err(e) if app::ssr::is_unique_violation(&e) => Ok(()),
        // Inserted directly, so put in the search index here (SQLite; PostgreSQL's follows).
        Ok(inserted) => {
            migration::search_index::index_after(db, inserted.last_insert_id.map_or(0, |last| last - DEMO_HISTORY))
                .await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
