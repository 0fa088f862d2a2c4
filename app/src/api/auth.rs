//! `/api/auth/*` and `/api/me`: accounts and sessions.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::CurrentUser;

/// `POST /api/auth/register`: creates the account and signs it in.
#[server(prefix = "/api", endpoint = "auth/register")]
pub async fn register(
    name: String,
    email: String,
    password: String,
    password_confirmation: String,
) -> Result<CurrentUser, AppError> {
    use crate::ssr::{accounts, begin_session, state};
    let state = state()?;
    let user = accounts::register(&state.db, &name, &email, &password, &password_confirmation).await?;
    begin_session(user.id).await?;
    tracing::info!(user_id = user.id, "account registered");
    leptos_axum::redirect("/chat");
    Ok(user.into())
}

/// `POST /api/auth/login`: signs in with a fresh session id.
#[server(prefix = "/api", endpoint = "auth/login")]
pub async fn login(email: String, password: String) -> Result<CurrentUser, AppError> {
    use crate::ssr::{accounts, begin_session, client_address, state};
    let state = state()?;
    let user = accounts::sign_in(&state.db, &state.login_limiter, &email, &password, client_address()).await?;
    begin_session(user.id).await?;
    leptos_axum::redirect("/chat");
    Ok(user.into())
}

/// `POST /api/auth/logout`: ends the session server-side.
#[server(prefix = "/api", endpoint = "auth/logout")]
pub async fn logout() -> Result<(), AppError> {
    crate::ssr::end_session().await?;
    leptos_axum::redirect("/login");
    Ok(())
}

/// `POST /api/me`: who is signed in (401 when nobody).
#[server(prefix = "/api", endpoint = "me")]
pub async fn me() -> Result<CurrentUser, AppError> {
    Ok(crate::ssr::require_user().await?.into())
}
