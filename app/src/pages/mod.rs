//! Pages, one module per route, and the small pieces they share.

pub mod auth;
pub mod chat;
pub mod group;
pub mod home;
pub mod search;

use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <main class="centered">
            <div class="card">
                <h1>"Page not found"</h1>
                <p>"There is nothing at this address."</p>
                <a href="/">"Back to Banter"</a>
            </div>
        </main>
    }
}
