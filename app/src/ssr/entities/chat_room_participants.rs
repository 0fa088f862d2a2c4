//! `chat_room_participants`: who is in which room, and the newest message each has read.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_room_participants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub chat_room_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    pub last_read_message_id: Option<i64>,
    pub joined_at: DateTimeUtc,
    pub is_admin: bool,
    /// When they left or were removed; `None` while a member.
    pub left_at: Option<DateTimeUtc>,
    /// The newest message a former member may still read.
    pub visible_up_to: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
