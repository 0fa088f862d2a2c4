//! The chat's live side: one Pusher connection per tab (opened after hydration), the events on the
//! user's own channel handed to whoever listens, who is online, and the quiet connection banner.
//!
//! On the server, and before hydration, nothing connects: the state stays `Initialized` and the
//! page is complete without it.

use std::collections::HashSet;

use leptos::prelude::*;

use crate::model::CurrentUser;
use crate::realtime::machine::ConnectionState;
use crate::realtime::{LiveEvent, RealtimeConfig, Typing};

// The browser half, gated once: the real one in `live/browser.rs`, and on the server a twin that
// does nothing (local, non-`Send` state must never be created on the multi-threaded server).
#[cfg(feature = "hydrate")]
mod browser;
#[cfg(not(feature = "hydrate"))]
mod browser {
    use leptos::prelude::*;

    use super::Live;
    use crate::model::CurrentUser;
    use crate::realtime::{LiveEvent, RealtimeConfig, Typing};

    #[derive(Clone, Copy)]
    pub struct Tab;

    impl Tab {
        pub fn new() -> Self {
            Self
        }
        pub fn browser_online() -> bool {
            true
        }
        pub fn listen(&self, _: impl Fn(&LiveEvent) + 'static) {}
        pub fn socket_id(&self) -> Option<String> {
            None
        }
        pub fn connect(&self, _: Live, _: &CurrentUser, _: RealtimeConfig, _: Callback<()>) {}
        pub fn follow_rooms(&self, _: Live, _: Vec<i64>, _: Callback<()>) {}
        pub fn join_typing(&self, _: Live, _: String, _: RwSignal<bool>, _: impl Fn(Typing) + Send + Sync + 'static) {}
        pub fn whisper(&self, _: &str, _: &Typing) -> bool {
            false
        }
    }
}

/// The live connection of this tab, shared by the chat's components through context.
#[derive(Clone, Copy)]
pub struct Live {
    /// pusher-js's connection states.
    pub connection: RwSignal<ConnectionState>,
    /// Ids of the people of my circle who have Banter open somewhere right now: as the contact list
    /// and member panel last read it, then as `StatusChanged` events on my channel say.
    pub online: RwSignal<HashSet<i64>>,
    /// Bumped after every (re)subscription to my channel or a group's: whatever was missed must be fetched.
    pub resynced: RwSignal<u32>,
    tab: browser::Tab,
}

impl Live {
    /// Provides the context; [`connect`] (browser only) opens the connection.
    pub fn provide() -> Self {
        let live = Self {
            connection: RwSignal::new(ConnectionState::Initialized),
            online: RwSignal::new(HashSet::new()),
            resynced: RwSignal::new(0),
            tab: browser::Tab::new(),
        };
        provide_context(live);
        live
    }

    /// True while messages cannot go out: the connection is lost or the browser is offline.
    pub fn is_offline(&self) -> bool {
        matches!(self.connection.get_untracked(), ConnectionState::Unavailable | ConnectionState::Failed)
            || !browser_online()
    }

    /// `connected` once my channel is subscribed (tests wait for it), else the connection state.
    pub fn status_label(&self) -> &'static str {
        match self.connection.get() {
            ConnectionState::Connected if self.resynced.get() > 0 => "connected",
            ConnectionState::Connected => "subscribing",
            ConnectionState::Initialized => "initialized",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Unavailable => "unavailable",
            ConnectionState::Failed => "failed",
            ConnectionState::Disconnected => "disconnected",
        }
    }

    /// Calls `listener` with every event on my channel and my groups' until the calling component
    /// is cleaned up. Events only happen in the browser; on the server this does nothing.
    pub fn on_event(&self, listener: impl Fn(&LiveEvent) + 'static) {
        self.tab.listen(listener);
    }

    /// Takes these people's status as a freshly read page says (`(id, online)`).
    pub fn seed_online(&self, people: impl IntoIterator<Item = (i64, bool)>) {
        let changes: Vec<(i64, bool)> = self
            .online
            .with_untracked(|online| people.into_iter().filter(|&(id, on)| online.contains(&id) != on).collect());
        if !changes.is_empty() {
            self.set_online(changes);
        }
    }

    fn set_online(&self, changes: impl IntoIterator<Item = (i64, bool)>) {
        self.online.update(|online| {
            for (id, on) in changes {
                if on {
                    online.insert(id);
                } else {
                    online.remove(&id);
                }
            }
        });
    }

    /// The socket id of this tab's connection, passed with sends so the server skips this tab.
    pub fn socket_id(&self) -> Option<String> {
        self.tab.socket_id()
    }

