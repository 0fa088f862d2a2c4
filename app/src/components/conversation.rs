//! The open conversation, with a person or a group: header, the message log (newest at the bottom,
//! older pages on scroll up), read receipts or "Seen by", the typing indicator, and the composer.
//! What the log holds and every ordering decision (merging, the outbox, catching up, read marks)
//! live in [`Timeline`]; this component draws it and does its I/O: server calls, live events,
//! timers. The server calls below are the one place that tells a group from a person.

use chrono::{DateTime, Utc};
use leptos::html::Div;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;

use crate::api::groups::{group_messages, group_messages_since, mark_group_read, send_to_group};
use crate::api::messages::{
    DeleteMessage, EditMessage, MuteConversation, React, Unreact, delete_message, edit_message, mark_as_read, messages,
    messages_since, mute_conversation, react, send_message, unreact,
};
use crate::components::attachments::AttachmentList;
use crate::components::composer::Composer;
use crate::components::emoji_picker::{LazyEmojiPicker, prefetch_picker};
use crate::components::live::{Live, TypingChannel};
use crate::components::message_body::MessageBody;
use crate::components::retry::Retry;
use crate::components::saved;
use crate::components::{Avatar, ChatState, ErrorBanner, document_visible};
use crate::error::AppError;
use crate::model::{
    Attachment, ChatMessage, ConversationPage, ConversationRef, ConversationUpdate, CurrentUser, EDIT_WINDOW_MINUTES,
    MESSAGE_MAX_CHARS, Reaction, ReplyQuote, TOMBSTONE,
};
use crate::realtime::{Typing, chat_channel, room_presence_channel};
use crate::time::{self, LocalClock};
use crate::timeline::{Applied, Draft, Entry, MessageEntry, Row, SendResult, Status, Timeline, Typers, Unsent};
use leptos::server_fn::ServerFn;
use leptos_router::hooks::use_query_map;

/// A page of history older than `before_id`.
async fn older_page(conversation: ConversationRef, before_id: i64) -> Result<ConversationPage, AppError> {
    match conversation {
        ConversationRef::Direct(peer) => messages(peer, Some(before_id), None, None).await,
        ConversationRef::Group(room) => group_messages(room, Some(before_id), None, None).await,
    }
}

/// What changed after message `after_id` and change `changes_after`.
async fn changes_since(
    conversation: ConversationRef,
    after_id: i64,
    changes_after: i64,
) -> Result<ConversationUpdate, AppError> {
    match conversation {
        ConversationRef::Direct(peer) => messages_since(peer, after_id, changes_after).await,
        ConversationRef::Group(room) => group_messages_since(room, after_id, changes_after).await,
    }
}

/// Stores one message (idempotent per `client_id`).
pub(crate) async fn send_to(
    conversation: ConversationRef,
    draft: Draft,
    socket_id: Option<String>,
) -> Result<ChatMessage, AppError> {
    let reply_to_id = draft.reply_to.map(|q| q.id);
    let files: Vec<i64> = draft.attachments.iter().map(|a| a.id).collect();
    match conversation {
        ConversationRef::Direct(peer) => {
            send_message(peer, draft.body, draft.client_id, socket_id, reply_to_id, files).await
        }
        ConversationRef::Group(room) => {
            send_to_group(room, draft.body, draft.client_id, socket_id, reply_to_id, files).await
        }
    }
}

/// What a person can do to the messages of the open conversation, shared by every message row.
#[derive(Clone, Copy)]
struct MessageActions {
    me: i64,
    /// The message whose text is being edited (also `?edit=ID` without JavaScript).
    editing: RwSignal<Option<i64>>,
    /// The message just jumped to, shown highlighted for a moment.
    highlighted: RwSignal<Option<i64>>,
    /// The message whose full reaction picker is open.
    picking: RwSignal<Option<i64>>,
    /// The message whose "⋯" menu is open (also `?actions=ID` without JavaScript). One at a time.
    menu: RwSignal<Option<i64>>,
    jump: Callback<i64>,
    /// `(message, emoji, add)`: add my reaction, or take it back.
    react: Callback<(i64, String, bool)>,
    save_edit: Callback<(i64, String)>,
    delete: Callback<i64>,
    reply: Callback<i64>,
}

/// Whether `row` may still be edited by `me` now.
fn editable(me: i64, row: &Row) -> bool {
    row.id.is_some()
        && row.sender_id == me
        && !row.deleted
        && !row.is_system()
        && Utc::now() - row.created_at < chrono::Duration::minutes(EDIT_WINDOW_MINUTES)
}

fn focus_element(id: &str) {
    if let Some(el) = document().get_element_by_id(id)
        && let Ok(el) = leptos::wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(el)
    {
        let _ = el.focus();
    }
}

/// Tells the server I have read up to `up_to_id`; true when that changed something.
async fn mark_read_up_to(conversation: ConversationRef, up_to_id: i64) -> Result<bool, AppError> {
    match conversation {
        ConversationRef::Direct(peer) => mark_as_read(peer, up_to_id).await.map(|changed| changed > 0),
        ConversationRef::Group(room) => mark_group_read(room, up_to_id).await,
    }
}

/// Opens the list at the "New messages" divider when more than a screen of messages is below it,
/// else at the newest message.
fn open_at_unread_or_bottom(list: NodeRef<Div>) {
    request_animation_frame(move || {
        let Some(el) = list.try_get_untracked().flatten() else { return };
        let divider = document().get_element_by_id("unread-divider");
        let below = divider.map(|d| {
            let top =
                d.get_bounding_client_rect().top() - el.get_bounding_client_rect().top() + f64::from(el.scroll_top());
            (top, f64::from(el.scroll_height()) - top)
        });
        match below {
            Some((top, below)) if below > f64::from(el.client_height()) => {
                el.set_scroll_top((top - 8.0).max(0.0) as i32)
            }
            _ => el.set_scroll_top(el.scroll_height()),
        }
    });
}

