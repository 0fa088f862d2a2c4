//! The chat's building blocks: the contact list, the conversation, the composer, and the small
//! pieces they share.

pub mod attachment_view;
pub mod attachments;
pub mod composer;
pub mod contacts;
pub mod conversation;
pub mod emoji_picker;
pub mod lazy;
pub mod live;
pub mod message_body;
pub mod notify;
pub mod retry;
pub mod saved;
pub mod uploads;

use leptos::prelude::*;

use crate::error::AppError;
use crate::text::initials;

/// `N` bytes from the browser's cryptographic random source (zeros where there is none: on the
/// server, which never calls it).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if let Ok(crypto) = window().crypto() {
        let _ = crypto.get_random_values_with_u8_array(&mut bytes);
    }
    bytes
}

/// Whether the page is on screen: its tab is the one shown, its window not minimised.
pub(crate) fn document_visible() -> bool {
    document().visibility_state() == web_sys::VisibilityState::Visible
}

/// Shared state of the open chat shell.
#[derive(Clone, Copy)]
pub struct ChatState {
    /// Bumped whenever the contact list may have changed (a send, a read).
    pub contacts_version: RwSignal<u32>,
    /// Each listed conversation's name, and whether I muted it (for notifications).
    pub directory: StoredValue<std::collections::HashMap<crate::model::ConversationRef, (String, bool)>>,
}

impl ChatState {
    pub fn provide() -> Self {
        let state = Self { contacts_version: RwSignal::new(0), directory: StoredValue::new(Default::default()) };
        provide_context(state);
        state
    }

    pub fn contacts_changed(&self) {
        self.contacts_version.update(|v| *v += 1);
    }
}

/// A round avatar with initials; its colour is derived from the user id, so it is stable.
#[component]
pub fn Avatar(id: i64, name: String) -> impl IntoView {
    let hue = (id.unsigned_abs() * 47) % 360;
    view! {
        <span class="avatar" style=format!("--hue: {hue}") aria-hidden="true">
            {initials(&name)}
        </span>
    }
}

/// A readable error in place of content that could not load, with a way to try again (`action`,
/// "Retry" unless given). Without JavaScript, it reloads the page.
#[component]
pub fn ErrorBanner(
    error: AppError,
    #[prop(optional, into)] on_retry: Option<Callback<()>>,
    #[prop(optional)] action: Option<&'static str>,
) -> impl IntoView {
    view! {
        <div class="banner banner-error" role="alert">
            <span>{error.to_string()}</span>
            <a
                class="button button-small"
                href=""
                on:click=move |ev| {
                    if let Some(retry) = on_retry {
                        ev.prevent_default();
                        retry.run(());
                    }
                }
            >
                {action.unwrap_or("Retry")}
            </a>
        </div>
    }
}
