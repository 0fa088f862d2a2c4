//! `conversation_mutes`: the conversations a person muted (no notification, no sound), kept on
//! the server so a mute follows them to every device. `conversation` is `u{user id}` for a
//! one-to-one conversation and `g{group id}` for a group, as the search page's `in=` names them.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261126_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ConversationMutes::Table)
                    .if_not_exists()
                    .col(big_integer(ConversationMutes::UserId))
                    .col(string_len(ConversationMutes::Conversation, 24))
                    .col(timestamp_with_time_zone(ConversationMutes::CreatedAt))
                    .primary_key(Index::create().col(ConversationMutes::UserId).col(ConversationMutes::Conversation))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_mutes_user")
                            .from(ConversationMutes::Table, ConversationMutes::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ConversationMutes::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum ConversationMutes {
    Table,
    UserId,
    Conversation,
    CreatedAt,
}