fn scroll_to_bottom(list: NodeRef<Div>) {
    request_animation_frame(move || {
        if let Some(el) = list.try_get_untracked().flatten() {
            el.set_scroll_top(el.scroll_height());
        }
    });
}

/// Whether the list shows its newest message (within a line of the bottom). A list not in the
/// document yet (a page being swapped in) is not: it has no layout to be at the bottom of.
fn at_bottom(list: NodeRef<Div>) -> bool {
    match list.try_get_untracked().flatten() {
        Some(el) if el.is_connected() => el.scroll_height() - el.scroll_top() - el.client_height() < 48,
        Some(_) => false,
        None => true,
    }
}

/// Runs `then` once the list is in the document; gives up after `frames` frames.
fn when_drawn(list: NodeRef<Div>, frames: u32, then: impl FnOnce() + 'static) {
    request_animation_frame(move || match list.try_get_untracked().flatten() {
        Some(el) if el.is_connected() => then(),
        Some(_) if frames > 0 => when_drawn(list, frames - 1, then),
        _ => {}
    });
}

/// Runs `then` with element `id` once it is in the document: a page being swapped in is drawn a
/// few frames after its effects run. Gives up after `frames` frames.
fn when_in_document(id: String, frames: u32, then: impl FnOnce(web_sys::Element) + 'static) {
    request_animation_frame(move || match document().get_element_by_id(&id) {
        Some(el) => then(el),
        None if frames > 0 => when_in_document(id, frames - 1, then),
        None => {}
    });
}

/// Keeps a window listener only as long as the calling component: the window outlives it, and a
/// listener left behind would touch the component's disposed signals.
fn on_window(handle: WindowListenerHandle) {
    on_cleanup(move || handle.remove());
}

/// "1 member", "5 members".
fn member_count_label(count: i64) -> String {
    if count == 1 { "1 member".to_owned() } else { format!("{count} members") }
}

/// How long "is typing…" stays after the last whisper.
const TYPING_SHOWN: std::time::Duration = std::time::Duration::from_secs(5);

