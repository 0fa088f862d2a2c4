//! `online_status`: who is online, one row per person who ever was. A person is online while
//! their user channel is occupied; the realtime server says so (the embedded one directly, an
//! external one by webhook), and `changed_at` (unix microseconds of the change that wrote the
//! row) keeps changes that arrive out of order, or from several instances, from undoing newer ones.

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
                    .table(OnlineStatus::Table)
                    .if_not_exists()
                    .col(big_integer(OnlineStatus::UserId).primary_key())
                    .col(boolean(OnlineStatus::Online).default(false))
                    .col(big_integer(OnlineStatus::ChangedAt).default(0))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_online_status_user")
                            .from(OnlineStatus::Table, OnlineStatus::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(OnlineStatus::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum OnlineStatus {
    Table,
    UserId,
    Online,
    ChangedAt,
}
