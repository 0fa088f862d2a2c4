//! `messages`: one-to-one (recipient_id) or group (chat_room_id). `(user_id, client_id)` is the
//! idempotency key of a send; the indexes serve a conversation's newest page and unread counts.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261126_000001_create_users::Users;
use crate::m20261126_000002_create_chat_rooms::ChatRooms;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Messages::Id))
                    .col(text(Messages::Body))
                    .col(big_integer(Messages::UserId))
                    .col(big_integer_null(Messages::RecipientId))
                    .col(big_integer_null(Messages::ChatRoomId))
                    .col(string_len(Messages::ClientId, 64))
                    .col(timestamp_with_time_zone_null(Messages::ReadAt))
                    .col(timestamp_with_time_zone_null(Messages::EditedAt))
                    .col(timestamp_with_time_zone_null(Messages::DeletedAt))
                    .col(timestamp_with_time_zone(Messages::CreatedAt))
                    .col(timestamp_with_time_zone(Messages::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_messages_sender")
                            .from(Messages::Table, Messages::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_messages_recipient")
                            .from(Messages::Table, Messages::RecipientId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_messages_room")
                            .from(Messages::Table, Messages::ChatRoomId)
                            .to(ChatRooms::Table, ChatRooms::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        let indexes = [
            // A retried send with the same client id finds (and never duplicates) its row.
            Index::create()
                .name("uq_messages_sender_client_id")
                .table(Messages::Table)
                .col(Messages::UserId)
                .col(Messages::ClientId)
                .unique()
                .to_owned(),
            // A conversation's latest page: (me -> peer) and (peer -> me), newest id first.
            Index::create()
                .name("idx_messages_conversation")
                .table(Messages::Table)
                .col(Messages::UserId)
                .col(Messages::RecipientId)
                .col(Messages::Id)
                .to_owned(),
            // Unread counts per contact: recipient = me AND read_at IS NULL, grouped by sender.
            Index::create()
                .name("idx_messages_unread")
                .table(Messages::Table)
                .col(Messages::RecipientId)
                .col(Messages::ReadAt)
                .col(Messages::UserId)
                .to_owned(),
            // A room's latest page.
            Index::create()
                .name("idx_messages_room")
                .table(Messages::Table)
                .col(Messages::ChatRoomId)
                .col(Messages::Id)
                .to_owned(),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Messages::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
pub enum Messages {
    Table,
    Id,
    Body,
    UserId,
    RecipientId,
    ChatRoomId,
    ClientId,
    ReadAt,
    EditedAt,
    DeletedAt,
    CreatedAt,
    UpdatedAt,
}