/// The open conversation. `children`, when given, are drawn at the end of the header (a group's
/// member panel).
#[component]
pub fn Conversation(page: ConversationPage, #[prop(optional)] children: Option<Children>) -> impl IntoView {
    let me = expect_context::<CurrentUser>();
    let chat = expect_context::<ChatState>();
    let live = expect_context::<Live>();
    let clock = LocalClock::new();
    let my_id = me.id;
    let conversation = page.conversation();
    let is_group = matches!(conversation, ConversationRef::Group(_));
    let peer = page.peer.clone();

    let timeline = RwSignal::new(Timeline::new(my_id, &page));
    let has_more = RwSignal::new(page.has_more);
    let loading_older = RwSignal::new(false);
    let older_error = RwSignal::new(None::<AppError>);
    let send_error = RwSignal::new(None::<AppError>);
    let visible = RwSignal::new(true);
    let list = NodeRef::<Div>::new();
    // "true" once this conversation is hydrated and interactive (tests wait for it).
    let interactive = RwSignal::new(false);
    // Changes far less often than the timeline: the composer is not drawn again on every message.
    let can_write = Memo::new(move |_| timeline.with(Timeline::can_write));

    // Read receipts: whenever unread messages from others are on screen and the tab is visible.
    on_window(window_event_listener(leptos::ev::visibilitychange, move |_| visible.set(document_visible())));
    Effect::new(move |_| {
        if !visible.get() || !document_visible() {
            return;
        }
        let Some(up_to_id) = timeline.with(Timeline::unread_up_to) else { return };
        // Shown as read at once (and not asked again); the server is told, the contact list refreshed.
        timeline.update(|t| t.read_by_me(up_to_id, Utc::now()));
        spawn_local(async move {
            if let Ok(true) = mark_read_up_to(conversation, up_to_id).await {
                chat.contacts_changed();
            }
        });
    });

    // One older page; true when it loaded (and more may follow).
    let fetch_older = move || async move {
        // `try_`: a jump runs this in a loop, and the conversation may be closed meanwhile.
        if loading_older.try_get_untracked().unwrap_or(true) || !has_more.try_get_untracked().unwrap_or(false) {
            return false;
        }
        let Some(Some(first_id)) = timeline.try_with_untracked(Timeline::oldest_id) else { return false };
        loading_older.set(true);
        older_error.set(None);
        let (height_before, top_before) =
            list.try_get_untracked().flatten().map(|el| (el.scroll_height(), el.scroll_top())).unwrap_or_default();
        let loaded = match older_page(conversation, first_id).await {
            Ok(page) => {
                has_more.try_set(page.has_more);
                timeline.try_update(|t| t.merge_older(page));
                // Keep the message that was on screen where it was.
                request_animation_frame(move || {
                    if let Some(el) = list.try_get_untracked().flatten() {
                        el.set_scroll_top(el.scroll_height() - height_before + top_before);
                    }
                });
                true
            }
            Err(e) => {
                older_error.try_set(Some(e));
                false
            }
        };
        loading_older.try_set(false);
        loaded
    };
    let load_older = move || {
        spawn_local(async move {
            fetch_older().await;
        });
    };

    // Who is typing: each whisper shows its sender for a while, until a newer one or their message.
    let typers = RwSignal::new(Typers::new(my_id, conversation));

    // Live events: messages (theirs, or mine from another tab), receipts, read marks, group changes.
    // New messages scroll the view only when it is at the bottom already; otherwise they are
    // counted on a "↓ N new messages" button, and your place in the history stays where it is.
    let unseen = RwSignal::new(0usize);
    live.on_event(move |event| {
        let was_at_bottom = at_bottom(list);
        let applied = timeline.try_maybe_update(|t| {
            let applied = t.apply_event(event);
            (applied != Applied::Ignored, applied)
        });
        match applied {
            Some(Applied::Message { sender_id }) => {
                typers.maybe_update(|t| t.stopped(sender_id));
                if was_at_bottom || sender_id == my_id {
                    scroll_to_bottom(list);
                } else {
                    unseen.update(|n| *n += 1);
                }
            }
            Some(Applied::Group) if was_at_bottom => scroll_to_bottom(list),
            _ => {}
        }
    });

    // Message actions: edit, delete, reply, react, and jumping to the message a reply quotes.
    let query_edit = use_query_map().with_untracked(|q| q.get("edit").and_then(|id| id.parse::<i64>().ok()));
    let action_error = RwSignal::new(None::<AppError>);
    let editing = RwSignal::new(query_edit);
    let replying = RwSignal::new(None::<ReplyQuote>);
    // A search hit opens the conversation at its message (`?at=`): highlighted, and the page's
    // address scrolls to it even without JavaScript.
    let open_at = use_query_map().with_untracked(|q| q.get("at").and_then(|id| id.parse::<i64>().ok()));
    let highlighted = RwSignal::new(open_at);
    let picking = RwSignal::new(None::<i64>);
    let menu =
        RwSignal::new(use_query_map().with_untracked(|q| q.get("actions").and_then(|id| id.parse::<i64>().ok())));
    let show = move |id: i64| {
        when_in_document(format!("m-{id}"), 120, move |el| {
            let options = web_sys::ScrollIntoViewOptions::new();
            options.set_block(web_sys::ScrollLogicalPosition::Center);
            el.scroll_into_view_with_scroll_into_view_options(&options);
            focus_element(&format!("m-{id}"));
        });
        highlighted.set(Some(id));
        set_timeout(
            move || {
                highlighted.try_update(|h| {
                    if *h == Some(id) {
                        *h = None;
                    }
                });
            },
            std::time::Duration::from_secs(3),
        );
    };
    let jump = Callback::new(move |id: i64| {
        spawn_local(async move {
            // Older pages until the message is loaded, or older ones are (then it is not here),
            // or there is nothing older.
            let missing = move || {
                timeline
                    .try_with_untracked(|t| t.row(id).is_none() && t.oldest_id().is_some_and(|oldest| oldest > id))
                    .unwrap_or(false)
            };
            while missing() {
                if !fetch_older().await {
                    break;
                }
            }
            if timeline.try_with_untracked(|t| t.row(id).is_some()).unwrap_or(false) {
                show(id);
            }
        });
    });
    let react_to = Callback::new(move |(id, emoji, add): (i64, String, bool)| {
        action_error.set(None);
        spawn_local(async move {
            let result = if add { react(id, emoji).await } else { unreact(id, emoji).await };
            match result {
                Ok(message) => {
                    timeline.try_update(|t| t.replace(message));
                }
                Err(e) => {
                    action_error.try_set(Some(e));
                }
            }
        });
    });
    let save_edit = Callback::new(move |(id, body): (i64, String)| {
        action_error.set(None);
        spawn_local(async move {
            match edit_message(id, body).await {
                Ok(message) => {
                    timeline.try_update(|t| t.replace(message));
                    editing.try_set(None);
                    request_animation_frame(move || focus_element(&format!("m-{id}")));
                }
                Err(e) => {
                    action_error.try_set(Some(e));
                }
            }
        });
    });
    let delete = Callback::new(move |id: i64| {
        action_error.set(None);
        spawn_local(async move {
            match delete_message(id).await {
                Ok(tombstone) => {
                    timeline.try_update(|t| t.replace(tombstone));
                    replying.try_update(|r| {
                        if r.as_ref().is_some_and(|q| q.id == id) {
                            *r = None;
                        }
                    });
                    chat.contacts_changed();
                }
                Err(e) => {
                    action_error.try_set(Some(e));
                }
            }
        });
    });
    let reply = Callback::new(move |id: i64| {
        if let Some(quote) = timeline.with_untracked(|t| t.quote_of(id)) {
            replying.set(Some(quote));
            focus_element("composer-body");
        }
    });
    // Open at the message asked for, else at the "New messages" divider or the newest, once the
    // list is in the document (after a client-side navigation it is drawn a few frames later).
    Effect::new(move |_| {
        if list.get().is_some() {
            when_drawn(list, 120, move || match open_at {
                Some(id) => jump.run(id),
                None => open_at_unread_or_bottom(list),
            });
            interactive.set(true);
        }
    });
    provide_context(MessageActions {
        me: my_id,
        editing,
        highlighted,
        picking,
        menu,
        jump,
        react: react_to,
        save_edit,
        delete,
        reply,
    });
    // Esc cancels an edit or a reply; then, on narrow screens, goes back to the contact list.
    let navigate = use_navigate();
    on_window(window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() != "Escape" || ev.default_prevented() {
            return;
        }
        // Esc first cancels what is open: an edit, then a reply.
        if editing.get_untracked().is_some() {
            let id = editing.get_untracked();
            editing.set(None);
            if let Some(id) = id {
                request_animation_frame(move || focus_element(&format!("m-{id}")));
            }
            return;
        }
        if replying.get_untracked().is_some() {
            replying.set(None);
            return;
        }
        let narrow = window().inner_width().ok().and_then(|w| w.as_f64()).is_some_and(|w| w <= 720.0);
        if narrow {
            navigate("/chat", Default::default());
        }
    }));

    // Plain-form (no JavaScript) edits and deletions that failed come back in the URL.
    let form_edit = ServerAction::<EditMessage>::new();
    let form_delete = ServerAction::<DeleteMessage>::new();
    let form_react = ServerAction::<React>::new();
    let form_unreact = ServerAction::<Unreact>::new();
    let action_banner = move || {
        action_error
            .get()
            .or_else(|| form_edit.value().get().and_then(Result::err))
            .or_else(|| form_delete.value().get().and_then(Result::err))
            .or_else(|| form_react.value().get().and_then(Result::err))
            .or_else(|| form_unreact.value().get().and_then(Result::err))
            .map(|e| view! { <p class="action-error" role="alert">{e.to_string()}</p> })
    };

    // Whispers: on the two people's private channel, or on the group's presence channel.
    let typing_channel = match conversation {
        ConversationRef::Direct(peer) => chat_channel(my_id, peer),
        ConversationRef::Group(room) => room_presence_channel(room),
    };
    let typing = TypingChannel::join(live, typing_channel, move |Typing { user_id, name }| {
        let Some(Some(generation)) = typers.try_maybe_update(|typers| {
            let generation = typers.typing(user_id, &name);
            (generation.is_some(), generation)
        }) else {
            return;
        };
        set_timeout(
            move || {
                typers.try_maybe_update(|typers| (typers.expire(user_id, generation), ()));
            },
            TYPING_SHOWN,
        );
    });
    let last_whisper = StoredValue::new(None::<DateTime<Utc>>);
    let my_name = me.name.clone();
    let on_typing = Callback::new(move |()| {
        let now = Utc::now();
        let due = last_whisper.get_value().is_none_or(|at| now - at >= chrono::Duration::seconds(2));
        if due && can_write.get_untracked() && typing.say_typing(&Typing { user_id: my_id, name: my_name.clone() }) {
            last_whisper.set_value(Some(now));
        }
    });

    // Catching up: after every (re)subscription, fetch everything after what the server has
    // confirmed in order (see `Timeline::synced_up_to`), page by page.
    let catch_up = move || {
        if !timeline.try_update_untracked(Timeline::start_catch_up).unwrap_or(false) {
            return;
        }
        // Only a view at the newest message follows what the catch-up brings; one opened at a
        // search hit or at the "New messages" divider, or scrolled up into history, stays where
        // it is. Before the list is drawn, where it opens is the opening's business (below).
        let was_at_bottom = list.try_get_untracked().flatten().is_some() && at_bottom(list);
        spawn_local(async move {
            loop {
                loop {
                    let Some((after, changes_after)) =
                        timeline.try_with_untracked(|t| (t.synced_up_to(), t.changes_up_to()))
                    else {
                        return;
                    };
                    let Ok(update) = changes_since(conversation, after, changes_after).await else { break };
                    if !timeline.try_update(|t| t.apply_update(&update)).unwrap_or(false) {
                        break;
                    }
                }
                if !timeline.try_update_untracked(Timeline::finish_catch_up).unwrap_or(false) {
                    break;
                }
            }
            if was_at_bottom {
                scroll_to_bottom(list);
            }
        });
    };

    // The outbox: one send at a time, in the order written (see `Timeline::next_to_send`). A
    // send that does not get through parks the rest as waiting; they go out when the connection
    // is back, or by themselves after a growing wait while the browser is online (a 502 or 503
    // on the way, see `retry`). `client_id` makes every retry safe.
    let pumping = StoredValue::new(false);
    let retry = Retry::new();
    let retry_now = Trigger::new();
    let pump = move || {
        if pumping.get_value() {
            return;
        }
        pumping.set_value(true);
        spawn_local(async move {
            while let Some(Some(draft)) = timeline.try_with_untracked(Timeline::next_to_send) {
                let client_id = draft.client_id.clone();
                let (result, error) = match send_to(conversation, draft, live.socket_id()).await {
                    Ok(message) => (SendResult::Stored(Box::new(message)), None),
                    Err(AppError::Transport { .. }) => (SendResult::Offline, None),
                    Err(e) => (SendResult::Failed(e.to_string()), Some(e)),
                };
                let (stored, offline) = (matches!(result, SendResult::Stored(_)), result == SendResult::Offline);
                if timeline.try_update(|t| t.on_send_result(&client_id, result)).is_none() {
                    break;
                }
                if stored {
                    retry.succeeded();
                    chat.contacts_changed();
                }
                if offline {
                    retry.schedule(move || retry_now.notify());
                    break;
                }
                if let Some(e) = error {
                    send_error.try_set(Some(e));
                }
            }
            pumping.try_set_value(false);
        });
    };
    let flush_waiting = move || {
        if timeline.try_update(Timeline::flush_waiting).unwrap_or(false) {
            pump();
        }
    };
    Effect::new(move |_| {
        if live.resynced.get() > 0 {
            catch_up();
            flush_waiting();
        }
    });
    Effect::new(move |first: Option<()>| {
        retry_now.track();
        if first.is_some() {
            flush_waiting();
        }
    });
    on_window(window_event_listener(leptos::ev::online, move |_| flush_waiting()));

    // The outbox outlives the page: what still has to go out is kept in this browser, sent from
    // here when the conversation opens again (after a reload), or by the chat shell meanwhile
    // (see `pages::chat`); `client_id` keeps every message single however often it is sent.
    let outbox_key = saved::key("outbox", my_id, conversation);
    let restore_key = outbox_key.clone();
    Effect::new(move |_| {
        let kept: Vec<Unsent> =
            saved::read(&restore_key).and_then(|json| serde_json::from_str(&json).ok()).unwrap_or_default();
        if !kept.is_empty() {
            let offline = live.is_offline();
            timeline.update(|t| kept.into_iter().for_each(|u| t.write(u.draft(), u.written_at, offline)));
            pump();
        }
    });
    let kept = StoredValue::new(String::new());
    Effect::new(move |_| {
        let unsent = timeline.with(Timeline::unsent);
        let json = if unsent.is_empty() { String::new() } else { serde_json::to_string(&unsent).unwrap_or_default() };
        if kept.with_value(|k| *k != json) {
            saved::write(&outbox_key, &json);
            kept.set_value(json);
        }
    });

    let uploads = crate::components::uploads::Uploads::new();
    let send = Callback::new(move |(client_id, body, attachments): (String, String, Vec<Attachment>)| {
        send_error.set(None);
        // The message ends the other side's "is typing…"; the next keystroke may say it again at once.
        last_whisper.set_value(None);
        let offline = live.is_offline();
        // A retry keeps what it answered (its row has it); a new message answers the quoted one.
        let reply_to = replying.get_untracked();
        replying.set(None);
        timeline.update(|t| t.write(Draft { client_id, body, reply_to, attachments }, Utc::now(), offline));
        scroll_to_bottom(list);
        pump();
    });

    let peer_online = move || live.online.with(|online| online.contains(&peer.id));
    let peer_name = peer.name.clone();
    let title = move || timeline.with(|t| t.group().map_or_else(|| peer_name.clone(), |g| g.name.clone()));
    let status = if is_group {
        let members = move || timeline.with(|t| t.group().map(|g| member_count_label(g.member_count)));
        view! { <span class="group-size" data-testid="group-size">{members}</span> }.into_any()
    } else {
        view! {
            <span class="peer-status" data-testid="peer-status">
                {move || if peer_online() { "online" } else { "" }}
            </span>
        }
        .into_any()
    };
    let log_label =
        if is_group { format!("Messages in {}", peer.name) } else { format!("Messages with {}", peer.name) };
    let compose_id = page.compose_id;
    view! {
        <header class="conversation-header">
            <a class="back" href="/chat" aria-label="Back to contacts">
                "‹"
            </a>
            <Avatar id=peer.id name=peer.name.clone() />
            <div class="peer">
                <h2 class="peer-name">{title}</h2>
                {status}
            </div>
            <a
                class="button button-ghost header-search"
                href=format!("/chat/search?in={}", conversation.key())
                aria-label="Search in this conversation"
                title="Search in this conversation"
            >
                "⌕"
            </a>
            <MuteButton conversation muted=page.muted action_error />
            {children.map(|children| children())}
        </header>
        <div
            class="message-scroller"
            data-interactive=move || interactive.get().to_string()
            data-whispers=move || if typing.ready.get() { "ready" } else { "waiting" }
            node_ref=list
            // Files dropped on the conversation are attached to the next message.
            on:dragover=move |ev| {
                if ev.data_transfer().is_some_and(|data| data.types().includes(&"Files".into(), 0)) {
                    ev.prevent_default();
                }
            }
            on:drop=move |ev| {
                let files = crate::components::uploads::files_of(ev.data_transfer().and_then(|data| data.files()));
                if !files.is_empty() {
                    ev.prevent_default();
                    uploads.add(files);
                }
            }
            on:scroll=move |_| {
                if list.try_get_untracked().flatten().is_some_and(|el| el.scroll_top() < 120) {
                    load_older();
                }
                if unseen.get_untracked() > 0 && at_bottom(list) {
                    unseen.set(0);
                }
            }
        >
            <Show when=move || has_more.get()>
                <div class="older">
                    <button class="button button-ghost" type="button" on:click=move |_| load_older()>
                        {move || if loading_older.get() { "Loading…" } else { "Load older messages" }}
                    </button>
                </div>
            </Show>
            {move || older_error.get().map(|error| view! { <ErrorBanner error on_retry=move |()| load_older() /> })}
            // The live region wraps the list: an <li> needs an <ol>/<ul> (role list) for a parent,
            // and screen readers announce additions to a plain list inside a log well.
            <div class="message-log" role="log" aria-live="polite" aria-label=log_label>
                <ol class="messages">
                    <For
                        each=move || {
                            let local = clock.is_local();
                            let today = time::day(Utc::now(), local);
                            timeline.with(|t| t.entries(local, today))
                        }
                        key=|(key, _)| key.clone()
                        children=move |(_, entry)| match entry {
                            // A list item of its own: a separator role in a list is not allowed, and would hide the day.
                            Entry::Day(label) => view! { <li class="day-separator"><span>{label}</span></li> }.into_any(),
                            Entry::Unread => {
                                view! {
                                    <li class="unread-divider" id="unread-divider">
                                        <span>"New messages"</span>
                                    </li>
                                }
                                    .into_any()
                            }
                            Entry::Message(entry) if entry.row.is_system() => view! { <SystemLine entry=*entry clock /> }.into_any(),
                            Entry::Message(entry) => view! { <MessageItem entry=*entry is_group send clock /> }.into_any(),
                        }
                    />
                </ol>
            </div>
            <Show when=move || timeline.with(Timeline::is_empty)>
                <p class="empty-state">"No messages yet. Say hello!"</p>
            </Show>
            <Show when=move || { unseen.get() > 0 }>
                <div class="new-below">
                    <button
                        class="button"
                        type="button"
                        on:click=move |_| {
                            unseen.set(0);
                            scroll_to_bottom(list);
                        }
                    >
                        {move || match unseen.get() {
                            1 => "↓ 1 new message".to_owned(),
                            n => format!("↓ {n} new messages"),
                        }}
                    </button>
                </div>
            </Show>
        </div>
        <p class="typing" role="status" aria-live="polite">
            {move || typers.with(Typers::label)}
        </p>
        {action_banner}
        {move || {
            replying
                .get()
                .map(|quote| {
                    let who = quote.sender_name.clone();
                    let excerpt = if quote.deleted { TOMBSTONE.to_owned() } else { quote.excerpt.clone() };
                    view! {
                        <div class="replying" role="status">
                            <span class="replying-label">"Replying to " <strong>{who}</strong></span>
                            <span class="replying-excerpt">{excerpt}</span>
                            <button
                                class="icon-button"
                                type="button"
                                aria-label="Cancel reply"
                                title="Cancel reply (Esc)"
                                on:click=move |_| {
                                    replying.set(None);
                                    focus_element("composer-body");
                                }
                            >
                                "✕"
                            </button>
                        </div>
                    }
                })
        }}
        <Show
            when=move || can_write.get()
            fallback=|| {
                view! {
                    <p class="no-longer-member" role="status">
                        "You are no longer a member of this group."
                    </p>
                }
            }
        >
            <Composer conversation compose_id=compose_id.clone() send send_error on_typing uploads />
        </Show>
    }
}

