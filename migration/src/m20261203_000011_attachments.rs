//! `attachments`: files people upload and send with a message. A row is written when the upload
//! is stored (`message_id` empty: not sent yet) and given its message in the send's transaction,
//! so a failed send leaves no row pointing at a message, and an upload that was never sent is
//! found by its empty `message_id` and cleaned up. `storage_key` is random, never the file name.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261126_000001_create_users::Users;
use crate::m20261126_000003_create_messages::Messages;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Attachments::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Attachments::Id))
                    .col(big_integer_null(Attachments::MessageId))
                    .col(big_integer(Attachments::UploaderId))
                    .col(string_len_uniq(Attachments::StorageKey, 64))
                    .col(string_len(Attachments::Name, 255))
                    .col(string_len(Attachments::ContentType, 100))
                    .col(big_integer(Attachments::Size))
                    .col(integer_null(Attachments::Width))
                    .col(integer_null(Attachments::Height))
                    .col(string_len_null(Attachments::PreviewType, 32))
                    .col(string_len(Attachments::Sha256, 64))
                    .col(integer(Attachments::Position).default(0))
                    .col(timestamp_with_time_zone(Attachments::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_attachments_message")
                            .from(Attachments::Table, Attachments::MessageId)
                            .to(Messages::Table, Messages::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_attachments_uploader")
                            .from(Attachments::Table, Attachments::UploaderId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_attachments_message")
                    .table(Attachments::Table)
                    .col(Attachments::MessageId)
                    .col(Attachments::Position)
                    .to_owned(),
            )
            .await?;
        // Unsent uploads by age, for the orphan sweep and the per-person count of pending uploads.
        manager
            .create_index(
                Index::create()
                    .name("idx_attachments_uploader")
                    .table(Attachments::Table)
                    .col(Attachments::UploaderId)
                    .col(Attachments::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Attachments::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Attachments {
    Table,
    Id,
    MessageId,
    UploaderId,
    StorageKey,
    Name,
    ContentType,
    Size,
    Width,
    Height,
    PreviewType,
    Sha256,
    Position,
    CreatedAt,
}
