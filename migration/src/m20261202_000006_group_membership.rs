//! Group membership and system lines: a participant row is kept after its member leaves or is
//! removed (`left_at`, and `visible_up_to`, the newest message they may still read), admins are
//! marked, and a message says whether a person wrote it or the server wrote it about the group.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261126_000002_create_chat_rooms::ChatRoomParticipants;
use crate::m20261126_000003_create_messages::Messages;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        let participant_columns = [
            boolean(Participants::IsAdmin).default(false).to_owned(),
            timestamp_with_time_zone_null(Participants::LeftAt),
            big_integer_null(Participants::VisibleUpTo),
        ];
        for column in participant_columns {
            manager
                .alter_table(Table::alter().table(ChatRoomParticipants::Table).add_column(column).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(string_len(MessageKind::Kind, 16).default("text"))
                    .to_owned(),
            )
            .await?;
        // The member panel and "who is in this group" read members of one room, current first.
        manager
            .create_index(
                Index::create()
                    .name("idx_participants_room_left")
                    .table(ChatRoomParticipants::Table)
                    .col(ChatRoomParticipants::ChatRoomId)
                    .col(Participants::LeftAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_participants_room_left").table(ChatRoomParticipants::Table).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(Messages::Table).drop_column(MessageKind::Kind).to_owned()).await?;
        for column in [Participants::IsAdmin, Participants::LeftAt, Participants::VisibleUpTo] {
            manager
                .alter_table(Table::alter().table(ChatRoomParticipants::Table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Participants {
    IsAdmin,
    LeftAt,
    VisibleUpTo,
}

#[derive(DeriveIden)]
enum MessageKind {
    Kind,
}
