//! Who is online, for any number of people: a person is online while their user channel
//! (`private-user.{id}` or `private-encrypted-user.{id}`) is occupied, that is while at least one
//! of their tabs holds a live connection, on any instance. The realtime server reports occupancy
//! (the embedded one in process, an external one by its `channel_occupied`/`channel_vacated`
//! webhooks), this module keeps it in `online_status` and tells the people who may see it: those
//! the person has exchanged a one-to-one message with, and the current members of their groups
//! (their "circle"), each on their own user channel, and only those who are online themselves.
//!
//! Changes are applied in the order they happened, not the order they arrive: each carries a
//! stamp (unix microseconds), and a row is only changed by a newer one. A vacated channel counts
//! only after [`OFFLINE_GRACE`] without a new occupation, so a reload or a reconnect does not make
//! a person blink offline for everyone.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, QueryTrait, Set,
    TryInsertResult,
};
use tokio::sync::mpsc;

use crate::error::AppError;
use crate::realtime::{ChannelAccess, EVENT_STATUS_CHANGED, StatusChanged};
use crate::ssr::broadcast::{Broadcaster, Publication};
use crate::ssr::entities::{chat_room_participants as participants, online_status};

/// How long a vacated user channel must stay vacated before its person counts as offline.
pub const OFFLINE_GRACE: Duration = Duration::from_secs(2);

/// Channels one publication names at most (the Pusher HTTP API's limit).
const CHANNELS_PER_PUBLICATION: usize = 100;
/// Ids one `IN (...)` list holds at most.
const IDS_PER_QUERY: usize = 5_000;

/// Unix microseconds, strictly increasing within this process, so that two changes made in the same
/// microsecond still have an order.
pub fn stamp() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = chrono::Utc::now().timestamp_micros();
    let previous = LAST.fetch_max(now, Ordering::Relaxed);
    if previous < now { now } else { LAST.fetch_add(1, Ordering::Relaxed) + 1 }
}

/// The person whose status a channel's occupancy is: user channels only.
pub fn channel_user(channel: &str) -> Option<i64> {
    match ChannelAccess::parse(channel)? {
        ChannelAccess::User(id) => Some(id),
        _ => None,
    }
}

#[derive(Debug)]
enum Change {
    Occupied {
        user_id: i64,
        at: i64,
    },
    Vacated {
        user_id: i64,
        at: i64,
    },
    /// A vacated channel's grace is over: offline unless occupied since.
    GraceOver {
        user_id: i64,
        at: i64,
    },
}

/// Applies occupancy changes in the background, one at a time. Cheap to clone.
#[derive(Clone, Debug)]
pub struct OnlineStatus {
    changes: mpsc::UnboundedSender<Change>,
}

impl OnlineStatus {
    /// Starts the task that records changes and tells people's circles.
    pub fn start(db: DatabaseConnection, broadcaster: Arc<dyn Broadcaster>) -> Self {
        Self::with_grace(db, broadcaster, OFFLINE_GRACE)
    }

    pub fn with_grace(db: DatabaseConnection, broadcaster: Arc<dyn Broadcaster>, grace: Duration) -> Self {
        let (changes, pending) = mpsc::unbounded_channel();
        tokio::spawn(apply(db, broadcaster, grace, changes.downgrade(), pending));
        Self { changes }
    }

    /// `channel` got its first subscriber at `at` (see [`stamp`]); ignored unless a user channel.
    pub fn occupied(&self, channel: &str, at: i64) {
        if let Some(user_id) = channel_user(channel) {
            let _ = self.changes.send(Change::Occupied { user_id, at });
        }
    }

    /// `channel` lost its last subscriber at `at`; ignored unless a user channel.
    pub fn vacated(&self, channel: &str, at: i64) {
        if let Some(user_id) = channel_user(channel) {
            let _ = self.changes.send(Change::Vacated { user_id, at });
        }
    }

