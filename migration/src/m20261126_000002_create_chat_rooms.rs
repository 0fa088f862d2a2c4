//! `chat_rooms` and `chat_room_participants` (group chat). A participant carries the id of the
//! newest message it has read, which is all an unread count for a room needs.

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
                    .table(ChatRooms::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ChatRooms::Id))
                    .col(string_len(ChatRooms::Name, 100))
                    .col(big_integer_null(ChatRooms::CreatedBy))
                    .col(timestamp_with_time_zone(ChatRooms::CreatedAt))
                    .col(timestamp_with_time_zone(ChatRooms::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_chat_rooms_created_by")
                            .from(ChatRooms::Table, ChatRooms::CreatedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ChatRoomParticipants::Table)
                    .if_not_exists()
                    .col(big_integer(ChatRoomParticipants::ChatRoomId))
                    .col(big_integer(ChatRoomParticipants::UserId))
                    .col(big_integer_null(ChatRoomParticipants::LastReadMessageId))
                    .col(timestamp_with_time_zone(ChatRoomParticipants::JoinedAt))
                    .primary_key(
                        Index::create().col(ChatRoomParticipants::ChatRoomId).col(ChatRoomParticipants::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_participants_room")
                            .from(ChatRoomParticipants::Table, ChatRoomParticipants::ChatRoomId)
                            .to(ChatRooms::Table, ChatRooms::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_participants_user")
                            .from(ChatRoomParticipants::Table, ChatRoomParticipants::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // "Which rooms am I in?" is asked by user, not by room.
        manager
            .create_index(
                Index::create()
                    .name("idx_participants_user")
                    .table(ChatRoomParticipants::Table)
                    .col(ChatRoomParticipants::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ChatRoomParticipants::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(ChatRooms::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
pub enum ChatRooms {
    Table,
    Id,
    Name,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum ChatRoomParticipants {
    Table,
    ChatRoomId,
    UserId,
    LastReadMessageId,
    JoinedAt,
}
