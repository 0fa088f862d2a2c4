//! Real time on the server side: the Pusher credentials (configured, or generated once and kept in
//! the database), who may subscribe to which channel, and the events a stored change announces.

use chrono::Utc;
use pusher_protocol::encryption::MasterKey;
use pusher_protocol::{ChannelAuthorization, ChannelName, Credentials, PresenceMember, ProtocolError, SocketId};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait};
use serde_json::json;

use crate::model::ChatMessage;
use crate::realtime::{
    ChannelAccess, EVENT_GROUP_CHANGED, EVENT_MESSAGE_DELETED, EVENT_MESSAGE_UPDATED, EVENT_MESSAGES_READ,
    EVENT_NEW_MESSAGE, EVENT_REACTIONS_CHANGED, EventChannels, GroupRead, MessageDeleted, MessagesRead,
    ReactionsChanged, RealtimeConfig, room_presence_channel,
};
use crate::ssr::broadcast::{Broadcaster, Publication};
use crate::ssr::entities::settings;

/// The app's Pusher identity: the id and credentials publishers and the auth endpoint use, and the
/// public settings the browser gets.
#[derive(Clone, Debug)]
pub struct RealtimeSettings {
    pub app_id: String,
    pub credentials: Credentials,
    pub public: RealtimeConfig,
    /// End-to-end encryption's master key, when the user and room channels are encrypted.
    pub encryption: Option<MasterKey>,
}

/// Why `/broadcasting/auth` refused; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthDenied {
    #[error("socket_id must look like 123.456")]
    BadSocketId,
    #[error("channel_name is not a valid channel name")]
    BadChannel,
    #[error("you may not subscribe to this channel")]
    Forbidden,
    /// The membership could not be read (the database failed); logged where it happened.
    #[error("something went wrong on our side; please try again")]
    Internal,
}

impl AuthDenied {
    pub fn status(&self) -> u16 {
        match self {
            Self::BadSocketId | Self::BadChannel => 400,
            Self::Forbidden => 403,
            Self::Internal => 500,
        }
    }
}

impl From<AuthDenied> for crate::error::AppError {
    fn from(denied: AuthDenied) -> Self {
        match denied {
            AuthDenied::BadSocketId => Self::invalid("socket_id", denied.to_string()),
            AuthDenied::BadChannel => Self::invalid("channel_name", denied.to_string()),
            AuthDenied::Forbidden => Self::Forbidden { message: denied.to_string() },
            AuthDenied::Internal => Self::Internal,
        }
    }
}

impl RealtimeSettings {
    /// Signs the subscription of user `user_id` (called `user_name`) of `socket_id` to `channel_name`,
    /// if the channel rules ([`crate::realtime::channels`]) allow it now. Names we never hand out are
    /// refused like a channel of someone else's: 403, nothing more.
    pub async fn authorize(
        &self,
        db: &DatabaseConnection,
        user_id: i64,
        user_name: &str,
        socket_id: &str,
        channel_name: &str,
    ) -> Result<ChannelAuthorization, AuthDenied> {
        let socket_id = SocketId::parse(socket_id).map_err(|_| AuthDenied::BadSocketId)?;
        let channel = ChannelName::parse(channel_name).map_err(|_| AuthDenied::BadChannel)?;
        let access = ChannelAccess::parse(channel.as_str()).ok_or(AuthDenied::Forbidden)?;
        // The event channels we hand out are either all encrypted or all not: the other spelling
        // carries nothing, so it is refused like any name we never hand out.
        if access.carries_events() && channel.kind().is_encrypted() != self.encryption.is_some() {
            return Err(AuthDenied::Forbidden);
        }
        let allowed = crate::realtime::channels::may_subscribe(db, user_id, access).await.map_err(|error| {
            tracing::error!(%error, "cannot read a channel's membership");
            AuthDenied::Internal
        })?;
        if !allowed {
            return Err(AuthDenied::Forbidden);
        }
        let channel_data = access
            .is_presence()
            .then(|| PresenceMember::new(user_id.to_string(), Some(json!({ "name": user_name }))).to_channel_data());
        let mut authorization = self.credentials.authorize_channel(&socket_id, &channel, channel_data.as_deref());
        if let Some(key) = self.encryption.as_ref().filter(|_| channel.kind().is_encrypted()) {
            authorization.shared_secret = Some(key.shared_secret(&channel).to_base64());
        }
        Ok(authorization)
    }
}