    /// Follows the channels of these groups (the ones I am a member of in the conversation list),
    /// so their messages, read marks and changes reach this tab whether or not the group is open.
    /// Groups no longer listed are let go. Pusher allows a bounded number of channels per
    /// connection, so only the newest [`ROOMS_FOLLOWED`] are followed; the rest refresh with the list.
    pub fn follow_rooms(&self, mut rooms: Vec<i64>, on_change: Callback<()>) {
        rooms.truncate(ROOMS_FOLLOWED);
        self.tab.follow_rooms(*self, rooms, on_change);
    }
}

/// The most group channels a tab follows at once (the embedded server allows 100 channels per
/// connection; the user and typing channels need a few).
pub const ROOMS_FOLLOWED: usize = 80;

/// Opens this tab's connection and subscribes to my channel. Call from an effect, so it only ever
/// runs in the browser.
pub fn connect(live: Live, me: &CurrentUser, config: RealtimeConfig, on_change: Callback<()>) {
    live.tab.connect(live, me, config, on_change);
}

/// Typing whispers on a conversation's channel: `private-chat.{lo}.{hi}` for two people,
/// `presence-room.{id}` for a group.
#[derive(Clone, Copy)]
pub struct TypingChannel {
    live: Live,
    channel: StoredValue<String>,
    /// True while subscribed: whispers can go both ways.
    pub ready: RwSignal<bool>,
}

impl TypingChannel {
    /// Listens for `client-typing` from the others until the calling component goes away. The
    /// connection opens after hydration, so the subscription waits for it.
    pub fn join(live: Live, channel: String, on_typing: impl Fn(Typing) + Send + Sync + 'static) -> Self {
        let ready = RwSignal::new(false);
        live.tab.join_typing(live, channel.clone(), ready, on_typing);
        Self { live, channel: StoredValue::new(channel), ready }
    }

    /// Tells the others I am typing; false when the whisper could not go out.
    pub fn say_typing(&self, typing: &Typing) -> bool {
        self.channel.with_value(|channel| self.live.tab.whisper(channel, typing))
    }
}

/// How long a page that has asked whether Banter has been updated waits before a look at the tab
/// asks again: someone going back and forth between tabs costs one request a minute at most.
const ASK_AGAIN_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// How often a page left open on screen asks whether Banter has been updated (a wall display
/// behind an external Pusher server is never disconnected nor looked at again).
const ASK_WHILE_ON_SCREEN: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// What the browser says of its network (`navigator.onLine`); always true on the server.
pub fn browser_online() -> bool {
    browser::Tab::browser_online()
}

/// "Connecting…", "Offline — messages will be sent when you're back", "Back online": shown only
/// when something is worth saying (not during the first, quick connect). The page asks whether the
/// server still runs the build it was opened with each time it is connected again (a deploy
/// restarts the server, which drops every socket), when the tab is looked at again (an external
/// Pusher server keeps the socket across a deploy of Banter; at most once a minute), and every half
/// hour while it stays on screen: when it does not, a notice says that Banter has been updated,
/// with "Reload" (and "Later", which puts it away until the page asks again).
#[component]
pub fn ConnectionBanner() -> impl IntoView {
    let live = expect_context::<Live>();
    let was_connected = RwSignal::new(false);
    let back_online = RwSignal::new(false);
    let updated = RwSignal::new(false);
    // When the page last asked, if it has.
    let asked_at = StoredValue::new(None::<chrono::DateTime<chrono::Utc>>);
    let ask = move || {
        asked_at.set_value(Some(chrono::Utc::now()));
        if !updated.get_untracked() {
            leptos::task::spawn_local(async move {
                if super::lazy::build_replaced().await {
                    updated.set(true);
                }
            });
        }
    };
    let looked_at_again = window_event_listener(leptos::ev::visibilitychange, move |_| {
        let asked_lately = asked_at.get_value().is_some_and(|at| chrono::Utc::now() - at < ASK_AGAIN_AFTER);
        if super::document_visible() && !asked_lately {
            ask();
        }
    });
    on_cleanup(move || looked_at_again.remove());
    // Effects run only in the browser.
    Effect::new(move |_| {
        let on_screen = move || {
            if super::document_visible() {
                ask();
            }
        };
        if let Ok(every) = set_interval_with_handle(on_screen, ASK_WHILE_ON_SCREEN) {
            on_cleanup(move || every.clear());
        }
    });
    Effect::new(move |previous: Option<ConnectionState>| {
        let now = live.connection.get();
        if now == ConnectionState::Connected {
            if was_connected.get_untracked() && previous.is_some_and(|p| p != ConnectionState::Connected) {
                back_online.set(true);
                set_timeout(move || back_online.set(false), std::time::Duration::from_secs(3));
                ask();
            }
            was_connected.set(true);
        }
        now
    });
    let message = move || {
        let state = live.connection.get();
        // The client turns Unavailable on the browser's `offline` event, so this covers both.
        if matches!(state, ConnectionState::Unavailable | ConnectionState::Failed) {
            Some(("offline", "Offline — messages will be sent when you're back"))
        } else if state == ConnectionState::Connecting && was_connected.get() {
            Some(("connecting", "Connecting…"))
        } else if back_online.get() && state == ConnectionState::Connected {
            Some(("online", "Back online"))
        } else {
            None
        }
    };
    let update = move || {
        updated.get().then(|| {
            view! {
                <div class="banner page-notice page-notice-top">
                    <span>"Banter has been updated since this page was opened."</span>
                    <span class="page-notice-actions">
                        <button class="button button-ghost" type="button" on:click=|_| super::lazy::reload()>
                            "Reload"
                        </button>
                        <button class="button button-ghost" type="button" on:click=move |_| updated.set(false)>
                            "Later"
                        </button>
                    </span>
                </div>
            }
        })
    };
    view! {
        <div class="connection-banner" role="status" aria-live="polite">
            {move || {
                message().map(|(kind, text)| view! { <span class="connection" data-state=kind>{text}</span> })
            }}
        </div>
        // A live region from the start, so that the notice is announced when it comes.
        <div class="page-notice-live" role="status">{update}</div>
    }
}