    /// Brings the records in line with the realtime server, after anything it may not have
    /// reported (a restart, an outage): `recorded` are the people recorded online (see
    /// [`all_online`]), `occupied` those whose user channel is occupied now. Returns how many
    /// differed.
    pub fn reconcile(&self, recorded: &HashSet<i64>, occupied: &HashSet<i64>) -> usize {
        let at = stamp();
        let mut changed = 0;
        for &user_id in occupied.difference(recorded) {
            let _ = self.changes.send(Change::Occupied { user_id, at });
            changed += 1;
        }
        for &user_id in recorded.difference(occupied) {
            let _ = self.changes.send(Change::Vacated { user_id, at });
            changed += 1;
        }
        changed
    }
}

async fn apply(
    db: DatabaseConnection,
    broadcaster: Arc<dyn Broadcaster>,
    grace: Duration,
    again: mpsc::WeakUnboundedSender<Change>,
    mut pending: mpsc::UnboundedReceiver<Change>,
) {
    while let Some(change) = pending.recv().await {
        let applied = match change {
            Change::Occupied { user_id, at } => went_online(&db, user_id, at).await.map(|now| (user_id, now, true)),
            Change::Vacated { user_id, at } => {
                let again = again.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    if let Some(again) = again.upgrade() {
                        let _ = again.send(Change::GraceOver { user_id, at });
                    }
                });
                continue;
            }
            Change::GraceOver { user_id, at } => went_offline(&db, user_id, at).await.map(|now| (user_id, now, false)),
        };
        match applied {
            Ok((user_id, true, online)) => {
                if let Err(e) = announce(&db, broadcaster.as_ref(), user_id, online).await {
                    tracing::warn!(user_id, error = %e, "online status: could not tell the people who see it");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "online status: a change could not be recorded"),
        }
    }
}

/// Records `user_id` online as of `at`; true when they were not (so it is news).
pub async fn went_online(db: &DatabaseConnection, user_id: i64, at: i64) -> Result<bool, AppError> {
    let flipped = online_status::Entity::update_many()
        .col_expr(online_status::Column::Online, Expr::value(true))
        .col_expr(online_status::Column::ChangedAt, Expr::value(at))
        .filter(online_status::Column::UserId.eq(user_id))
        .filter(online_status::Column::Online.eq(false))
        .filter(online_status::Column::ChangedAt.lt(at))
        .exec(db)
        .await?;
    if flipped.rows_affected == 1 {
        return Ok(true);
    }
    let row = online_status::ActiveModel { user_id: Set(user_id), online: Set(true), changed_at: Set(at) };
    if let TryInsertResult::Inserted(_) = online_status::Entity::insert(row).on_conflict_do_nothing().exec(db).await? {
        return Ok(true);
    }
    // Online already: a newer stamp still cancels a pending offline.
    online_status::Entity::update_many()
        .col_expr(online_status::Column::ChangedAt, Expr::value(at))
        .filter(online_status::Column::UserId.eq(user_id))
        .filter(online_status::Column::ChangedAt.lt(at))
        .exec(db)
        .await?;
    Ok(false)
}

/// Records `user_id` offline unless a change newer than `at` came since; true when they were online.
pub async fn went_offline(db: &DatabaseConnection, user_id: i64, at: i64) -> Result<bool, AppError> {
    let flipped = online_status::Entity::update_many()
        .col_expr(online_status::Column::Online, Expr::value(false))
        .col_expr(online_status::Column::ChangedAt, Expr::value(at))
        .filter(online_status::Column::UserId.eq(user_id))
        .filter(online_status::Column::Online.eq(true))
        .filter(online_status::Column::ChangedAt.lt(at))
        .exec(db)
        .await?;
    Ok(flipped.rows_affected == 1)
}

