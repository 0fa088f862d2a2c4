//! The composer: a textarea that grows, Enter to send, Shift+Enter for a new line, a counter near
//! the limit, an emoji picker, and `:shortcode` suggestions. Without JavaScript it is a plain form
//! that posts to `/api/messages/send` (to a person) or `/api/groups/send` (to a group).
//!
//! It takes input from the first paint, before the app has loaded (seconds on a slow network):
//! what is typed then is kept when the app takes over, and until it does, Enter posts the plain
//! form (`EARLY_ENTER_SCRIPT` in the page's head).

use leptos::html::{Button, Input, Textarea};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos::task::spawn_local;

use super::emoji_picker::{LazyEmojiPicker, prefetch_picker, table as emoji_table};
use crate::api::groups::SendToGroup;
use crate::api::messages::SendMessage;
use crate::components::saved;
use crate::components::uploads::{UploadTray, Uploads, files_of};
use crate::emoji::shortcode_at;
use crate::error::AppError;
use crate::model::{Attachment, ConversationRef, CurrentUser, MESSAGE_MAX_CHARS, attachment_limits, uuid_v4};
use crate::text::{byte_offset_of_utf16, utf16_len};

/// Show the counter from this many characters on.
const COUNTER_FROM: usize = MESSAGE_MAX_CHARS - 500;
/// Most `:shortcode` suggestions shown at once.
const SUGGESTIONS_MAX: usize = 6;
/// The suggestion list's id, and the prefix of its options' ids.
const SUGGESTIONS_ID: &str = "composer-emoji-suggestions";

/// One `:shortcode` suggestion.
#[derive(Clone, PartialEq)]
struct Suggestion {
    emoji: String,
    name: String,
    shortcode: String,
}

/// The open suggestion list: what it offers, and which one Enter or Tab takes.
#[derive(Clone, PartialEq)]
struct Completion {
    suggestions: Vec<Suggestion>,
    active: usize,
}

/// Whether the shared emoji table has been asked for by this composer.
#[derive(Clone, Copy, PartialEq)]
enum TableState {
    NotAsked,
    Loading,
    Loaded,
    Failed,
}

/// The text field's caret (or selection) as byte offsets into `value`.
fn selection(el: &web_sys::HtmlTextAreaElement, value: &str) -> (usize, usize) {
    let at =
        |units: Result<Option<u32>, _>| units.ok().flatten().map_or(value.len(), |u| byte_offset_of_utf16(value, u));
    let start = at(el.selection_start());
    (start, at(el.selection_end()).max(start))
}

/// Replaces `value[from..to]` with `with` in the field, puts the caret after it, and returns the
/// new text.
fn replace_in_field(el: &web_sys::HtmlTextAreaElement, value: &str, from: usize, to: usize, with: &str) -> String {
    let text = format!("{}{with}{}", &value[..from], &value[to..]);
    el.set_value(&text);
    let caret = utf16_len(&text[..from + with.len()]);
    let _ = el.set_selection_range(caret, caret);
    text
}

/// A new `client_id`, from the browser's cryptographic random source.
fn new_client_id() -> String {
    uuid_v4(super::random_bytes())
}

/// The composer's height follows its text, up to 200 px (then it scrolls). A browser that sizes
/// it itself (`field-sizing: content`, which also serves before hydration and without JavaScript)
/// is left to do so: it keeps the height right when the window is resized, too.
fn fit_height(el: &web_sys::HtmlTextAreaElement) {
    let html: &web_sys::HtmlElement = el.as_ref();
    let style = html.style();
    let sized_by_css = window()
        .get_computed_style(el)
        .ok()
        .flatten()
        .and_then(|computed| computed.get_property_value("field-sizing").ok())
        .is_some_and(|value| value == "content");
    if sized_by_css {
        let _ = style.remove_property("height");
        return;
    }
    let _ = style.set_property("height", "auto");
    // The height is the border box's (box-sizing), so the borders count as well as the text:
    // without them the first line's top was scrolled out of sight.
    let borders = html.offset_height() - el.client_height();
    let _ = style.set_property("height", &format!("{}px", (el.scroll_height() + borders).min(200)));
}

