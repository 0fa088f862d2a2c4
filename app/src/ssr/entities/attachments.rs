//! `attachments`: an uploaded file, sent with `message_id` (empty until its message is stored).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attachments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub message_id: Option<i64>,
    pub uploader_id: i64,
    #[sea_orm(unique)]
    pub storage_key: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// The preview's content type (`image/jpeg` or `image/webp`); `None`: no preview.
    pub preview_type: Option<String>,
    pub sha256: String,
    pub position: i32,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