/// Tells the online people of `user_id`'s circle that they came online or went offline.
async fn announce(
    db: &DatabaseConnection,
    broadcaster: &dyn Broadcaster,
    user_id: i64,
    online: bool,
) -> Result<(), AppError> {
    let circle = circle(db, user_id).await?;
    let mut watching: Vec<i64> = online_among(db, circle).await?.into_iter().collect();
    watching.sort_unstable();
    let Ok(data) = serde_json::to_string(&StatusChanged { user_id, online }) else {
        return Err(AppError::Internal);
    };
    let channels = broadcaster.event_channels();
    for chunk in watching.chunks(CHANNELS_PER_PUBLICATION) {
        let channels =
            chunk.iter().filter_map(|&id| pusher_protocol::ChannelName::parse(&channels.user(id)).ok()).collect();
        broadcaster.publish(Publication { channels, event: EVENT_STATUS_CHANGED, data: data.clone(), exclude: None });
    }
    Ok(())
}

/// The people who may see `user_id`'s status, and whose status `user_id` may see: everyone they
/// have exchanged a one-to-one message with, and the current members of their current groups.
pub async fn circle(db: &DatabaseConnection, user_id: i64) -> Result<HashSet<i64>, AppError> {
    let partners: Vec<i64> = db
        .query_all_raw(crate::ssr::conversations::partners(db.get_database_backend(), user_id))
        .await?
        .iter()
        .map(|row| row.try_get("", "peer"))
        .collect::<Result<_, sea_orm::DbErr>>()?;
    let mut circle: HashSet<i64> = partners.into_iter().chain(fellows(db, user_id).await?).collect();
    circle.remove(&user_id);
    Ok(circle)
}

/// The current members of `user_id`'s current groups, `user_id` left out.
pub async fn fellows(db: &impl ConnectionTrait, user_id: i64) -> Result<Vec<i64>, AppError> {
    Ok(db
        .query_all(&fellows_query(user_id))
        .await?
        .iter()
        .map(|row| row.try_get_by_index(0))
        .collect::<Result<_, sea_orm::DbErr>>()?)
}

/// `SELECT DISTINCT user_id`: the current members of `user_id`'s current groups but `user_id`.
fn fellows_query(user_id: i64) -> sea_orm::sea_query::SelectStatement {
    let my_groups = participants::Entity::find()
        .select_only()
        .column(participants::Column::ChatRoomId)
        .filter(participants::Column::UserId.eq(user_id))
        .filter(participants::Column::LeftAt.is_null())
        .into_query();
    participants::Entity::find()
        .select_only()
        .column(participants::Column::UserId)
        .distinct()
        .filter(participants::Column::ChatRoomId.in_subquery(my_groups))
        .filter(participants::Column::LeftAt.is_null())
        .filter(participants::Column::UserId.ne(user_id))
        .into_query()
}

/// `EXISTS (...)`, for a column of a list's query: whether the person `user_id` (an expression of
/// the outer query, `users.id`) is online now. Whether the list's reader may know it is the
/// caller's to decide (see [`circle`]): always for someone they talked with, otherwise
/// [`is_fellow`].
pub(crate) fn is_online(user_id: Expr) -> Expr {
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(online_status::Entity)
            .and_where(Expr::col((online_status::Entity, online_status::Column::UserId)).eq(user_id))
            .and_where(Expr::col((online_status::Entity, online_status::Column::Online)).eq(true))
            .to_owned(),
    )
}

/// For a column of a list's query: whether the person `user_id` (an expression of the outer
/// query) is in a group with `me` now.
pub(crate) fn is_fellow(me: i64, user_id: Expr) -> Expr {
    user_id.in_subquery(fellows_query(me))
}

/// Which of `ids` are online now.
pub async fn online_among(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = i64>,
) -> Result<HashSet<i64>, AppError> {
    let ids: Vec<i64> = ids.into_iter().collect();
    let mut online = HashSet::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let found: Vec<i64> = online_status::Entity::find()
            .select_only()
            .column(online_status::Column::UserId)
            .filter(online_status::Column::Online.eq(true))
            .filter(online_status::Column::UserId.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        online.extend(found);
    }
    Ok(online)
}

