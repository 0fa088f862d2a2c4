//! `users`: accounts. The model is deliberately not `Serialize`: it carries the password hash.

use sea_orm::entity::prelude::*;

use crate::ssr::password::PasswordHash;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    /// Always lower-case (see `validation::email`), so the unique index is case-insensitive.
    #[sea_orm(unique)]
    pub email: String,
    pub password_hash: PasswordHash,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl From<Model> for crate::model::CurrentUser {
    fn from(user: Model) -> Self {
        Self { id: user.id, name: user.name, email: user.email }
    }
}