#[component]
pub fn Composer(
    /// Whom the message goes to: a person or a group.
    conversation: ConversationRef,
    /// The `client_id` a plain-form (no JavaScript) post uses.
    compose_id: String,
    send: Callback<(String, String, Vec<Attachment>)>,
    send_error: RwSignal<Option<AppError>>,
    /// Called on every keystroke that leaves text in the box (the caller throttles whispers).
    on_typing: Callback<()>,
    /// Files chosen for the next message (also dropped on the conversation).
    uploads: Uploads,
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
    let emoji_button = NodeRef::<Button>::new();
    let file_input = NodeRef::<Input>::new();
    let picker_open = RwSignal::new(false);
    let completion = RwSignal::new(None::<Completion>);
    let table_state = RwSignal::new(TableState::NotAsked);
    // The draft of each conversation is kept in this browser as it is typed, and put back when
    // the conversation opens again (after a reload too); sending clears it.
    let draft_key = StoredValue::new(saved::key("draft", expect_context::<CurrentUser>().id, conversation));
    Effect::new(move |_| {
        if let Some(el) = textarea.get() {
            // Whatever was typed before the page hydrated is kept, not lost; else the draft.
            let typed = el.value();
            let draft = draft_key.with_value(|k| saved::read(k)).unwrap_or_default();
            text.set(if typed.is_empty() { draft } else { typed });
            let _ = el.focus();
            request_animation_frame(move || {
                if let Some(el) = textarea.try_get_untracked().flatten() {
                    fit_height(&el);
                }
            });
        }
        hydrated.set(true);
    });
    Effect::new(move |_| {
        let text = text.get();
        if hydrated.get() {
            draft_key.with_value(|k| saved::write(k, if text.trim().is_empty() { "" } else { &text }));
        }
    });

    let chars = move || text.with(|t| t.trim().chars().count());
    let too_long = move || chars() > MESSAGE_MAX_CHARS;
    let blank = move || text.with(|t| t.trim().is_empty());

    let grow = move || {
        if let Some(el) = textarea.try_get_untracked().flatten() {
            fit_height(&el);
        }
    };
    let submit = move || {
        // The element is the truth: typing may have started before hydration attached handlers.
        if let Some(el) = textarea.try_get_untracked().flatten() {
            text.set(el.value());
        }
        let Some(files) = uploads.ready() else {
            uploads.refusal.set(Some("wait until every file is up, or remove the ones that failed".into()));
            return;
        };
        if (blank() && files.is_empty()) || too_long() {
            return;
        }
        send.run((new_client_id(), text.get_untracked(), files));
        uploads.clear();
        text.set(String::new());
        completion.set(None);
        request_animation_frame(grow);
    };
    // After text was put in by the picker or a suggestion: as if typed.
    let inserted = move |new_text: String| {
        text.set(new_text);
        on_typing.run(());
        request_animation_frame(grow);
    };

    // `:shortcode` suggestions: offered while the caret ends a `:fragment`, from the emoji table
    // (fetched the first time one is typed).
    let refresh_completion = move || {
        let Some(el) = textarea.try_get_untracked().flatten() else { return };
        let value = el.value();
        let (start, end) = selection(&el, &value);
        let fragment = (start == end).then(|| shortcode_at(&value, end)).flatten();
        let Some((_, name)) = fragment else {
            completion.set(None);
            return;
        };
        let Some(table) = emoji_table::cached() else {
            if table_state.get_untracked() == TableState::NotAsked {
                table_state.set(TableState::Loading);
                spawn_local(async move {
                    let loaded = emoji_table::load().await.is_ok();
                    table_state.set(if loaded { TableState::Loaded } else { TableState::Failed });
                });
            }
            return;
        };
        let suggestions: Vec<Suggestion> = table
            .complete(name, SUGGESTIONS_MAX)
            .into_iter()
            .map(|e| Suggestion {
                emoji: e.emoji.clone(),
                name: e.name.clone(),
                shortcode: e.shortcode_for(name).to_owned(),
            })
            .collect();
        let active = completion.with_untracked(|c| {
            // Keep the highlighted one while it is still offered.
            c.as_ref()
                .and_then(|c| c.suggestions.get(c.active))
                .and_then(|was| suggestions.iter().position(|s| s.emoji == was.emoji))
                .unwrap_or(0)
        });
        completion.set((!suggestions.is_empty()).then_some(Completion { suggestions, active }));
    };
    // Once the table arrives, offer what the caret is at by then.
    Effect::new(move |_| {
        if table_state.get() == TableState::Loaded {
            refresh_completion();
        }
    });
    let accept = move |index: usize| {
        let Some(emoji) = completion.with_untracked(|c| c.as_ref()?.suggestions.get(index).map(|s| s.emoji.clone()))
        else {
            return;
        };
        completion.set(None);
        let Some(el) = textarea.try_get_untracked().flatten() else { return };
        let value = el.value();
        let (_, caret) = selection(&el, &value);
        if let Some((colon, _)) = shortcode_at(&value, caret) {
            inserted(replace_in_field(&el, &value, colon, caret, &emoji));
        }
    };

    let pick_emoji = Callback::new(move |emoji: String| {
        picker_open.set(false);
        if let Some(el) = textarea.try_get_untracked().flatten() {
            let value = el.value();
            let (start, end) = selection(&el, &value);
            inserted(replace_in_field(&el, &value, start, end, &emoji));
            let _ = el.focus();
        }
    });
    let close_picker = Callback::new(move |()| {
        picker_open.set(false);
        if let Some(button) = emoji_button.get_untracked() {
            let _ = button.focus();
        }
    });

    // A refused plain-form send with files (no JavaScript) comes back as `?files_error=…`.
    let query = leptos_router::hooks::use_query_map();
    let files_error = move || query.with(|q| q.get("files_error"));
    let error = move || {
        send_error
            .get()
            .map(|e| e.to_string())
            .or_else(|| form_error.get().map(|e| e.to_string()))
            .or_else(files_error)
            .map(|e| view! { <p class="composer-error" role="alert">{e}</p> })
    };
    let files_client_id = format!("{compose_id}-files");
    let option_id = |index: usize| format!("{SUGGESTIONS_ID}-{index}");
    let suggestion_list = move || {
        completion.get().map(|Completion { suggestions, active }| {
            let options = suggestions
                .into_iter()
                .enumerate()
                .map(|(i, Suggestion { emoji, name, shortcode })| {
                    view! {
                        <li
                            id=option_id(i)
                            role="option"
                            class="emoji-suggestion"
                            aria-selected=if i == active { "true" } else { "false" }
                            // Keeps focus (and the caret) in the text field.
                            on:mousedown=|ev| ev.prevent_default()
                            on:click=move |_| accept(i)
                        >
                            <span class="emoji-suggestion-emoji" aria-hidden="true">{emoji}</span>
                            <span class="emoji-suggestion-name">{name}</span>
                            <span class="emoji-suggestion-code">{format!(":{shortcode}:")}</span>
                        </li>
                    }
                })
                .collect_view();
            view! {
                <ul class="emoji-suggestions" id=SUGGESTIONS_ID role="listbox" aria-label="Emoji suggestions">
                    {options}
                </ul>
            }
        })
    };

    view! {
        {error}
        <div class="composer-wrap">
            <form
                class="composer"
                method="post"
                action=action
                // The app has taken the composer over: the page's early Enter handler steps aside.
                data-ready=move || hydrated.get().then_some("true")
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
                    aria-autocomplete=move || hydrated.get().then_some("list")
                    aria-controls=move || completion.with(|c| c.is_some().then_some(SUGGESTIONS_ID))
                    aria-activedescendant=move || completion.with(|c| c.as_ref().map(|c| option_id(c.active)))
                    prop:value=move || text.get()
                    on:input:target=move |ev| {
                        let value = ev.target().value();
                        if !value.trim().is_empty() {
                            on_typing.run(());
                        }
                        text.set(value);
                        grow();
                        refresh_completion();
                    }
                    on:keydown=move |ev| {
                        if ev.is_composing() {
                            return;
                        }
                        let offered = completion.with_untracked(|c| c.as_ref().map(|c| (c.suggestions.len(), c.active)));
                        if let Some((count, active)) = offered {
                            let step = |by: usize| {
                                completion.update(|c| {
                                    if let Some(c) = c {
                                        c.active = (active + by) % count;
                                    }
                                })
                            };
                            match ev.key().as_str() {
                                "ArrowDown" => {
                                    ev.prevent_default();
                                    step(1);
                                    return;
                                }
                                "ArrowUp" => {
                                    ev.prevent_default();
                                    step(count - 1);
                                    return;
                                }
                                "Enter" | "Tab" if !ev.shift_key() => {
                                    ev.prevent_default();
                                    accept(active);
                                    return;
                                }
                                "Escape" => {
                                    ev.prevent_default();
                                    ev.stop_propagation();
                                    completion.set(None);
                                    return;
                                }
                                _ => {}
                            }
                        }
                        if ev.key() == "Enter" && !ev.shift_key() {
                            ev.prevent_default();
                            submit();
                        }
                    }
                    // The caret moved without typing: what it is at may have changed.
                    on:keyup=move |ev| {
                        if matches!(ev.key().as_str(), "ArrowLeft" | "ArrowRight" | "Home" | "End") {
                            refresh_completion();
                        }
                    }
                    on:click=move |_| refresh_completion()
                    on:focus=move |_| picker_open.set(false)
                    on:blur=move |_| completion.set(None)
                    // A pasted image (or file) is attached; pasted text is typed as usual.
                    on:paste=move |ev| {
                        let files = files_of(ev.clipboard_data().and_then(|data| data.files()));
                        if !files.is_empty() {
                            ev.prevent_default();
                            uploads.add(files);
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
                // Only once the page runs: without JavaScript the button could do nothing.
                <Show when=move || hydrated.get()>
                    <button
                        class="button button-ghost emoji-button"
                        type="button"
                        node_ref=emoji_button
                        aria-label="Emoji"
                        aria-haspopup="dialog"
                        aria-expanded=move || if picker_open.get() { "true" } else { "false" }
                        on:click=move |_| picker_open.update(|open| *open = !*open)
                        on:pointerenter=move |_| prefetch_picker()
                        on:focus=move |_| prefetch_picker()
                    >
                        <span aria-hidden="true">"☺"</span>
                    </button>
                </Show>
                <Show when=move || hydrated.get()>
                    <input
                        class="visually-hidden"
                        type="file"
                        multiple
                        tabindex="-1"
                        aria-hidden="true"
                        node_ref=file_input
                        on:change:target=move |ev| {
                            let input = ev.target();
                            uploads.add(files_of(input.files()));
                            input.set_value("");
                        }
                    />
                    <button
                        class="button button-ghost attach-button"
                        type="button"
                        aria-label="Attach files"
                        title=format!("Attach files ({})", attachment_limits())
                        on:click=move |_| {
                            if let Some(input) = file_input.get_untracked() {
                                input.click();
                            }
                        }
                    >
                        <span aria-hidden="true">"📎"</span>
                    </button>
                </Show>
                <button
                    class="button send"
                    type="submit"
                    disabled=move || hydrated.get() && ((blank() && uploads.is_empty()) || too_long())
                >
                    "Send"
                </button>
            </form>
            <UploadTray uploads />
            // Without JavaScript: files go by a form of their own (multipart), with an optional caption.
            <Show when=move || !hydrated.get()>
                <form class="attach-form" method="post" action="/files/send" enctype="multipart/form-data">
                    <input type="hidden" name="to" value=conversation.key() />
                    <input type="hidden" name="client_id" value=files_client_id.clone() />
                    <label class="attach-label">
                        {format!("Attach files ({})", attachment_limits())}
                        <input type="file" name="file" multiple required />
                    </label>
                    <label class="attach-label">
                        "Caption (optional)"
                        <input type="text" name="body" maxlength=MESSAGE_MAX_CHARS />
                    </label>
                    <button class="button" type="submit">"Send files"</button>
                </form>
            </Show>
            {suggestion_list}
            <Show when=move || picker_open.get()>
                <LazyEmojiPicker on_pick=pick_emoji on_close=close_picker label="Choose an emoji" />
            </Show>
        </div>
    }
    // Erased: the page's view type nests too deeply for the compiler otherwise.
    .into_any()
}
