//! `settings`: values the server generates once and must keep across restarts (the embedded
//! Pusher server's app id, key and secret when none are configured).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Settings::Table)
                    .if_not_exists()
                    .col(string_len(Settings::Name, 100).primary_key())
                    .col(string_len(Settings::Value, 500))
                    .col(timestamp_with_time_zone(Settings::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Settings::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
pub enum Settings {
    Table,
    Name,
    Value,
    CreatedAt,
}
