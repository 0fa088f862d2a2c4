//! The open conversation: header, the message log (newest at the bottom, older pages on scroll
//! up), read receipts, the typing indicator, and the composer. Sends show at once, go out one at a
//! time in order (an outbox that waits while offline), and settle when the server answers. Live
//! events are merged by id; after every (re)subscription the gap is fetched, so nothing is lost.

use chrono::{DateTime, Utc};
use leptos::html::Div;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;

use crate::api::messages::{mark_as_read, messages, messages_since, send_message};
use crate::components::composer::Composer;
use crate::components::live::{Live, TypingChannel};
use crate::components::{Avatar, ChatState, ErrorBanner};
use crate::error::AppError;
use crate::model::{ChatMessage, ConversationPage, ConversationUpdate, CurrentUser};
use crate::realtime::{LiveEvent, Typing, chat_channel};
use crate::text::{Segment, segments};
use crate::time::{self, LocalClock};

/// Where a message is in its life, as this browser knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Stored,
    /// In the outbox, next in line or on its way.
    Sending,
    /// In the outbox while the connection is down; goes out, in order, once back.
    Waiting,
    Failed(String),
}

/// One message in the log: stored, or still on its way.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    id: Option<i64>,
    client_id: String,
    sender_id: i64,
    body: String,
    created_at: DateTime<Utc>,
    read_at: Option<DateTime<Utc>>,
    status: Status,
}

impl Row {
    fn stored(m: ChatMessage) -> Self {
        Self {
            id: Some(m.id),
            client_id: m.client_id,
            sender_id: m.sender_id,
            body: m.body,
            created_at: m.created_at,
            read_at: m.read_at,
            status: Status::Stored,
        }
    }

    /// Changes whenever the row must be drawn again.
    fn key(&self) -> String {
        let status = match &self.status {
            Status::Stored => "s",
            Status::Sending => "p",
            Status::Waiting => "w",
            Status::Failed(_) => "f",
        };
        format!("{}:{}:{}:{}", self.sender_id, self.client_id, status, self.read_at.is_some())
    }
}

/// Puts a stored message into the log: it replaces the row with its id, or my pending row with its
/// `client_id`, or is added. Rows stay ordered by id, pending ones last in the order they were
/// written. A read time we already know is never forgotten. Returns true when the message is new.
fn merge(rows: &mut Vec<Row>, message: ChatMessage) -> bool {
    let same =
        |r: &Row| r.id == Some(message.id) || (r.sender_id == message.sender_id && r.client_id == message.client_id);
    let fresh = match rows.iter_mut().find(|r| same(r)) {
        Some(row) => {
            let known_read = row.read_at;
            *row = Row::stored(message);
            row.read_at = row.read_at.or(known_read);
            false
        }
        None => {
            rows.push(Row::stored(message));
            true
        }
    };
    // Stable: pending rows (no id yet) keep their order at the end.
    rows.sort_by_key(|r| r.id.unwrap_or(i64::MAX));
    fresh
}

/// Marks as read, at `at`, the stored messages from `sender` up to `up_to_id`.
fn mark_read(rows: &mut [Row], sender: i64, up_to_id: i64, at: DateTime<Utc>) {
    for row in rows.iter_mut().filter(|r| r.sender_id == sender && r.id.is_some_and(|id| id <= up_to_id)) {
        row.read_at.get_or_insert(at);
    }
}

/// The newest stored message id in the log: where catching up starts.
fn newest_id(rows: &[Row]) -> i64 {
    rows.iter().filter_map(|r| r.id).max().unwrap_or(0)
}

/// An entry of the log: a day separator or a message.
#[derive(Clone)]
enum Entry {
    Day(String),
    Message(Row),
}