/// Reads the setting `name`, or stores `make()` under it when there is none. Safe when two
/// servers start at once on one database: the first insert wins and both read it.
pub async fn stored_setting(
    db: &DatabaseConnection,
    name: &str,
    make: impl FnOnce() -> String,
) -> Result<String, DbErr> {
    if let Some(row) = settings::Entity::find_by_id(name.to_owned()).one(db).await? {
        return Ok(row.value);
    }
    let row = settings::ActiveModel { name: Set(name.to_owned()), value: Set(make()), created_at: Set(Utc::now()) };
    match row.insert(db).await {
        Ok(row) => Ok(row.value),
        Err(e) if crate::ssr::is_unique_violation(&e) => settings::Entity::find_by_id(name.to_owned())
            .one(db)
            .await?
            .map(|row| row.value)
            .ok_or(DbErr::RecordNotFound(name.to_owned())),
        Err(e) => Err(e),
    }
}

/// The encryption master key generated at first start (`PUSHER_APP_ENCRYPTED=true` without a key)
/// and kept in `settings`, so every restart and every instance on this database uses the same one.
pub async fn generated_master_key(db: &DatabaseConnection) -> Result<MasterKey, DbErr> {
    let text = stored_setting(db, "pusher_encryption_master_key", || MasterKey::from_bytes(rand::random()).to_base64())
        .await?;
    MasterKey::from_base64(&text)
        .map_err(|e| DbErr::Custom(format!("the stored setting pusher_encryption_master_key {e}")))
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> String {
    (0..n).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

/// The embedded server's app id, key and secret, generated at first start and kept in `settings`.
pub async fn generated_credentials(db: &DatabaseConnection) -> Result<(String, String, String), DbErr> {
    let app_id =
        stored_setting(db, "pusher_app_id", || (100_000 + rand::random::<u32>() % 900_000).to_string()).await?;
    let key = stored_setting(db, "pusher_app_key", || random_hex(10)).await?;
    let secret = stored_setting(db, "pusher_app_secret", || random_hex(16)).await?;
    Ok((app_id, key, secret))
}

fn channel(name: String) -> Option<ChannelName> {
    match ChannelName::parse(&name) {
        Ok(channel) => Some(channel),
        Err(e) => {
            report(&e, &name);
            None
        }
    }
}

fn report(error: &ProtocolError, what: &str) {
    tracing::error!(%error, what, "cannot build a realtime event");
}

/// The sending tab's socket id, as a send names it (`None` when it has no connection).
pub fn sending_socket(socket_id: Option<&str>) -> Result<Option<SocketId>, crate::error::AppError> {
    match socket_id.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(id) => SocketId::parse(id)
            .map(Some)
            .map_err(|_| crate::error::AppError::invalid("socket_id", "socket_id must look like 123.456")),
    }
}

/// The channels every tab of a conversation's people follows: a group's channel, or the two
/// people's user channels.
fn conversation_channels(
    names: EventChannels,
    room_id: Option<i64>,
    sender_id: i64,
    recipient_id: i64,
) -> Vec<ChannelName> {
    match room_id {
        Some(room) => channel(names.room(room)).into_iter().collect(),
        None => [recipient_id, sender_id].into_iter().filter_map(|id| channel(names.user(id))).collect(),
    }
}

fn publish_json(
    broadcaster: &dyn Broadcaster,
    channels: Vec<ChannelName>,
    event: &'static str,
    data: &impl serde::Serialize,
    exclude: Option<SocketId>,
) {
    match serde_json::to_string(data) {
        Ok(data) => broadcaster.publish(Publication { channels, event, data, exclude }),
        Err(e) => tracing::error!(error = %e, event, "cannot serialize an event"),
    }
}

/// `NewChatMessage` to the recipient and to the sender's other tabs (not the tab that sent it); a
/// group's message to the group's channel, which every member's tabs (the sender's too) follow.
pub fn announce_message(broadcaster: &dyn Broadcaster, message: &ChatMessage, exclude: Option<SocketId>) {
    let channels =
        conversation_channels(broadcaster.event_channels(), message.room_id, message.sender_id, message.recipient_id);
    publish_json(broadcaster, channels, EVENT_NEW_MESSAGE, message, exclude);
}

/// `MessageUpdated` (an edit) where the message was announced.
pub fn announce_update(broadcaster: &dyn Broadcaster, message: &ChatMessage) {
    let channels =
        conversation_channels(broadcaster.event_channels(), message.room_id, message.sender_id, message.recipient_id);
    publish_json(broadcaster, channels, EVENT_MESSAGE_UPDATED, message, None);
}

/// `MessageDeleted` where the message was announced.
pub fn announce_delete(broadcaster: &dyn Broadcaster, deleted: &MessageDeleted) {
    let channels =
        conversation_channels(broadcaster.event_channels(), deleted.room_id, deleted.sender_id, deleted.recipient_id);
    publish_json(broadcaster, channels, EVENT_MESSAGE_DELETED, deleted, None);
}

/// `ReactionsChanged` where the message was announced.
pub fn announce_reactions(broadcaster: &dyn Broadcaster, change: &ReactionsChanged) {
    let channels =
        conversation_channels(broadcaster.event_channels(), change.room_id, change.sender_id, change.recipient_id);
    publish_json(broadcaster, channels, EVENT_REACTIONS_CHANGED, change, None);
}

/// `MessagesRead` to the person whose messages were read (their ✓✓), and to the reader's other
/// tabs (their unread badges).
pub fn announce_read(broadcaster: &dyn Broadcaster, read: &MessagesRead) {
    let names = broadcaster.event_channels();
    let channels: Vec<ChannelName> =
        [read.peer_id, read.reader_id].into_iter().filter_map(|id| channel(names.user(id))).collect();
    match serde_json::to_string(read) {
        Ok(data) => broadcaster.publish(Publication { channels, event: EVENT_MESSAGES_READ, data, exclude: None }),
        Err(e) => tracing::error!(error = %e, "cannot serialize a read event"),
    }
}

/// A member's read mark moved: `MessagesRead` on the group's channel ("Seen by").
pub fn announce_group_read(broadcaster: &dyn Broadcaster, read: &GroupRead) {
    let channels: Vec<ChannelName> = channel(broadcaster.event_channels().room(read.room_id)).into_iter().collect();
    match serde_json::to_string(read) {
        Ok(data) => broadcaster.publish(Publication { channels, event: EVENT_MESSAGES_READ, data, exclude: None }),
        Err(e) => tracing::error!(error = %e, "cannot serialize a group read event"),
    }
}

/// `GroupChanged` to the group's channel and to the user channels of the people added (not yet
/// subscribed) and removed; then the removed stop receiving the group's channels at once.
pub fn announce_group_change(broadcaster: &dyn Broadcaster, change: &crate::ssr::groups::Change) {
    let event = &change.event;
    let names = broadcaster.event_channels();
    let channels: Vec<ChannelName> = std::iter::once(names.room(event.room_id))
        .chain(event.added.iter().chain(&event.removed).map(|&id| names.user(id)))
        .filter_map(channel)
        .collect();
    // Pusher takes at most 100 channels per event: the rest go in further publications.
    match serde_json::to_string(event) {
        Ok(data) => {
            for chunk in channels.chunks(100) {
                broadcaster.publish(Publication {
                    channels: chunk.to_vec(),
                    event: EVENT_GROUP_CHANGED,
                    data: data.clone(),
                    exclude: None,
                });
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot serialize a group change"),
    }
    let group_channels: Vec<ChannelName> =
        [names.room(event.room_id), room_presence_channel(event.room_id)].into_iter().filter_map(channel).collect();
    for &user in &event.removed {
        broadcaster.unsubscribe_user(user, &group_channels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::LiveEvent;
    use crate::ssr::test_support::{for_each_database, memory_db, user};

    fn settings() -> RealtimeSettings {
        RealtimeSettings {
            app_id: "1".into(),
            credentials: Credentials::new("278d425bdf160c739803", "7ad3773142a6692b25b8"),
            public: RealtimeConfig {
                key: "278d425bdf160c739803".into(),
                host: None,
                port: None,
                tls: false,
                cluster: None,
                channels: EventChannels::Private,
            },
            encryption: None,
        }
    }

    #[tokio::test]
    async fn own_user_channel_is_signed_like_the_published_vector() {
        let db = memory_db().await;
        let auth = settings().authorize(&db, 7, "Ann", "1234.1234", "private-user.7").await.unwrap();
        let expected = Credentials::new("278d425bdf160c739803", "7ad3773142a6692b25b8").authorize_channel(
            &SocketId::parse("1234.1234").unwrap(),
            &ChannelName::parse("private-user.7").unwrap(),
            None,
        );
        assert_eq!(auth, expected);
        assert!(auth.auth.starts_with("278d425bdf160c739803:"));
        assert_eq!(auth.channel_data, None);
    }

    #[tokio::test]
    async fn only_the_people_of_a_channel_may_subscribe() {
        let db = memory_db().await;
        let s = settings();
        assert_eq!(s.authorize(&db, 7, "Ann", "1.2", "private-user.8").await, Err(AuthDenied::Forbidden));
        assert!(s.authorize(&db, 7, "Ann", "1.2", "private-chat.7.9").await.is_ok());
        assert!(s.authorize(&db, 7, "Ann", "1.2", "private-chat.3.7").await.is_ok());
        assert_eq!(s.authorize(&db, 7, "Ann", "1.2", "private-chat.3.9").await, Err(AuthDenied::Forbidden));
        assert_eq!(
            s.authorize(&db, 7, "Ann", "1.2", "private-chat.9.7").await,
            Err(AuthDenied::Forbidden),
            "non-canonical"
        );
        assert_eq!(s.authorize(&db, 7, "Ann", "1.2", "presence-room.1").await, Err(AuthDenied::Forbidden));
        assert_eq!(s.authorize(&db, 7, "Ann", "1.2", "public-news").await, Err(AuthDenied::Forbidden));
        assert_eq!(s.authorize(&db, 7, "Ann", "1.2", "private-user.7 x").await, Err(AuthDenied::BadChannel));
        assert_eq!(s.authorize(&db, 7, "Ann", "12", "private-user.7").await, Err(AuthDenied::BadSocketId));
        assert_eq!(s.authorize(&db, 7, "Ann", "1.2;", "private-user.7").await, Err(AuthDenied::BadSocketId));
        assert_eq!(AuthDenied::Forbidden.status(), 403);
        assert_eq!(AuthDenied::BadSocketId.status(), 400);
    }

    #[tokio::test]
    async fn group_channels_are_for_current_members_only() {
        for_each_database(|db| async move {
            let s = settings();
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let carol = user(&db, "carol").await;
            let group = crate::ssr::groups::create(&db, &alice, "Trip", &[bob.id]).await.unwrap().group;
            let room = EventChannels::Private.room(group.id);
            let presence = crate::realtime::room_presence_channel(group.id);
            for channel in [&room, &presence] {
                assert!(s.authorize(&db, alice.id, "alice", "1.2", channel).await.is_ok(), "{channel}");
                assert!(s.authorize(&db, bob.id, "bob", "1.2", channel).await.is_ok(), "{channel}");
                assert_eq!(s.authorize(&db, carol.id, "carol", "1.2", channel).await, Err(AuthDenied::Forbidden));
            }
            // The presence member carries the name the group shows.
            let auth = s.authorize(&db, bob.id, "bob", "1.2", &presence).await.unwrap();
            let member = PresenceMember::from_channel_data(&auth.channel_data.unwrap()).unwrap();
            assert_eq!(member.user_info, Some(json!({ "name": "bob" })));
            // Removed: the next subscription is refused.
            crate::ssr::groups::remove(&db, &alice, group.id, bob.id).await.unwrap();
            for channel in [&room, &presence] {
                assert_eq!(s.authorize(&db, bob.id, "bob", "1.2", channel).await, Err(AuthDenied::Forbidden));
            }
            let missing = EventChannels::Private.room(group.id + 100);
            assert_eq!(s.authorize(&db, alice.id, "alice", "1.2", &missing).await, Err(AuthDenied::Forbidden));
        })
        .await;
    }

    #[tokio::test]
    async fn encrypted_channels_come_with_their_shared_secret_for_their_people_only() {
        for_each_database(|db| async move {
            let key = MasterKey::from_bytes([5; 32]);
            let s = RealtimeSettings { encryption: Some(key.clone()), ..settings() };
            let alice = user(&db, "alice").await;
            let bob = user(&db, "bob").await;
            let carol = user(&db, "carol").await;
            let group = crate::ssr::groups::create(&db, &alice, "Trip", &[bob.id]).await.unwrap().group;
            let mine = EventChannels::Encrypted.user(alice.id);
            let room = EventChannels::Encrypted.room(group.id);
            for channel in [&mine, &room] {
                let auth = s.authorize(&db, alice.id, "alice", "1.2", channel).await.unwrap();
                let expected = key.shared_secret(&ChannelName::parse(channel).unwrap()).to_base64();
                assert_eq!(auth.shared_secret, Some(expected), "{channel}");
                // Signed as any private channel is.
                let plain = s.credentials.authorize_channel(
                    &SocketId::parse("1.2").unwrap(),
                    &ChannelName::parse(channel).unwrap(),
                    None,
                );
                assert_eq!(auth.auth, plain.auth);
            }
            assert_eq!(s.authorize(&db, carol.id, "carol", "1.2", &room).await, Err(AuthDenied::Forbidden));
            assert_eq!(s.authorize(&db, bob.id, "bob", "1.2", &mine).await, Err(AuthDenied::Forbidden));
            // With encryption on, the plain event channels carry nothing: refused.
            let plain_mine = EventChannels::Private.user(alice.id);
            assert_eq!(s.authorize(&db, alice.id, "alice", "1.2", &plain_mine).await, Err(AuthDenied::Forbidden));
            // Whispers and presence stay on their channels, with no secret.
            let typing = crate::realtime::chat_channel(alice.id, bob.id);
            assert_eq!(s.authorize(&db, alice.id, "alice", "1.2", &typing).await.unwrap().shared_secret, None);
            // With encryption off, encrypted names are never handed out.
            assert_eq!(settings().authorize(&db, alice.id, "alice", "1.2", &mine).await, Err(AuthDenied::Forbidden));
        })
        .await;
    }

    #[tokio::test]
    async fn generated_master_key_is_kept() {
        for_each_database(|db| async move {
            let first = generated_master_key(&db).await.unwrap();
            assert_eq!(generated_master_key(&db).await.unwrap(), first);
        })
        .await;
    }

    #[tokio::test]
    async fn presence_carries_the_signed_member() {
        let db = memory_db().await;
        let ann = crate::ssr::test_support::user(&db, "ann").await;
        let bob = crate::ssr::test_support::user(&db, "bob").await;
        let room = crate::ssr::groups::create(&db, &ann, "Climbing", &[bob.id]).await.unwrap().group.id;
        let channel = format!("presence-room.{room}");
        let auth = settings().authorize(&db, ann.id, "Ann \"A\"", "1.2", &channel).await.unwrap();
        let data = auth.channel_data.clone().expect("channel_data");
        let member = PresenceMember::from_channel_data(&data).unwrap();
        assert_eq!(member.user_id, ann.id.to_string());
        assert_eq!(member.user_info, Some(json!({ "name": "Ann \"A\"" })));
        let subscribe =
            pusher_protocol::Subscribe::new(ChannelName::parse(&channel).unwrap(), Some(auth.auth), Some(data));
        let verified = settings().credentials.verify_subscription(&SocketId::parse("1.2").unwrap(), &subscribe);
        assert_eq!(verified.unwrap(), Some(member));
    }

    #[tokio::test]
    async fn generated_credentials_are_kept() {
        for_each_database(|db| async move {
            let first = generated_credentials(&db).await.unwrap();
            let again = generated_credentials(&db).await.unwrap();
            assert_eq!(first, again);
            assert_eq!(first.1.len(), 20);
            assert_eq!(first.2.len(), 32);
        })
        .await;
    }

    use crate::ssr::broadcast::Recorder;

    #[test]
    fn a_message_goes_to_both_people_except_the_sending_tab() {
        let recorder = Recorder::default();
        let message = ChatMessage {
            id: 5,
            sender_id: 1,
            recipient_id: 2,
            room_id: None,
            sender_name: String::new(),
            kind: crate::model::MessageKind::Text,
            body: "hi".into(),
            client_id: "c".into(),
            created_at: Utc::now(),
            read_at: None,
            edited_at: None,
            deleted: false,
            change: 0,
            reply_to: None,
            reactions: Vec::new(),
            attachments: Vec::new(),
        };
        announce_message(&recorder, &message, Some(SocketId::parse("3.4").unwrap()));
        let sent = recorder.0.lock().unwrap();
        assert_eq!(sent.len(), 1);
        let names: Vec<&str> = sent[0].channels.iter().map(ChannelName::as_str).collect();
        assert_eq!(names, ["private-user.2", "private-user.1"]);
        assert_eq!(sent[0].event, "NewChatMessage");
        assert_eq!(serde_json::from_str::<ChatMessage>(&sent[0].data).unwrap(), message);
        assert_eq!(sent[0].exclude.as_ref().map(SocketId::as_str), Some("3.4"));
        drop(sent);

        // Edits, deletions and reactions go where the message went, to every tab.
        announce_update(&recorder, &message);
        let deleted = MessageDeleted { id: 5, sender_id: 1, recipient_id: 2, room_id: None, change: 1 };
        announce_delete(&recorder, &deleted);
        let in_group = ReactionsChanged {
            message_id: 6,
            sender_id: 1,
            recipient_id: 0,
            room_id: Some(9),
            reactions: vec![],
            change: 2,
        };
        announce_reactions(&recorder, &in_group);
        let sent = recorder.0.lock().unwrap();
        let seen: Vec<(&str, Vec<&str>, bool)> = sent[1..]
            .iter()
            .map(|p| (p.event, p.channels.iter().map(ChannelName::as_str).collect(), p.exclude.is_some()))
            .collect();
        assert_eq!(
            seen,
            [
                ("MessageUpdated", vec!["private-user.2", "private-user.1"], false),
                ("MessageDeleted", vec!["private-user.2", "private-user.1"], false),
                ("ReactionsChanged", vec!["private-room.9"], false),
            ]
        );
        assert_eq!(LiveEvent::decode("MessageDeleted", &sent[2].data), Some(LiveEvent::MessageDeleted(deleted)));
        drop(sent);

        // With encryption on, the same message goes sealed to each person's encrypted channel.
        let inner = std::sync::Arc::new(Recorder::default());
        let key = MasterKey::from_bytes([1; 32]);
        let encrypting = crate::ssr::broadcast::Encrypting::new(inner.clone(), key.clone());
        announce_message(&encrypting, &message, None);
        let sent = inner.0.lock().unwrap();
        let names: Vec<&str> = sent.iter().flat_map(|p| p.channels.iter().map(ChannelName::as_str)).collect();
        assert_eq!(names, ["private-encrypted-user.2", "private-encrypted-user.1"]);
        for p in sent.iter() {
            let data = key.shared_secret(&p.channels[0]).decrypt(&p.data).unwrap();
            assert_eq!(serde_json::from_str::<ChatMessage>(&data).unwrap(), message);
        }
    }
}