/// A line the server wrote about the group ("Dana added Erin"): centred, not a bubble.
#[component]
fn SystemLine(entry: MessageEntry, clock: LocalClock) -> impl IntoView {
    let created_at = entry.row.created_at;
    view! {
        <li class="system-line">
            <span class="body system-body">{entry.row.body}</span>
            <time datetime=created_at.to_rfc3339()>{move || time::clock(created_at, clock.is_local())}</time>
        </li>
    }
}

#[component]
fn MessageItem(
    entry: MessageEntry,
    is_group: bool,
    send: Callback<(String, String, Vec<Attachment>)>,
    /// The conversation's: it flips once the list has hydrated (a clock per message cost each of
    /// them a signal and an effect of its own).
    clock: LocalClock,
) -> impl IntoView {
    let actions = expect_context::<MessageActions>();
    let MessageEntry { row, mine, starts_run, seen_by } = entry;
    // Shared by the closures below (the body, whether it may still be edited), which each held a
    // copy of the whole message: its text, files, reactions and names, for every message drawn.
    let row = std::sync::Arc::new(row);
    let created_at = row.created_at;
    let read_at = row.read_at;
    let status = row.status.clone();
    let state = match &status {
        Status::Stored => "sent",
        Status::Sending => "sending",
        Status::Waiting => "waiting",
        Status::Failed(_) => "failed",
    };
    let ticks = mine.then(|| match (&status, read_at) {
        // A group says who has read it; one-to-one, ✓✓ says the peer has.
        (Status::Stored, _) if !seen_by.is_empty() => {
            view! {
                <span class="seen-by" tabindex="0" title=seen_by.join(", ")>
                    {format!("Seen by {}", seen_by.len())}
                </span>
            }
            .into_any()
        }
        (Status::Stored, Some(at)) => {
            view! { <span class="ticks read" role="img" title=move || time::read_at(at, clock.is_local()) aria-label="Read">"✓✓"</span> }
                .into_any()
        }
        (Status::Stored, None) => view! { <span class="ticks" role="img" title="Sent" aria-label="Sent">"✓"</span> }.into_any(),
        (Status::Sending, _) => view! { <span class="ticks sending" role="img" aria-label="Sending">"…"</span> }.into_any(),
        (Status::Waiting, _) => {
            view! { <span class="ticks waiting" title="Waiting for connection">"waiting for connection"</span> }
                .into_any()
        }
        (Status::Failed(_), _) => view! { <span class="ticks failed" role="img" aria-label="Not sent">"!"</span> }.into_any(),
    });
    let retry = match status {
        Status::Failed(reason) => {
            let (client_id, body, files) = (row.client_id.clone(), row.body.clone(), row.attachments.clone());
            Some(
                view! {
                    <p class="not-sent" role="status">
                        <span title=reason>"Not sent."</span>
                        <button
                            class="link-button"
                            type="button"
                            on:click=move |_| send.run((client_id.clone(), body.clone(), files.clone()))
                        >
                            "Retry"
                        </button>
                    </p>
                }
                .into_any(),
            )
        }
        _ => None,
    };
    // In a group, the first of a run of someone else's messages says who wrote them.
    let in_group = is_group && !mine;
    let sender = (in_group && starts_run).then(|| {
        view! {
            <Avatar id=row.sender_id name=row.sender_name.clone() />
            <span class="sender-name">{row.sender_name.clone()}</span>
        }
        .into_any()
    });
    let quote = row.reply_to.clone().map(|quote| view! { <Quote quote /> }.into_any());
    let edited = row.edited_at.filter(|_| !row.deleted).map(|at| {
        view! {
            <span class="edited" tabindex="0" title=move || format!("Edited at {}", time::clock(at, clock.is_local()))>
                "(edited)"
            </span>
        }
        .into_any()
    });
    let id = row.id;
    let dom_id = id.map(|id| format!("m-{id}"));
    let highlighted = move || id.is_some() && actions.highlighted.get() == id;
    let body = {
        let row = row.clone();
        move || {
            if row.deleted {
                return view! { <p class="body tombstone">{TOMBSTONE}</p> }.into_any();
            }
            match id.filter(|id| actions.editing.get() == Some(*id) && mine) {
                Some(id) => view! { <EditForm id body=row.body.clone() /> }.into_any(),
                // Files without text: nothing but the files.
                None if row.body.is_empty() && !row.attachments.is_empty() => ().into_any(),
                None => view! { <MessageBody body=row.body.clone() /> }.into_any(),
            }
        }
    };
    let files = (!row.deleted && !row.attachments.is_empty())
        .then(|| view! { <AttachmentList files=row.attachments.clone() /> }.into_any());
    let reactions = id.filter(|_| !row.deleted && !row.reactions.is_empty()).map(|id| {
        let chips = row.reactions.iter().cloned().map(|reaction| view! { <ReactionChip id reaction /> }).collect_view();
        view! { <div class="reactions" role="group" aria-label="Reactions">{chips}</div> }.into_any()
    });
    let menu = id.filter(|_| !row.deleted && row.status == Status::Stored).map(|id| {
        let editable_now = {
            let row = row.clone();
            move || editable(actions.me, &row)
        };
        view! { <ActionsMenu id mine editable=Signal::derive(editable_now) /> }.into_any()
    });
    view! {
        <li
            id=dom_id
            tabindex=id.map(|_| "-1")
            class="message"
            class:mine=mine
            class:theirs=!mine
            class:in-group=in_group
            class:run-start={in_group && starts_run}
            class:highlight=highlighted
            class:deleted=row.deleted
            data-state=state
        >
            {sender}
            <div class="bubble">
                {quote}
                {body}
                {files}
                <span class="meta">
                    {edited}
                    <time datetime=created_at.to_rfc3339()>{move || time::clock(created_at, clock.is_local())}</time>
                    {ticks}
                </span>
            </div>
            {menu}
            {reactions}
            {retry}
        </li>
    }
}

