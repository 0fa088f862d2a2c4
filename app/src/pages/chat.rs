//! `/chat` and `/chat/{peer_id}`: contacts on the left, the open conversation on the right; on
//! narrow screens one pane at a time. Everything renders on the server first.

use leptos::prelude::*;
use leptos_router::components::{Outlet, Redirect};
use leptos_router::hooks::{use_location, use_query_map};

use crate::api::auth::{Logout, session};
use crate::api::groups::group_messages;
use crate::api::messages::{contacts, messages};
use crate::components::contacts::ContactList;
use crate::components::conversation::Conversation;
use crate::components::live::{self, ConnectionBanner, Live};
use crate::components::notify::{self, Incoming, NotificationSwitch};
use crate::components::retry::Retry;
use crate::components::saved;
use crate::components::{ChatState, ErrorBanner};
use crate::error::AppError;
use crate::model::{ChatSession, ConversationPage, ConversationRef, CurrentUser};
use crate::realtime::LiveEvent;
use crate::timeline::Unsent;

/// The parent route: signed-in check, top bar, contact list, and an outlet for the conversation.
#[component]
pub fn ChatLayout() -> impl IntoView {
    let session = Resource::new_blocking(|| (), |_| session());
    // One Suspend, not a closure making one: on the server, Suspense walks its children again
    // until every resource read in them has settled, and a closure would run again at each walk,
    // drawing a new shell whose contact list and conversation load again (the chat page queried
    // its data twice and carried it twice). A Suspend keeps the view it resolved to. The session
    // is read once per page, so nothing is lost by not reacting to it.
    view! {
        <Suspense fallback=|| view! { <div class="chat-layout skeleton" aria-busy="true"></div> }>
            {Suspend::new(async move {
                match session.await {
                    Ok(session) => view! { <ChatShell session /> }.into_any(),
                    Err(AppError::Unauthorized) => view! { <Redirect path="/login" /> }.into_any(),
                    Err(error) => view! { <ErrorBanner error /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn ChatShell(session: ChatSession) -> impl IntoView {
    let ChatSession { user, realtime } = session;
    provide_context(user.clone());
    let chat = ChatState::provide();
    let live = Live::provide();
    // The live connection opens once the page is interactive; every event or resubscription may
    // change previews, order and unread counts, so the contact list is read again.
    let me = user.clone();
    Effect::new(move |_| {
        live::connect(live, &me, realtime.clone(), Callback::new(move |()| chat.contacts_changed()));
    });
    let search = RwSignal::new(use_query_map().with_untracked(|q| q.get("q")).unwrap_or_default());
    let contacts = Resource::new_blocking(
        move || (chat.contacts_version.get(), search.get()),
        |(_, search)| contacts((!search.trim().is_empty()).then_some(search)),
    );
    let location = use_location();
    // Which conversation the address opens: `/chat/{user}` or `/chat/g/{group}`.
    let open_peer = Memo::new(move |_| {
        location.pathname.with(|path| {
            let rest = path.strip_prefix("/chat/")?.trim_end_matches('/');
            match rest.strip_prefix("g/") {
                Some(room) => room.parse().ok().map(ConversationRef::Group),
                None => rest.parse().ok().map(ConversationRef::Direct),
            }
        })
    });
    OpenPage::provide(open_peer);
    crate::pages::group::OpenMembers::provide(open_peer);
    // Any pane but the welcome (a conversation, or the new-group form) replaces the list on a phone.
    // Messages that arrive out of sight: a notification (when turned on), unless muted.
    let navigate = leptos_router::hooks::use_navigate();
    let my_id = user.id;
    live.on_event(move |event| {
        let LiveEvent::NewMessage(message) = event else { return };
        let visible = crate::components::document_visible();
        let mut incoming = Incoming { message, me: my_id, open: open_peer.get_untracked(), visible, muted: false };
        let conversation = incoming.conversation();
        let known = chat.directory.with_value(|d| d.get(&conversation).cloned());
        incoming.muted = known.as_ref().is_some_and(|(_, muted)| *muted);
        if !incoming.deserves_notice() {
            return;
        }
        let title = match (conversation, known) {
            (ConversationRef::Group(_), Some((group, _))) => format!("{} · {group}", message.sender_name),
            _ => message.sender_name.clone(),
        };
        let (href, navigate) = (conversation.href(), navigate.clone());
        let line = match message.attachments.len() {
            _ if !message.body.trim().is_empty() => notify::first_line(&message.body),
            1 => "📎 1 file".to_owned(),
            n => format!("📎 {n} files"),
        };
        notify::show(&title, &line, &conversation.key(), move || navigate(&href, Default::default()));
    });
    // Messages written for other conversations and still waiting (the tab was offline, then left
    // that conversation or reloaded): sent in order once the connection is back, or after a
    // growing wait when the server could not be reached while the browser is online (see
    // `retry`). The open conversation sends its own.
    let retry = Retry::new();
    let retry_now = Trigger::new();
    Effect::new(move |_| {
        live.resynced.get();
        retry_now.track();
        let open = open_peer.get();
        leptos::task::spawn_local(async move {
            for key in saved::keys(&format!("banter-outbox-{my_id}-")) {
                let Some(conversation) = saved::conversation_of(&key, "outbox", my_id).filter(|c| Some(*c) != open)
                else {
                    continue;
                };
                let mut waiting: Vec<Unsent> =
                    saved::read(&key).and_then(|json| serde_json::from_str(&json).ok()).unwrap_or_default();
                while let Some(next) = waiting.first() {
                    match crate::components::conversation::send_to(conversation, next.draft(), None).await {
                        Err(AppError::Transport { .. }) => {
                            retry.schedule(move || retry_now.notify());
                            return;
                        }
                        // Refused: kept, for the conversation to show it as failed, with "Retry".
                        Err(_) => break,
                        Ok(_) => {
                            retry.succeeded();
                            waiting.remove(0);
                            let json = if waiting.is_empty() {
                                String::new()
                            } else {
                                serde_json::to_string(&waiting).unwrap_or_default()
                            };
                            saved::write(&key, &json);
                        }
                    }
                }
                chat.contacts_changed();
            }
        });
    });
    let pane_open = Memo::new(move |_| location.pathname.with(|path| path.trim_end_matches('/').len() > "/chat".len()));
    let logout = ServerAction::<Logout>::new();

    view! {
        <div
            class="chat-layout"
            data-open=move || pane_open.get().to_string()
            data-live=move || live.status_label()
        >
            <header class="topbar">
                <a class="brand" href="/chat">
                    "Banter"
                </a>
                <span class="whoami" data-testid="whoami">
                    {user.name.clone()}
                </span>
                <NotificationSwitch />
                <ThemeToggle />
                <ActionForm action=logout attr:class="inline-form">
                    <button class="button button-ghost" type="submit">
                        "Sign out"
                    </button>
                </ActionForm>
            </header>
            <ConnectionBanner />
            <aside class="contacts" aria-label="Contacts">
                <ContactList contacts open_peer search />
            </aside>
            <Outlet />
        </div>
    }
}

/// `/chat` with no conversation open.
#[component]
pub fn NoConversation() -> impl IntoView {
    let user = use_context::<CurrentUser>();
    view! {
        <main class="conversation" aria-label="Conversation">
            <div class="empty-state">
                <h2>{user.map(|u| format!("Welcome, {}", u.name))}</h2>
                <p>"Pick someone on the left to start chatting."</p>
            </div>
        </main>
    }
}

/// The open conversation's first page (`/chat/{peer_id}` or `/chat/g/{room_id}`, opened at `?at=`
/// if given), loaded by the chat shell rather than by the pane that shows it. On the server,
/// Suspense walks its children again until every resource read in them has settled, and the
/// router's outlet draws its route afresh at each walk: a resource made in the pane was loaded,
/// and sent to the browser, once per walk (twice for every chat page).
#[derive(Clone, Copy)]
pub struct OpenPage(pub Resource<Result<ConversationPage, AppError>>);

impl OpenPage {
    fn provide(open: Memo<Option<ConversationRef>>) {
        let query = use_query_map();
        let page = Resource::new_blocking(
            move || (open.get(), at_param(query)),
            |(open, at)| async move {
                match open {
                    Some(ConversationRef::Direct(peer)) => messages(peer, None, None, at).await,
                    Some(ConversationRef::Group(room)) => group_messages(room, None, None, at).await,
                    None => Err(AppError::not_found("no such conversation")),
                }
            },
        );
        provide_context(OpenPage(page));
    }
}

/// The message a conversation is opened at (`?at=`, a search hit).
pub fn at_param(query: Memo<leptos_router::params::ParamsMap>) -> Option<i64> {
    query.read().get("at").and_then(|id| id.parse::<i64>().ok())
}

/// `/chat/{peer_id}`: one conversation.
#[component]
pub fn ConversationPane() -> impl IntoView {
    let page = expect_context::<OpenPage>().0;
    view! {
        <main class="conversation" aria-label="Conversation">
            <Transition fallback=|| view! { <div class="conversation-skeleton" aria-busy="true"></div> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(page) => view! { <Conversation page /> }.into_any(),
                        Err(error) => {
                            view! {
                                <a class="back" href="/chat">"‹ Back"</a>
                                <ErrorBanner error on_retry=move |()| page.refetch() />
                            }
                                .into_any()
                        }
                    }
                })}
            </Transition>
        </main>
    }
}

/// Light/dark switch. The choice is kept in localStorage and applied before first paint by the
/// script in the document head; without a choice, the system setting rules.
#[component]
fn ThemeToggle() -> impl IntoView {
    let dark = RwSignal::new(None::<bool>);
    Effect::new(move |_| {
        let root = document().document_element();
        let explicit = root.as_ref().and_then(|r| r.get_attribute("data-theme"));
        let system_dark =
            window().match_media("(prefers-color-scheme: dark)").ok().flatten().is_some_and(|m| m.matches());
        dark.set(Some(explicit.map_or(system_dark, |t| t == "dark")));
    });
    let toggle = move |_| {
        let next = !dark.get_untracked().unwrap_or(false);
        dark.set(Some(next));
        let theme = if next { "dark" } else { "light" };
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("data-theme", theme);
        }
        if let Ok(Some(storage)) = window().local_storage() {
            let _ = storage.set_item("banter-theme", theme);
        }
    };
    view! {
        <button
            class="button button-ghost theme-toggle"
            type="button"
            on:click=toggle
            aria-label=move || if dark.get() == Some(true) { "Switch to light theme" } else { "Switch to dark theme" }
        >
            {move || if dark.get() == Some(true) { "☀" } else { "☾" }}
        </button>
    }
}