/// The people of `user_id`'s circle who are online now (the contact list asks the same with the
/// partners it already counted).
#[cfg(test)]
pub async fn visible_online(db: &DatabaseConnection, user_id: i64) -> Result<HashSet<i64>, AppError> {
    online_among(db, circle(db, user_id).await?).await
}

/// Everyone recorded online now (for bringing the records in line with the realtime server).
pub async fn all_online(db: &DatabaseConnection) -> Result<HashSet<i64>, AppError> {
    let ids: Vec<i64> = online_status::Entity::find()
        .select_only()
        .column(online_status::Column::UserId)
        .filter(online_status::Column::Online.eq(true))
        .into_tuple()
        .all(db)
        .await?;
    Ok(ids.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssr::broadcast::Recorder;
    use crate::ssr::entities::messages;
    use crate::ssr::test_support::{for_each_database, memory_db, message, user};

    /// The status events each user channel received, in order.
    fn told(recorder: &Recorder) -> Vec<(String, StatusChanged)> {
        let publications = recorder.0.lock().unwrap();
        publications
            .iter()
            .filter(|p| p.event == EVENT_STATUS_CHANGED)
            .flat_map(|p| {
                let status: StatusChanged = serde_json::from_str(&p.data).unwrap();
                p.channels.iter().map(move |c| (c.to_string(), status))
            })
            .collect()
    }

    /// Waits (up to 5 s) until `recorder` holds `n` status events.
    async fn until_told(recorder: &Recorder, n: usize) -> Vec<(String, StatusChanged)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let seen = told(recorder);
            if seen.len() >= n || tokio::time::Instant::now() > deadline {
                assert_eq!(seen.len(), n, "{seen:?}");
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn changes_apply_in_the_order_they_happened_not_the_order_they_arrive() {
        for_each_database(|db| async move {
            let ann = user(&db, "ann").await.id;
            assert!(went_online(&db, ann, 10).await.unwrap(), "first time: news");
            assert!(!went_online(&db, ann, 20).await.unwrap(), "online already");
            // A vacate older than the newest occupation is void.
            assert!(!went_offline(&db, ann, 15).await.unwrap());
            assert!(went_offline(&db, ann, 30).await.unwrap());
            assert!(!went_offline(&db, ann, 40).await.unwrap(), "offline already");
            // An occupation older than the vacate that took her offline is void too.
            assert!(!went_online(&db, ann, 25).await.unwrap());
            assert!(all_online(&db).await.unwrap().is_empty());
            assert!(went_online(&db, ann, 50).await.unwrap());
            assert_eq!(all_online(&db).await.unwrap(), HashSet::from([ann]));
        })
        .await;
    }

    /// Ann and four people: Bob wrote to her, Dee is in her group, Cy left it, Eve is a stranger.
    struct Circle {
        ann: i64,
        bob: i64,
        cy: i64,
        dee: i64,
        eve: i64,
    }

    impl Circle {
        async fn of_ann(db: &DatabaseConnection) -> Self {
            let ann = user(db, "ann").await;
            let bob = user(db, "bob").await.id;
            let cy = user(db, "cy").await;
            let dee = user(db, "dee").await.id;
            let eve = user(db, "eve").await.id;
            message(db, bob, ann.id, "hi").await;
            let room = crate::ssr::groups::create(db, &ann, "Climbing", &[cy.id, dee]).await.unwrap().group.id;
            crate::ssr::groups::leave(db, &cy, room).await.unwrap();
            Self { ann: ann.id, bob, cy: cy.id, dee, eve }
        }
    }

    #[tokio::test]
    async fn a_circle_is_conversation_partners_and_current_fellow_members() {
        for_each_database(|db| async move {
            let Circle { ann, bob, dee, eve, .. } = Circle::of_ann(&db).await;
            assert_eq!(circle(&db, ann).await.unwrap(), HashSet::from([bob, dee]));
            assert_eq!(circle(&db, dee).await.unwrap(), HashSet::from([ann]));
            // A stranger sees nobody, and nobody sees them.
            assert!(circle(&db, eve).await.unwrap().is_empty());
            went_online(&db, bob, stamp()).await.unwrap();
            went_online(&db, eve, stamp()).await.unwrap();
            assert_eq!(visible_online(&db, ann).await.unwrap(), HashSet::from([bob]));
        })
        .await;
    }

    #[tokio::test]
    async fn a_contact_list_shows_online_only_whom_its_reader_may_see() {
        for_each_database(|db| async move {
            let Circle { ann, bob, cy, dee, eve } = Circle::of_ann(&db).await;
            for id in [bob, cy, dee, eve] {
                went_online(&db, id, stamp()).await.unwrap();
            }
            // Ann's list shows Bob (they talked), and Cy, Dee and Eve as people she has not
            // talked to yet; a search finds them too. Only Bob and Dee are hers to see online.
            let list = |search: Option<&'static str>| {
                let db = db.clone();
                async move {
                    let listed = crate::ssr::conversations::contacts(&db, ann, search).await.unwrap();
                    let people = listed.people.iter().filter(|c| c.kind == crate::model::ContactKind::Person);
                    let shown: HashSet<i64> = people.clone().map(|c| c.id).collect();
                    (shown, people.filter(|c| c.online).map(|c| c.id).collect::<HashSet<i64>>())
                }
            };
            let (shown, online) = list(None).await;
            assert_eq!(shown, HashSet::from([bob, cy, dee, eve]));
            assert_eq!(online, HashSet::from([bob, dee]));
            let (shown, online) = list(Some("e")).await;
            assert_eq!(shown, HashSet::from([dee, eve]));
            assert_eq!(online, HashSet::from([dee]), "Eve is a stranger");
            went_offline(&db, dee, stamp()).await.unwrap();
            assert_eq!(list(None).await.1, HashSet::from([bob]));
            assert_eq!(list(Some("bo")).await.1, HashSet::from([bob]), "a partner found by a search");
        })
        .await;
    }

    #[tokio::test]
    async fn the_online_people_of_a_circle_are_told_on_their_own_channels() {
        let db = memory_db().await;
        let ann = user(&db, "ann").await.id;
        let bob = user(&db, "bob").await.id;
        let cy = user(&db, "cy").await.id;
        let stranger = user(&db, "stranger").await.id;
        message(&db, ann, bob, "hi").await;
        message(&db, cy, ann, "hey").await;
        went_online(&db, bob, stamp()).await.unwrap();
        went_online(&db, stranger, stamp()).await.unwrap();
        let recorder = Arc::new(Recorder::default());
        let status = OnlineStatus::with_grace(db.clone(), recorder.clone(), Duration::from_millis(100));

        // Ann opens a tab: Bob (online, her partner) hears of it; Cy (offline) and the stranger do not.
        status.occupied(&format!("private-user.{ann}"), stamp());
        let bob_channel = format!("private-user.{bob}");
        assert_eq!(
            until_told(&recorder, 1).await,
            [(bob_channel.clone(), StatusChanged { user_id: ann, online: true })]
        );
        // Other channels' occupancy means nothing.
        status.occupied(&format!("private-room.{ann}"), stamp());
        // A reload: vacated, then occupied again within the grace. Nobody sees her blink.
        status.vacated(&format!("private-user.{ann}"), stamp());
        status.occupied(&format!("private-encrypted-user.{ann}"), stamp());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(told(&recorder).len(), 1);
        // Gone for longer than the grace: offline, told once.
        status.vacated(&format!("private-encrypted-user.{ann}"), stamp());
        let seen = until_told(&recorder, 2).await;
        assert_eq!(seen[1], (bob_channel, StatusChanged { user_id: ann, online: false }));
        assert!(all_online(&db).await.unwrap().contains(&bob));
        assert!(!all_online(&db).await.unwrap().contains(&ann));
    }

    #[tokio::test]
    async fn reconciling_fixes_what_was_never_reported() {
        let db = memory_db().await;
        let ann = user(&db, "ann").await.id;
        let bob = user(&db, "bob").await.id;
        message(&db, ann, bob, "hi").await;
        // Ann is recorded online (the server that knew her went away); Bob is online unrecorded.
        went_online(&db, ann, stamp()).await.unwrap();
        let recorder = Arc::new(Recorder::default());
        let status = OnlineStatus::with_grace(db.clone(), recorder.clone(), Duration::from_millis(10));
        let recorded = all_online(&db).await.unwrap();
        assert_eq!(status.reconcile(&recorded, &HashSet::from([bob])), 2);
        // Ann (recorded online until her grace is over) hears Bob came; then Bob hears she left.
        let seen = until_told(&recorder, 2).await;
        assert_eq!(
            seen,
            [
                (format!("private-user.{ann}"), StatusChanged { user_id: bob, online: true }),
                (format!("private-user.{bob}"), StatusChanged { user_id: ann, online: false }),
            ]
        );
        assert_eq!(all_online(&db).await.unwrap(), HashSet::from([bob]));
    }

    /// Ten thousand people come online at once, each partner of one observer: every one is recorded
    /// and the observer hears of every one (no cap like a presence channel's 100 members).
    #[tokio::test]
    async fn ten_thousand_people_online() {
        use sea_orm::TransactionTrait;
        const PEOPLE: i64 = 10_000;
        let db = memory_db().await;
        let olga = user(&db, "olga").await.id;
        let tx = db.begin().await.unwrap();
        let now = chrono::Utc::now();
        for chunk in (1..=PEOPLE).collect::<Vec<_>>().chunks(500) {
            let rows = chunk.iter().map(|i| crate::ssr::entities::users::ActiveModel {
                name: Set(format!("person {i}")),
                email: Set(format!("p{i}@example.com")),
                password_hash: Set(crate::ssr::password::PasswordHash::placeholder()),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            });
            crate::ssr::entities::users::Entity::insert_many(rows).exec(&tx).await.unwrap();
        }
        tx.commit().await.unwrap();
        let people: Vec<i64> = crate::ssr::entities::users::Entity::find()
            .select_only()
            .column(crate::ssr::entities::users::Column::Id)
            .filter(crate::ssr::entities::users::Column::Id.ne(olga))
            .into_tuple()
            .all(&db)
            .await
            .unwrap();
        assert_eq!(people.len(), PEOPLE as usize);
        let tx = db.begin().await.unwrap();
        for chunk in people.chunks(500) {
            let rows = chunk.iter().map(|&id| messages::ActiveModel {
                body: Set("hi".into()),
                user_id: Set(id),
                recipient_id: Set(Some(olga)),
                client_id: Set(format!("c{id}")),
                kind: Set("text".into()),
                created_at: Set(now),
                updated_at: Set(now),
                change_seq: Set(0),
                ..Default::default()
            });
            messages::Entity::insert_many(rows).exec(&tx).await.unwrap();
        }
        tx.commit().await.unwrap();
        went_online(&db, olga, stamp()).await.unwrap();

        let recorder = Arc::new(Recorder::default());
        let status = OnlineStatus::start(db.clone(), recorder.clone());
        for &id in &people {
            status.occupied(&format!("private-user.{id}"), stamp());
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while told(&recorder).len() < people.len() {
            assert!(tokio::time::Instant::now() < deadline, "only {} told", told(&recorder).len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = told(&recorder);
        let olga_channel = format!("private-user.{olga}");
        assert!(seen.iter().all(|(channel, status)| *channel == olga_channel && status.online));
        let announced: HashSet<i64> = seen.iter().map(|(_, status)| status.user_id).collect();
        assert_eq!(announced.len(), people.len());
        assert_eq!(all_online(&db).await.unwrap().len(), people.len() + 1);
        assert_eq!(visible_online(&db, olga).await.unwrap().len(), people.len());
    }
}