/// The quote of the message a reply answers; choosing it shows the original (loading older
/// history if needed). Without JavaScript it is a link to the original on the page.
#[component]
fn Quote(quote: ReplyQuote) -> impl IntoView {
    let actions = expect_context::<MessageActions>();
    let id = quote.id;
    let excerpt = if quote.deleted { TOMBSTONE.to_owned() } else { quote.excerpt.clone() };
    view! {
        <a
            class="quote"
            class:quote-deleted=quote.deleted
            href=format!("#m-{id}")
            title="Show the original message"
            on:click=move |ev| {
                ev.prevent_default();
                actions.jump.run(id);
            }
        >
            <span class="visually-hidden">"Reply to "</span>
            <span class="quote-sender">{quote.sender_name.clone()}</span>
            <span class="quote-text">{excerpt}</span>
        </a>
    }
}

/// An emoji under a message with how many added it; mine is pressed, and choosing it takes mine
/// back (or adds mine). Without JavaScript it is a plain form.
#[component]
fn ReactionChip(id: i64, reaction: Reaction) -> impl IntoView {
    let actions = expect_context::<MessageActions>();
    let mine = reaction.user_ids.contains(&actions.me);
    let who = reaction.who();
    let count = reaction.count();
    let emoji = reaction.emoji.clone();
    let action = if mine { Unreact::PATH } else { React::PATH };
    view! {
        <form class="reaction-form" method="post" action=action>
            <input type="hidden" name="message_id" value=id />
            <button
                class="reaction"
                class:mine=mine
                type="submit"
                name="emoji"
                value=emoji.clone()
                aria-pressed=if mine { "true" } else { "false" }
                title=who.clone()
                data-who=who
                on:click=move |ev| {
                    ev.prevent_default();
                    actions.react.run((id, emoji.clone(), !mine));
                }
            >
                <span class="reaction-emoji">{reaction.emoji.clone()}</span>
                <span class="reaction-count">{count}</span>
            </button>
        </form>
    }
}

