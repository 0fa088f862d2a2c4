//! Message actions: replies (`reply_to_id`), reactions (one row per person, emoji and message),
//! and the change sequence that lets a tab that was away learn which of the messages it already
//! holds were edited, deleted or reacted to since (`change_seq`, drawn from one counter).

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261126_000001_create_users::Users;
use crate::m20261126_000003_create_messages::Messages;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time. No foreign key on
        // `reply_to_id`: SQLite cannot add one to an existing table, and a reply outlives nothing
        // (a deleted message stays as a tombstone row).
        for column in [big_integer_null(Actions::ReplyToId), big_integer(Actions::ChangeSeq).default(0).to_owned()] {
            manager.alter_table(Table::alter().table(Messages::Table).add_column(column).to_owned()).await?;
        }
        // A catch-up asks one conversation for its messages changed after a sequence number.
        let indexes = [
            Index::create()
                .name("idx_messages_room_change")
                .table(Messages::Table)
                .col(Messages::ChatRoomId)
                .col(Actions::ChangeSeq)
                .to_owned(),
            Index::create()
                .name("idx_messages_pair_change")
                .table(Messages::Table)
                .col(Messages::UserId)
                .col(Messages::RecipientId)
                .col(Actions::ChangeSeq)
                .to_owned(),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(MessageReactions::Table)
                    .if_not_exists()
                    .col(big_integer(MessageReactions::MessageId))
                    .col(big_integer(MessageReactions::UserId))
                    .col(string_len(MessageReactions::Emoji, 64))
                    .col(timestamp_with_time_zone(MessageReactions::CreatedAt))
                    // One person adds a given emoji to a message once.
                    .primary_key(
                        Index::create()
                            .col(MessageReactions::MessageId)
                            .col(MessageReactions::UserId)
                            .col(MessageReactions::Emoji),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reactions_message")
                            .from(MessageReactions::Table, MessageReactions::MessageId)
                            .to(Messages::Table, Messages::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reactions_user")
                            .from(MessageReactions::Table, MessageReactions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        // Named counters, bumped and read in the transaction of the change they number: on
        // PostgreSQL the row lock orders concurrent changes by commit, so a reader that sees value
        // N has every change numbered up to N visible too.
        manager
            .create_table(
                Table::create()
                    .table(Counters::Table)
                    .if_not_exists()
                    .col(string_len(Counters::Name, 32).primary_key())
                    .col(big_integer(Counters::Value).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(Counters::Table)
                    .columns([Counters::Name, Counters::Value])
                    .values_panic(["message_changes".into(), 0i64.into()])
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Counters::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(MessageReactions::Table).to_owned()).await?;
        for name in ["idx_messages_room_change", "idx_messages_pair_change"] {
            manager.drop_index(Index::drop().name(name).table(Messages::Table).to_owned()).await?;
        }
        for column in [Actions::ReplyToId, Actions::ChangeSeq] {
            manager.alter_table(Table::alter().table(Messages::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Actions {
    ReplyToId,
    ChangeSeq,
}

#[derive(DeriveIden)]
enum MessageReactions {
    Table,
    MessageId,
    UserId,
    Emoji,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Counters {
    Table,
    Name,
    Value,
}