fn entries(rows: &[Row], local: bool) -> Vec<(String, Entry)> {
    let today = time::day(Utc::now(), local);
    let mut out = Vec::with_capacity(rows.len() + 4);
    let mut last_day = None;
    for row in rows {
        let day = time::day(row.created_at, local);
        if last_day != Some(day) {
            out.push((format!("day:{day}:{local}"), Entry::Day(time::day_label(day, today))));
            last_day = Some(day);
        }
        out.push((row.key(), Entry::Message(row.clone())));
    }
    out
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

#[component]
pub fn Conversation(page: ConversationPage) -> impl IntoView {
    let me = expect_context::<CurrentUser>();
    let chat = expect_context::<ChatState>();
    let live = expect_context::<Live>();
    let clock = LocalClock::new();
    let peer = page.peer.clone();
    let peer_id = peer.id;

    let rows = RwSignal::new(page.messages.into_iter().map(Row::stored).collect::<Vec<_>>());
    let has_more = RwSignal::new(page.has_more);
    let loading_older = RwSignal::new(false);
    let older_error = RwSignal::new(None::<AppError>);
    let send_error = RwSignal::new(None::<AppError>);
    let visible = RwSignal::new(true);
    let list = NodeRef::<Div>::new();
    // "true" once this conversation is hydrated and interactive (tests wait for it).
    let interactive = RwSignal::new(false);

    // Open at the newest message.
    Effect::new(move |_| {
        if list.get().is_some() {
            scroll_to_bottom(list);
            interactive.set(true);
        }
    });

    // Read receipts: whenever unread messages from the peer are on screen and the tab is visible.
    let _ = window_event_listener(leptos::ev::visibilitychange, move |_| visible.set(document_visible()));
    Effect::new(move |_| {
        if !visible.get() || !document_visible() {
            return;
        }
        let newest_unread = rows.with(|rows| {
            rows.iter().filter(|r| r.sender_id == peer_id && r.read_at.is_none()).filter_map(|r| r.id).max()
        });
        let Some(up_to_id) = newest_unread else { return };
        // Shown as read at once; the server is told, and the contact list refreshed.
        let now = Utc::now();
        rows.update(|rows| {
            for row in rows.iter_mut().filter(|r| r.sender_id == peer_id && r.id.is_some_and(|id| id <= up_to_id)) {
                row.read_at.get_or_insert(now);
            }
        });
        spawn_local(async move {
            if let Ok(changed) = mark_as_read(peer_id, up_to_id).await
                && changed > 0
            {
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
        let Some(first_id) = rows.with_untracked(|rows| rows.iter().find_map(|r| r.id)) else { return };
        loading_older.set(true);
        older_error.set(None);
        let (height_before, top_before) =
            list.get_untracked().map(|el| (el.scroll_height(), el.scroll_top())).unwrap_or_default();
        spawn_local(async move {
            match messages(peer_id, Some(first_id), None).await {
                Ok(page) => {
                    has_more.set(page.has_more);
                    rows.update(|rows| {
                        let mut all: Vec<Row> = page.messages.into_iter().map(Row::stored).collect();
                        all.append(rows);
                        *rows = all;
                    });
                    // Keep the message that was on screen where it was.
                    request_animation_frame(move || {
                        if let Some(el) = list.get_untracked() {
                            el.set_scroll_top(el.scroll_height() - height_before + top_before);
                        }
                    });
                }
                Err(e) => older_error.set(Some(e)),
            }
            loading_older.set(false);
        });
    };

    // Live events for this conversation: new messages (theirs, or mine from another tab) and receipts.
    let my_id = me.id;
    let peer_typing = RwSignal::new(false);
    // How far the peer has read mine. Kept, because a receipt can arrive before the answer to my
    // own send does: the row it covers has no id yet and is marked once it has.
    let peer_read = StoredValue::new(None::<(i64, DateTime<Utc>)>);
    let note_peer_read = move |up_to: i64, at: DateTime<Utc>| {
        if peer_read.get_value().is_none_or(|(known, _)| known < up_to) {
            peer_read.set_value(Some((up_to, at)));
        }
    };
    let settle_reads = move |rows: &mut Vec<Row>| {
        if let Some((up_to, at)) = peer_read.get_value() {
            mark_read(rows, my_id, up_to, at);
        }
    };
    let typing_generation = StoredValue::new(0u64);
    live.on_event(move |event| match event {
        LiveEvent::NewMessage(m) if m.sender_id == peer_id && m.recipient_id == my_id => {
            peer_typing.set(false);
            rows.update(|rows| {
                merge(rows, m.clone());
            });
            scroll_to_bottom(list);
        }
        LiveEvent::NewMessage(m) if m.sender_id == my_id && m.recipient_id == peer_id => {
            rows.update(|rows| {
                merge(rows, m.clone());
                settle_reads(rows);
            });
            scroll_to_bottom(list);
        }
        // The peer read mine: ✓ becomes ✓✓.
        LiveEvent::MessagesRead(r) if r.reader_id == peer_id && r.peer_id == my_id => {
            note_peer_read(r.up_to_id, r.read_at);
            rows.update(|rows| mark_read(rows, my_id, r.up_to_id, r.read_at));
        }
        // I read theirs in another tab.
        LiveEvent::MessagesRead(r) if r.reader_id == my_id && r.peer_id == peer_id => {
            rows.update(|rows| mark_read(rows, peer_id, r.up_to_id, r.read_at));
        }
        _ => {}
    });

    // "Alice is typing…": shown on each whisper, gone 5 s after the last one or when her message lands.
    let typing = TypingChannel::join(live, chat_channel(my_id, peer_id), move |t: Typing| {
        if t.user_id != peer_id {
            return;
        }
        peer_typing.set(true);
        let generation = typing_generation.get_value() + 1;
        typing_generation.set_value(generation);
        set_timeout(
            move || {
                if typing_generation.try_get_value() == Some(generation) {
                    peer_typing.set(false);
                }
            },
            std::time::Duration::from_secs(5),
        );
    });
    let last_whisper = StoredValue::new(None::<DateTime<Utc>>);
    let my_name = me.name.clone();
    let on_typing = Callback::new(move |()| {
        let now = Utc::now();
        let due = last_whisper.get_value().is_none_or(|at| now - at >= chrono::Duration::seconds(2));
        if due && typing.say_typing(&Typing { user_id: my_id, name: my_name.clone() }) {
            last_whisper.set_value(Some(now));
        }
    });

    // Catching up: after every (re)subscription, fetch everything after the newest message the
    // server has confirmed in order (the first page, or the last catch-up). Not the newest row on
    // screen: my own sends and live events can be newer than a gap that is still unfilled.
    let apply_update = move |update: &ConversationUpdate| {
        rows.update(|rows| {
            for m in &update.messages {
                merge(rows, m.clone());
            }
            if let (Some(up_to), Some(at)) = (update.peer_read_up_to, update.peer_read_at) {
                note_peer_read(up_to, at);
            }
            settle_reads(rows);
        });
    };
    let catching_up = StoredValue::new(false);
    let synced_up_to = StoredValue::new(rows.with_untracked(|rows| newest_id(rows)));
    // A resync during a catch-up runs it once more when it ends: its gap may be newer.
    let catch_up_again = StoredValue::new(false);
    let catch_up = move || {
        if catching_up.get_value() {
            catch_up_again.set_value(true);
            return;
        }
        catching_up.set_value(true);
        spawn_local(async move {
            loop {
                catch_up_again.set_value(false);
                loop {
                    let after = synced_up_to.get_value();
                    match messages_since(peer_id, after).await {
                        Ok(update) => {
                            apply_update(&update);
                            if let Some(last) = update.messages.last() {
                                synced_up_to.set_value(last.id.max(after));
                            }
                            if !update.has_more || update.messages.is_empty() {
                                break;
                            }
                        }
                        Err(_) => break,
                    }
                }
                if !catch_up_again.try_get_value().unwrap_or(false) {
                    break;
                }
            }
            catching_up.try_set_value(false);
            scroll_to_bottom(list);
        });
    };

    // The outbox: one send at a time, in the order written. A network failure parks the rest as
    // waiting; they go out when the connection is back. `client_id` makes every retry safe.
    let pumping = StoredValue::new(false);
    let pump = move || {
        if pumping.get_value() {
            return;
        }
        pumping.set_value(true);
        spawn_local(async move {
            loop {
                let next = rows.with_untracked(|rows| {
                    rows.iter()
                        .find(|r| r.sender_id == my_id && r.status == Status::Sending)
                        .map(|r| (r.client_id.clone(), r.body.clone()))
                });
                let Some((client_id, body)) = next else { break };
                let result = send_message(peer_id, body, client_id.clone(), live.socket_id()).await;
                let offline = matches!(result, Err(AppError::Transport { .. }));
                rows.update(|rows| match &result {
                    Ok(message) => {
                        merge(rows, message.clone());
                        settle_reads(rows);
                    }
                    Err(_) if offline => {
                        for row in rows.iter_mut().filter(|r| r.sender_id == my_id && r.status == Status::Sending) {
                            row.status = Status::Waiting;
                        }
                    }
                    Err(e) => {
                        if let Some(row) = rows.iter_mut().find(|r| r.sender_id == my_id && r.client_id == client_id) {
                            row.status = Status::Failed(e.to_string());
                        }
                    }
                });
                match result {
                    Ok(_) => chat.contacts_changed(),
                    Err(_) if offline => break,
                    Err(e) => send_error.set(Some(e)),
                }
            }
            pumping.try_set_value(false);
        });
    };
    let flush_waiting = move || {
        rows.update(|rows| {
            for row in rows.iter_mut().filter(|r| r.status == Status::Waiting) {
                row.status = Status::Sending;
            }
        });
        pump();
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
        let status = if live.is_offline() { Status::Waiting } else { Status::Sending };
        rows.update(|rows| match rows.iter_mut().find(|r| r.client_id == client_id && r.sender_id == my_id) {
            Some(row) => row.status = status.clone(),
            None => rows.push(Row {
                id: None,
                client_id: client_id.clone(),
                sender_id: my_id,
                body: body.clone(),
                created_at: Utc::now(),
                read_at: None,
                status: status.clone(),
            }),
        });
        scroll_to_bottom(list);
        pump();
    });

    let peer_online = move || live.online.with(|online| online.contains(&peer_id));
    let peer_name = peer.name.clone();
    view! {
        <header class="conversation-header">
            <a class="back" href="/chat" aria-label="Back to contacts">
                "‹"
            </a>
            <Avatar id=peer.id name=peer.name.clone() />
            <div class="peer">
                <h2 class="peer-name">{peer.name.clone()}</h2>
                <span class="peer-status" data-testid="peer-status">
                    {move || if peer_online() { "online" } else { "" }}
                </span>
            </div>
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
            <div class="message-log" role="log" aria-live="polite" aria-label=format!("Messages with {}", peer.name)>
                <ol class="messages">
                    <For
                        each=move || rows.with(|rows| entries(rows, clock.is_local()))
                        key=|(key, _)| key.clone()
                        children=move |(_, entry)| match entry {
                            // A list item of its own: a separator role in a list is not allowed, and would hide the day.
                            Entry::Day(label) => view! { <li class="day-separator"><span>{label}</span></li> }.into_any(),
                            Entry::Message(row) => {
                                let mine = row.sender_id == my_id;
                                view! { <MessageItem row mine send /> }.into_any()
                            }
                        }
                    />
                </ol>
            </div>
            <Show when=move || rows.with(Vec::is_empty)>
                <p class="empty-state">"No messages yet. Say hello!"</p>
            </Show>
        </div>
        <p class="typing" role="status" aria-live="polite">
            {move || peer_typing.get().then(|| format!("{peer_name} is typing…"))}
        </p>
        <Composer peer_id compose_id=page.compose_id send send_error on_typing />
    }
}

#[component]
fn MessageItem(row: Row, mine: bool, send: Callback<(String, String)>) -> impl IntoView {
    let clock = LocalClock::new();
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
    view! {
        <li class="message" class:mine=mine class:theirs=!mine data-state=state>
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: i64, sender_id: i64, client_id: &str) -> ChatMessage {
        ChatMessage {
            id,
            sender_id,
            recipient_id: 3 - sender_id,
            body: format!("m{id}"),
            client_id: client_id.to_owned(),
            created_at: Utc::now(),
            read_at: None,
        }
    }

    fn pending(client_id: &str) -> Row {
        Row {
            id: None,
            client_id: client_id.to_owned(),
            sender_id: 1,
            body: "pending".into(),
            created_at: Utc::now(),
            read_at: None,
            status: Status::Sending,
        }
    }

    fn ids(rows: &[Row]) -> Vec<Option<i64>> {
        rows.iter().map(|r| r.id).collect()
    }

    #[test]
    fn merging_drops_duplicates_and_keeps_id_order() {
        let mut rows = vec![Row::stored(stored(1, 1, "a")), Row::stored(stored(3, 2, "c")), pending("p")];
        assert!(merge(&mut rows, stored(2, 2, "b")), "a missed message is inserted");
        assert!(!merge(&mut rows, stored(2, 2, "b")), "the same id twice is one message");
        assert!(merge(&mut rows, stored(5, 2, "e")));
        assert_eq!(ids(&rows), [Some(1), Some(2), Some(3), Some(5), None], "pending stays last");
        // My pending message comes back stored (from the live event or the HTTP answer): same row.
        assert!(!merge(&mut rows, stored(6, 1, "p")));
        assert_eq!(ids(&rows), [Some(1), Some(2), Some(3), Some(5), Some(6)]);
        assert_eq!(rows.iter().filter(|r| r.client_id == "p").count(), 1);
        assert_eq!(rows[4].status, Status::Stored);
    }

    #[test]
    fn a_known_read_time_survives_a_stale_copy() {
        let at = Utc::now();
        let mut rows = vec![Row::stored(stored(1, 1, "a")), Row::stored(stored(2, 2, "b"))];
        mark_read(&mut rows, 1, 1, at);
        assert_eq!(rows[0].read_at, Some(at));
        assert_eq!(rows[1].read_at, None, "only the given sender's messages");
        merge(&mut rows, stored(1, 1, "a"));
        assert_eq!(rows[0].read_at, Some(at));
        assert_eq!(newest_id(&rows), 2);
        assert_eq!(newest_id(&[]), 0);
    }
}
