//! `/api/auth/*` and `/api/me`: accounts and sessions.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{ChatSession, CurrentUser};

/// `POST /api/auth/register`: creates the account and signs it in.
#[server(prefix = "/api", endpoint = "auth/register")]
pub async fn register(
    name: String,
    email: String,
    password: String,
    password_confirmation: String,
) -> Result<CurrentUser, AppError> {
    use crate::ssr::{accounts, request};
    let request = request()?;
    let user = accounts::sign_up(
        request.db(),
        &request.state.account_limiter,
        request.client_address(),
        &name,
        &email,
        &password,
        &password_confirmation,
    )
    .await?;
    request.begin_session(user.id).await?;
    tracing::info!(user_id = user.id, "account registered");
    request.redirect("/chat");
    Ok(user.into())
}

/// `POST /api/auth/login`: signs in with a fresh session id.
#[server(prefix = "/api", endpoint = "auth/login")]
pub async fn login(email: String, password: String) -> Result<CurrentUser, AppError> {
    use crate::ssr::{accounts, request};
    let request = request()?;
    let user =
        accounts::sign_in(request.db(), &request.state.account_limiter, &email, &password, request.client_address())
            .await?;
    request.begin_session(user.id).await?;
    request.redirect("/chat");
    Ok(user.into())
}

/// `POST /api/auth/logout`: ends the session server-side.
#[server(prefix = "/api", endpoint = "auth/logout")]
pub async fn logout() -> Result<(), AppError> {
    let request = crate::ssr::request()?;
    request.end_session().await?;
    request.redirect("/login");
    Ok(())
}

/// `POST /api/me`: who is signed in (401 when nobody).
#[server(prefix = "/api", endpoint = "me")]
pub async fn me() -> Result<CurrentUser, AppError> {
    let request = crate::ssr::request()?;
    Ok(request.require_user().await?.into())
}

/// `POST /api/session`: what the chat shell starts from: who you are, and the public realtime
/// settings (the Pusher key and where to connect; never the secret).
#[server(prefix = "/api", endpoint = "session")]
pub async fn session() -> Result<ChatSession, AppError> {
    let request = crate::ssr::request()?;
    let user = request.require_user().await?;
    Ok(ChatSession { user: user.into(), realtime: request.state.realtime.public.clone() })
}
