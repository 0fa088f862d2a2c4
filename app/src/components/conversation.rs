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
use crate::api::messages::{mark_as_read, messages, messages_since, send_message};
use crate::components::composer::Composer;
use crate::components::live::{Live, TypingChannel};
use crate::components::{Avatar, ChatState, ErrorBanner};
use crate::error::AppError;
use crate::model::{ChatMessage, ConversationPage, ConversationRef, ConversationUpdate, CurrentUser};
use crate::realtime::{Typing, chat_channel, room_presence_channel};
use crate::text::{Segment, segments};
use crate::time::{self, LocalClock};
use crate::timeline::{Applied, Entry, MessageEntry, SendResult, Status, Timeline, Typers};

/// A page of history older than `before_id`.
async fn older_page(conversation: ConversationRef, before_id: i64) -> Result<ConversationPage, AppError> {
    match conversation {
        ConversationRef::Direct(peer) => messages(peer, Some(before_id), None).await,
        ConversationRef::Group(room) => group_messages(room, Some(before_id), None).await,
    }
}

/// What changed after message `after_id`.
async fn changes_since(conversation: ConversationRef, after_id: i64) -> Result<ConversationUpdate, AppError> {
    match conversation {
        ConversationRef::Direct(peer) => messages_since(peer, after_id).await,
        ConversationRef::Group(room) => group_messages_since(room, after_id).await,
    }
}

/// Stores one message (idempotent per `client_id`).
async fn send_to(
    conversation: ConversationRef,
    body: String,
    client_id: String,
    socket_id: Option<String>,
) -> Result<ChatMessage, AppError> {
    match conversation {
        ConversationRef::Direct(peer) => send_message(peer, body, client_id, socket_id).await,
        ConversationRef::Group(room) => send_to_group(room, body, client_id, socket_id).await,
    }
}

/// Tells the server I have read up to `up_to_id`; true when that changed something.
async fn mark_read_up_to(conversation: ConversationRef, up_to_id: i64) -> Result<bool, AppError> {
    match conversation {
        ConversationRef::Direct(peer) => mark_as_read(peer, up_to_id).await.map(|changed| changed > 0),
        ConversationRef::Group(room) => mark_group_read(room, up_to_id).await,
    }
}

fn scroll_to_bottom(list: NodeRef<Div>) {
    request_animation_frame(move || {
        if let Some(el) = list.get_untracked() {
            el.set_scroll_top(el.scroll_height());
        }
    });
}

