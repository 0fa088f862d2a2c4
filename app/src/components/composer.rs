//! The composer: a textarea that grows, Enter to send, Shift+Enter for a new line, a counter near
//! the limit. Without JavaScript it is a plain form that posts to `/api/messages/send` (to a
//! person) or `/api/groups/send` (to a group).

use leptos::html::Textarea;
use leptos::prelude::*;

use leptos::server_fn::ServerFn;

use crate::api::groups::SendToGroup;
use crate::api::messages::SendMessage;
use crate::error::AppError;
use crate::model::{ConversationRef, MESSAGE_MAX_CHARS, uuid_v4};

/// Show the counter from this many characters on.
const COUNTER_FROM: usize = MESSAGE_MAX_CHARS - 500;

/// A new `client_id`, from the browser's cryptographic random source.
fn new_client_id() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(crypto) = window().crypto() {
        let _ = crypto.get_random_values_with_u8_array(&mut bytes);
    }
    uuid_v4(bytes)
}

#[component]
pub fn Composer(
    /// Whom the message goes to: a person or a group.
    conversation: ConversationRef,
    /// The `client_id` a plain-form (no JavaScript) post uses.
    compose_id: String,
    send: Callback<(String, String)>,
    send_error: RwSignal<Option<AppError>>,
    /// Called on every keystroke that leaves text in the box (the caller throttles whispers).
    on_typing: Callback<()>,
) -> impl IntoView {
    // A plain-form send that failed comes back in the URL; the action of its endpoint picks it up.
    let (action, field, to, form_error): (_, _, _, Signal<Option<AppError>>) = match conversation {
        ConversationRef::Direct(peer) => {
            let form_send = ServerAction::<SendMessage>::new();
            let error = Signal::derive(move || form_send.value().get().and_then(Result::err));
            (SendMessage::PATH, "recipient_id", peer, error)
        }
        ConversationRef::Group(room) => {
            let form_send = ServerAction::<SendToGroup>::new();
            let error = Signal::derive(move || form_send.value().get().and_then(Result::err));
            (SendToGroup::PATH, "room_id", room, error)
        }
    };
    let text = RwSignal::new(String::new());
    let hydrated = RwSignal::new(false);
    let textarea = NodeRef::<Textarea>::new();
    Effect::new(move |_| {
        hydrated.set(true);
        if let Some(el) = textarea.get() {
            // Whatever was typed before the page hydrated is kept, not lost.
            text.set(el.value());
            let _ = el.focus();
        }
    });

    let chars = move || text.with(|t| t.trim().chars().count());
    let too_long = move || chars() > MESSAGE_MAX_CHARS;
    let blank = move || text.with(|t| t.trim().is_empty());

    let grow = move || {
        if let Some(el) = textarea.get_untracked() {
            let html: &web_sys::HtmlElement = el.as_ref();
            let style = html.style();
            let _ = style.set_property("height", "auto");
            let _ = style.set_property("height", &format!("{}px", el.scroll_height().min(200)));
        }
    };
    let submit = move || {
        // The element is the truth: typing may have started before hydration attached handlers.
        if let Some(el) = textarea.get_untracked() {
            text.set(el.value());
        }
        if blank() || too_long() {
            return;
        }
        send.run((new_client_id(), text.get_untracked()));
        text.set(String::new());
        request_animation_frame(grow);
    };

    let error = move || {
        send_error
            .get()
            .or_else(|| form_error.get())
            .map(|e| view! { <p class="composer-error" role="alert">{e.to_string()}</p> })
    };

    view! {
        {error}
        <form
            class="composer"
            method="post"
            action=action
            on:submit=move |ev| {
                ev.prevent_default();
                submit();
            }
        >
            <input type="hidden" name=field value=to />
            <input type="hidden" name="client_id" value=compose_id />
            <label class="visually-hidden" for="composer-body">"Message"</label>
            <textarea
                id="composer-body"
                name="body"
                rows="1"
                placeholder="Write a message…"
                autofocus
                node_ref=textarea
                prop:value=move || text.get()
                on:input:target=move |ev| {
                    let value = ev.target().value();
                    if !value.trim().is_empty() {
                        on_typing.run(());
                    }
                    text.set(value);
                    grow();
                }
                on:keydown=move |ev| {
                    if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        submit();
                    }
                }
            ></textarea>
            {move || {
                (chars() >= COUNTER_FROM)
                    .then(|| {
                        view! {
                            <span class="counter" class:over=too_long() aria-live="polite">
                                {format!("{} / {MESSAGE_MAX_CHARS}", chars())}
                            </span>
                        }
                    })
            }}
            <button class="button send" type="submit" disabled=move || hydrated.get() && (blank() || too_long())>
                "Send"
            </button>
        </form>
    }
}
