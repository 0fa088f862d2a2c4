//! `messages`: one-to-one (`recipient_id`) or group (`chat_room_id`) messages.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    /// The sender.
    pub user_id: i64,
    pub recipient_id: Option<i64>,
    pub chat_room_id: Option<i64>,
    /// Made by the sending browser; `(user_id, client_id)` is unique, which makes sends idempotent.
    pub client_id: String,
    /// `text` (a person wrote it) or `system` (a line about the group, e.g. "Dana added Erin").
    pub kind: String,
    pub read_at: Option<DateTimeUtc>,
    pub edited_at: Option<DateTimeUtc>,
    pub deleted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The message this one answers, in the same conversation.
    pub reply_to_id: Option<i64>,
    /// The `message_changes` counter's value at this message's latest edit, deletion or
    /// reaction change; 0 while it never changed. Catch-ups ask for what changed after theirs.
    pub change_seq: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