/// The reactions offered first in a message's menu.
const QUICK_REACTIONS: [&str; 6] = ["👍", "❤️", "😂", "😮", "😢", "🙏"];

/// A message's actions behind a "⋯" button: quick reactions, more reactions, reply, edit, delete.
/// The menu is drawn only while open, so a page of messages carries one small link each, not
/// sixty menus. The button is a link to `?actions=ID`: without JavaScript the server draws that
/// message's menu open (plain forms), with JavaScript it opens in place. Enter opens it, Tab moves
/// through it, Esc closes it and gives focus back to the button.
#[component]
fn ActionsMenu(id: i64, mine: bool, editable: Signal<bool>) -> impl IntoView {
    let actions = expect_context::<MessageActions>();
    let button = NodeRef::<leptos::html::A>::new();
    let open = move || actions.menu.get() == Some(id);
    let close = move || {
        actions.menu.update(|menu| {
            if *menu == Some(id) {
                *menu = None;
            }
        })
    };
    view! {
        <div
            class="message-actions"
            class:open=open
            on:keydown=move |ev| {
                if ev.key() == "Escape" && actions.menu.get_untracked() == Some(id) {
                    ev.prevent_default();
                    close();
                    if let Some(button) = button.get_untracked() {
                        let _ = button.focus();
                    }
                }
            }
        >
            <a
                class="actions-button"
                node_ref=button
                href=move || if open() { format!("?#m-{id}") } else { format!("?actions={id}#m-{id}") }
                aria-label="Message actions"
                title="Message actions"
                aria-expanded=move || if open() { "true" } else { "false" }
                on:click=move |ev| {
                    ev.prevent_default();
                    actions.menu.update(|menu| *menu = if *menu == Some(id) { None } else { Some(id) });
                }
            >
                "⋯"
            </a>
            // Plain closures, not `Show`s: a `Show` keeps a memo of its condition, two per message
            // drawn; these conditions are a comparison each.
            {move || open().then(|| view! { <MenuItems id mine editable close=Callback::new(move |()| close()) /> })}
        </div>
        {move || (actions.picking.get() == Some(id)).then(|| view! { <ReactionPicker id /> })}
    }
    .into_any()
}

