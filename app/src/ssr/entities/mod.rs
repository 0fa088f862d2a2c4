//! SeaORM entities, one module per table created by `migration/`.

pub mod attachments;
pub mod chat_room_participants;
pub mod chat_rooms;
pub mod conversation_mutes;
pub mod counters;
pub mod message_reactions;
pub mod messages;
pub mod online_status;
pub mod sessions;
pub mod settings;
pub mod users;
