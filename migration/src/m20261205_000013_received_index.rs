//! The messages a person received, by sender: `(recipient_id, user_id, read_at)` in place of
//! `(recipient_id, read_at, user_id)`. The contact list finds the people who wrote to someone one
//! seek per person (not a scan of every message they ever received), and each person's unread
//! count and a read receipt's update reach only the unread rows of that one conversation.

use sea_orm_migration::prelude::*;

use crate::m20261126_000003_create_messages::Messages;

#[derive(DeriveMigrationName)]
pub struct Migration;

const OLD: &str = "idx_messages_unread";
const NEW: &str = "idx_messages_received";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NEW)
                    .table(Messages::Table)
                    .col(Messages::RecipientId)
                    .col(Messages::UserId)
                    .col(Messages::ReadAt)
                    .to_owned(),
            )
            .await?;
        manager.drop_index(Index::drop().name(OLD).table(Messages::Table).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(OLD)
                    .table(Messages::Table)
                    .col(Messages::RecipientId)
                    .col(Messages::ReadAt)
                    .col(Messages::UserId)
                    .to_owned(),
            )
            .await?;
        manager.drop_index(Index::drop().name(NEW).table(Messages::Table).to_owned()).await
    }
}
