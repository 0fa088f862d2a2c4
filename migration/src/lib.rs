//! The database schema, as ordered sea-orm migrations. The server runs them at start-up.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_create_users;
mod m20261126_000002_create_chat_rooms;
mod m20261126_000003_create_messages;
mod m20261126_000004_create_sessions;
mod m20261126_000005_create_settings;
mod m20261202_000006_group_membership;
mod m20261202_000007_message_actions;
mod m20261203_000008_message_search;
mod m20261203_000009_conversation_mutes;
mod m20261203_000010_scoped_search;
mod m20261203_000011_attachments;
mod m20261203_000012_online_status;
mod m20261205_000013_received_index;
pub mod search_index;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_users::Migration),
            Box::new(m20261126_000002_create_chat_rooms::Migration),
            Box::new(m20261126_000003_create_messages::Migration),
            Box::new(m20261126_000004_create_sessions::Migration),
            Box::new(m20261126_000005_create_settings::Migration),
            Box::new(m20261202_000006_group_membership::Migration),
            Box::new(m20261202_000007_message_actions::Migration),
            Box::new(m20261203_000008_message_search::Migration),
            Box::new(m20261203_000009_conversation_mutes::Migration),
            Box::new(m20261203_000010_scoped_search::Migration),
            Box::new(m20261203_000011_attachments::Migration),
            Box::new(m20261203_000012_online_status::Migration),
            Box::new(m20261205_000013_received_index::Migration),
        ]
    }
}