fn document_visible() -> bool {
    document().visibility_state() == web_sys::VisibilityState::Visible
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

    // Open at the newest message.
    Effect::new(move |_| {
        if list.get().is_some() {
            scroll_to_bottom(list);
            interactive.set(true);
        }
    });

    // Read receipts: whenever unread messages from others are on screen and the tab is visible.
    let _ = window_event_listener(leptos::ev::visibilitychange, move |_| visible.set(document_visible()));
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

    // Esc goes back to the contact list on narrow screens.
    let navigate = use_navigate();
    let _ = window_event_listener(leptos::ev::keydown, move |ev| {
        let narrow = window().inner_width().ok().and_then(|w| w.as_f64()).is_some_and(|w| w <= 720.0);
        if ev.key() == "Escape" && narrow {
            navigate("/chat", Default::default());
        }
    });

    let load_older = move || {
        if loading_older.get_untracked() || !has_more.get_untracked() {
            return;
        }
        let Some(first_id) = timeline.with_untracked(Timeline::oldest_id) else { return };
        loading_older.set(true);
        older_error.set(None);
        let (height_before, top_before) =
            list.get_untracked().map(|el| (el.scroll_height(), el.scroll_top())).unwrap_or_default();
        spawn_local(async move {
            match older_page(conversation, first_id).await {
                Ok(page) => {
                    has_more.try_set(page.has_more);
                    timeline.try_update(|t| t.merge_older(page));
                    // Keep the message that was on screen where it was.
                    request_animation_frame(move || {
                        if let Some(el) = list.get_untracked() {
                            el.set_scroll_top(el.scroll_height() - height_before + top_before);
                        }
                    });
                }
                Err(e) => {
                    older_error.try_set(Some(e));
                }
            }
            loading_older.try_set(false);
        });
    };

    // Who is typing: each whisper shows its sender for a while, until a newer one or their message.
    let typers = RwSignal::new(Typers::new(my_id, conversation));

    // Live events: messages (theirs, or mine from another tab), receipts, read marks, group changes.
    live.on_event(move |event| {
        let applied = timeline.try_maybe_update(|t| {
            let applied = t.apply_event(event);
            (applied != Applied::Ignored, applied)
        });
        match applied {
            Some(Applied::Message { sender_id }) => {
                typers.maybe_update(|t| t.stopped(sender_id));
                scroll_to_bottom(list);
            }
            Some(Applied::Group) => scroll_to_bottom(list),
            _ => {}
        }
    });

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
        spawn_local(async move {
            loop {
                loop {
                    let Some(after) = timeline.try_with_untracked(Timeline::synced_up_to) else { return };
                    let Ok(update) = changes_since(conversation, after).await else { break };
                    if !timeline.try_update(|t| t.apply_update(&update)).unwrap_or(false) {
                        break;
                    }
                }
                if !timeline.try_update_untracked(Timeline::finish_catch_up).unwrap_or(false) {
                    break;
                }
            }
            scroll_to_bottom(list);
        });
    };

    // The outbox: one send at a time, in the order written (see `Timeline::next_to_send`). A
    // network failure parks the rest as waiting; they go out when the connection is back.
    // `client_id` makes every retry safe.
    let pumping = StoredValue::new(false);
    let pump = move || {
        if pumping.get_value() {
            return;
        }
        pumping.set_value(true);
        spawn_local(async move {
            while let Some(Some((client_id, body))) = timeline.try_with_untracked(Timeline::next_to_send) {
                let (result, error) = match send_to(conversation, body, client_id.clone(), live.socket_id()).await {
                    Ok(message) => (SendResult::Stored(message), None),
                    Err(AppError::Transport { .. }) => (SendResult::Offline, None),
                    Err(e) => (SendResult::Failed(e.to_string()), Some(e)),
                };
                let (stored, offline) = (matches!(result, SendResult::Stored(_)), result == SendResult::Offline);
                if timeline.try_update(|t| t.on_send_result(&client_id, result)).is_none() {
                    break;
                }
                if stored {
                    chat.contacts_changed();
                }
                if offline {
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
    let _ = window_event_listener(leptos::ev::online, move |_| flush_waiting());

    let send = Callback::new(move |(client_id, body): (String, String)| {
        send_error.set(None);
        // The message ends the other side's "is typing…"; the next keystroke may say it again at once.
        last_whisper.set_value(None);
        let offline = live.is_offline();
        timeline.update(|t| t.write(client_id, body, Utc::now(), offline));
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
            {children.map(|children| children())}
        </header>
        <div
            class="message-scroller"
            data-interactive=move || interactive.get().to_string()
            data-whispers=move || if typing.ready.get() { "ready" } else { "waiting" }
            node_ref=list
            on:scroll=move |_| {
                if list.get_untracked().is_some_and(|el| el.scroll_top() < 120) {
                    load_older();
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
                            Entry::Message(entry) if entry.row.is_system() => view! { <SystemLine entry /> }.into_any(),
                            Entry::Message(entry) => view! { <MessageItem entry is_group send /> }.into_any(),
                        }
                    />
                </ol>
            </div>
            <Show when=move || timeline.with(Timeline::is_empty)>
                <p class="empty-state">"No messages yet. Say hello!"</p>
            </Show>
        </div>
        <p class="typing" role="status" aria-live="polite">
            {move || typers.with(Typers::label)}
        </p>
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
            <Composer conversation compose_id=compose_id.clone() send send_error on_typing />
        </Show>
    }
}

/// A line the server wrote about the group ("Dana added Erin"): centred, not a bubble.
#[component]
fn SystemLine(entry: MessageEntry) -> impl IntoView {
    let clock = LocalClock::new();
    let created_at = entry.row.created_at;
    view! {
        <li class="system-line">
            <span class="body system-body">{entry.row.body}</span>
            <time datetime=created_at.to_rfc3339()>{move || time::clock(created_at, clock.is_local())}</time>
        </li>
    }
}

#[component]
fn MessageItem(entry: MessageEntry, is_group: bool, send: Callback<(String, String)>) -> impl IntoView {
    let clock = LocalClock::new();
    let MessageEntry { row, mine, starts_run, seen_by } = entry;
    let created_at = row.created_at;
    let read_at = row.read_at;
    let status = row.status.clone();
    let state = match &status {
        Status::Stored => "sent",
        Status::Sending => "sending",
        Status::Waiting => "waiting",
        Status::Failed(_) => "failed",
    };
    let body = segments(&row.body)
        .into_iter()
        .map(|segment| match segment {
            Segment::Text(text) => text.to_owned().into_any(),
            Segment::Link(url) => view! {
                <a href=url.to_owned() target="_blank" rel="noopener noreferrer">
                    {url.to_owned()}
                </a>
            }
            .into_any(),
        })
        .collect_view();
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
            let (client_id, body) = (row.client_id.clone(), row.body.clone());
            Some(view! {
                <p class="not-sent" role="status">
                    <span title=reason>"Not sent."</span>
                    <button class="link-button" type="button" on:click=move |_| send.run((client_id.clone(), body.clone()))>
                        "Retry"
                    </button>
                </p>
            })
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
    });
    view! {
        <li class="message" class:mine=mine class:theirs=!mine class:in-group=in_group class:run-start={in_group && starts_run} data-state=state>
            {sender}
            <div class="bubble">
                <p class="body">{body}</p>
                <span class="meta">
                    <time datetime=created_at.to_rfc3339()>{move || time::clock(created_at, clock.is_local())}</time>
                    {ticks}
                </span>
            </div>
            {retry}
        </li>
    }
}
