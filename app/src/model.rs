//! Wire types shared by the server and the browser.

use serde::{Deserialize, Serialize};

/// The signed-in user as the browser sees it. Never carries the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: i64,
    pub name: String,
    pub email: String,
}