/// The open "⋯" menu's items; `close` closes the menu (an item was chosen).
#[component]
fn MenuItems(id: i64, mine: bool, editable: Signal<bool>, close: Callback<()>) -> impl IntoView {
    let actions = expect_context::<MessageActions>();
    let quick = QUICK_REACTIONS
        .iter()
        .map(|&emoji| {
            view! {
                <button
                    class="quick-reaction"
                    type="submit"
                    name="emoji"
                    value=emoji
                    aria-label=format!("React with {emoji}")
                    on:click=move |ev| {
                        ev.prevent_default();
                        close.run(());
                        actions.react.run((id, emoji.to_owned(), true));
                    }
                >
                    {emoji}
                </button>
            }
            .into_any()
        })
        .collect_view();
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    view! {
        <div class="actions-menu">
            <form class="quick-reactions" method="post" action=React::PATH>
                <input type="hidden" name="message_id" value=id />
                {quick}
            </form>
            <Show when=move || hydrated.get()>
                <button
                    class="menu-item"
                    type="button"
                    on:click=move |_| {
                        close.run(());
                        actions.picking.set(Some(id));
                    }
                    on:pointerenter=move |_| prefetch_picker()
                    on:focus=move |_| prefetch_picker()
                >
                    "More reactions…"
                </button>
                <button
                    class="menu-item"
                    type="button"
                    on:click=move |_| {
                        close.run(());
                        actions.reply.run(id);
                    }
                >
                    "Reply"
                </button>
            </Show>
            {mine
                .then(|| {
                    view! {
                        <a
                            class="menu-item"
                            href=format!("?edit={id}#m-{id}")
                            hidden=move || !editable.get()
                            on:click=move |ev| {
                                ev.prevent_default();
                                close.run(());
                                actions.editing.set(Some(id));
                            }
                        >
                            "Edit"
                        </a>
                        <form class="delete-form" method="post" action=DeleteMessage::PATH>
                            <input type="hidden" name="message_id" value=id />
                            <button
                                class="menu-item danger"
                                type="submit"
                                on:click=move |ev| {
                                    ev.prevent_default();
                                    close.run(());
                                    let sure = window()
                                        .confirm_with_message("Delete this message for everyone?")
                                        .unwrap_or(false);
                                    if sure {
                                        actions.delete.run(id);
                                    }
                                }
                            >
                                "Delete"
                            </button>
                        </form>
                    }
                        .into_any()
                })}
        </div>
    }
    .into_any()
}

