//! `/chat`: the two-pane chat shell (contacts on the left, the open conversation on the right).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::api::auth::{me, Logout};
use crate::error::AppError;
use crate::model::CurrentUser;
use crate::pages::ErrorBanner;

#[component]
pub fn ChatPage() -> impl IntoView {
    let user = Resource::new_blocking(|| (), |_| me());
    view! {
        <Title text="Banter" />
        <Suspense fallback=|| view! { <div class="chat-layout skeleton" aria-busy="true"></div> }>
            {move || Suspend::new(async move {
                match user.await {
                    Ok(user) => view! { <ChatShell user /> }.into_any(),
                    Err(AppError::Unauthorized) => view! { <Redirect path="/login" /> }.into_any(),
                    Err(error) => view! { <ErrorBanner error /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn ChatShell(user: CurrentUser) -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    view! {
        <div class="chat-layout">
            <header class="topbar">
                <span class="brand">"Banter"</span>
                <span class="whoami" data-testid="whoami">
                    {user.name.clone()}
                </span>
                <ActionForm action=logout attr:class="inline-form">
                    <button class="button button-ghost" type="submit">
                        "Sign out"
                    </button>
                </ActionForm>
            </header>
            <aside class="contacts" aria-label="Contacts">
                <p class="empty-state">"No conversations yet."</p>
            </aside>
            <main class="conversation" aria-label="Conversation">
                <div class="empty-state">
                    <h2>{format!("Welcome, {}", user.name)}</h2>
                    <p>"Pick someone on the left to start chatting."</p>
                </div>
            </main>
        </div>
    }
}
