//! The open conversation: header, the message log (newest at the bottom, older pages on scroll
//! up), read receipts, and the composer. Sends show at once and settle when the server answers.

use chrono::{DateTime, Utc};
use leptos::html::Div;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;

use crate::api::messages::{mark_as_read, messages, send_message};
use crate::components::composer::Composer;
use crate::components::{Avatar, ChatState, ErrorBanner};
use crate::error::AppError;
use crate::model::{ChatMessage, ConversationPage, CurrentUser};
use crate::text::{Segment, segments};
use crate::time::{self, LocalClock};

/// Where a message is in its life, as this browser knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Stored,
    Sending,
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
            Status::Failed(_) => "f",
        };
        format!("{}:{}:{}:{}", self.sender_id, self.client_id, status, self.read_at.is_some())
    }
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

    let send = Callback::new(move |(client_id, body): (String, String)| {
        send_error.set(None);
        rows.update(|rows| match rows.iter_mut().find(|r| r.client_id == client_id && r.sender_id == me.id) {
            Some(row) => row.status = Status::Sending,
            None => rows.push(Row {
                id: None,
                client_id: client_id.clone(),
                sender_id: me.id,
                body: body.clone(),
                created_at: Utc::now(),
                read_at: None,
                status: Status::Sending,
            }),
        });
        scroll_to_bottom(list);
        spawn_local(async move {
            let result = send_message(peer_id, body, client_id.clone()).await;
            rows.update(|rows| {
                let Some(row) = rows.iter_mut().find(|r| r.client_id == client_id && r.sender_id == me.id) else {
                    return;
                };
                match &result {
                    Ok(message) => *row = Row::stored(message.clone()),
                    Err(e) => row.status = Status::Failed(e.to_string()),
                }
            });
            match result {
                Ok(_) => chat.contacts_changed(),
                Err(e) => send_error.set(Some(e)),
            }
        });
    });

    let my_id = me.id;
    view! {
        <header class="conversation-header">
            <a class="back" href="/chat" aria-label="Back to contacts">
                "‹"
            </a>
            <Avatar id=peer.id name=peer.name.clone() />
            <h2 class="peer-name">{peer.name.clone()}</h2>
        </header>
        <div
            class="message-scroller"
            data-interactive=move || interactive.get().to_string()
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
            <ol class="messages" role="log" aria-live="polite" aria-label=format!("Messages with {}", peer.name)>
                <For
                    each=move || rows.with(|rows| entries(rows, clock.is_local()))
                    key=|(key, _)| key.clone()
                    children=move |(_, entry)| match entry {
                        Entry::Day(label) => view! { <li class="day-separator" role="separator"><span>{label}</span></li> }.into_any(),
                        Entry::Message(row) => {
                            let mine = row.sender_id == my_id;
                            view! { <MessageItem row mine send /> }.into_any()
                        }
                    }
                />
            </ol>
            <Show when=move || rows.with(Vec::is_empty)>
                <p class="empty-state">"No messages yet. Say hello!"</p>
            </Show>
        </div>
        <Composer peer_id compose_id=page.compose_id send send_error />
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
            view! { <span class="ticks read" title=move || time::read_at(at, clock.is_local()) aria-label="Read">"✓✓"</span> }
                .into_any()
        }
        (Status::Stored, None) => view! { <span class="ticks" title="Sent" aria-label="Sent">"✓"</span> }.into_any(),
        (Status::Sending, _) => view! { <span class="ticks sending" aria-label="Sending">"…"</span> }.into_any(),
        (Status::Failed(_), _) => view! { <span class="ticks failed" aria-label="Not sent">"!"</span> }.into_any(),
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