/// The full emoji picker, choosing a reaction for message `id`.
#[component]
fn ReactionPicker(id: i64) -> impl IntoView {
    let actions = expect_context::<MessageActions>();
    let on_pick = Callback::new(move |emoji: String| {
        actions.picking.set(None);
        actions.react.run((id, emoji, true));
    });
    let on_close = Callback::new(move |()| {
        actions.picking.set(None);
        focus_element(&format!("m-{id}"));
    });
    view! {
        <div class="reaction-picker">
            <LazyEmojiPicker on_pick on_close label="Choose a reaction" />
        </div>
    }
    .into_any()
}

/// Editing my message in place: Enter saves, Shift+Enter is a new line, Esc cancels. Without
/// JavaScript it is a plain form (`?edit=ID` opens it), and "Cancel" a link back.
#[component]
fn EditForm(id: i64, body: String) -> impl IntoView {
    let actions = expect_context::<MessageActions>();
    let textarea = NodeRef::<leptos::html::Textarea>::new();
    Effect::new(move |_| {
        if let Some(el) = textarea.get() {
            let _ = el.focus();
            let end = el.value().len() as u32;
            let _ = el.set_selection_range(end, end);
        }
    });
    let save = move || {
        if let Some(el) = textarea.try_get_untracked().flatten() {
            actions.save_edit.run((id, el.value()));
        }
    };
    let field = format!("edit-{id}");
    view! {
        <form
            class="edit-form"
            method="post"
            action=EditMessage::PATH
            on:submit=move |ev| {
                ev.prevent_default();
                save();
            }
        >
            <input type="hidden" name="message_id" value=id />
            <label class="visually-hidden" for=field.clone()>"Edit message"</label>
            <textarea
                id=field
                name="body"
                rows="3"
                maxlength=MESSAGE_MAX_CHARS
                node_ref=textarea
                on:keydown=move |ev| {
                    if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        save();
                    }
                }
            >
                {body}
            </textarea>
            <div class="edit-actions">
                <a
                    class="button button-ghost button-small"
                    href=format!("?#m-{id}")
                    on:click=move |ev| {
                        ev.prevent_default();
                        actions.editing.set(None);
                    }
                >
                    "Cancel"
                </a>
                <button class="button button-small" type="submit">
                    "Save"
                </button>
            </div>
        </form>
    }
}

/// Mute or unmute the conversation (no notification, no sound; kept on the server for every
/// device). A plain form without JavaScript; with it, the call is made in place.
#[component]
fn MuteButton(conversation: ConversationRef, muted: bool, action_error: RwSignal<Option<AppError>>) -> impl IntoView {
    let chat = expect_context::<ChatState>();
    let muted = RwSignal::new(muted);
    let (field, id) = match conversation {
        ConversationRef::Direct(id) => ("peer_id", id),
        ConversationRef::Group(id) => ("room_id", id),
    };
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let next = !muted.get_untracked();
        let (peer_id, room_id) = if field == "peer_id" { (Some(id), None) } else { (None, Some(id)) };
        spawn_local(async move {
            match mute_conversation(peer_id, room_id, next).await {
                Ok(now) => {
                    muted.try_set(now);
                    chat.contacts_changed();
                }
                Err(e) => {
                    action_error.try_set(Some(e));
                }
            }
        });
    };
    view! {
        <form class="inline-form" method="post" action=MuteConversation::PATH on:submit=on_submit>
            <input type="hidden" name=field value=id.to_string() />
            <input type="hidden" name="muted" value=move || (!muted.get()).to_string() />
            <button
                class="button button-ghost mute-toggle"
                type="submit"
                aria-pressed=move || muted.get().to_string()
                title=move || if muted.get() { "Muted: no notifications. Click to unmute." } else { "Mute notifications" }
            >
                {move || if muted.get() { "🔕 Muted" } else { "Mute" }}
            </button>
        </form>
    }
}
