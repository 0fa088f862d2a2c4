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

#[cfg(feature = "hydrate")]
type Listener = std::rc::Rc<dyn Fn(&LiveEvent)>;

/// The live connection of this tab, shared by the chat's components through context.
#[derive(Clone, Copy)]
pub struct Live {
    /// pusher-js's connection states.
    pub connection: RwSignal<ConnectionState>,
    /// Ids of the people who have Banter open somewhere right now.
    pub online: RwSignal<HashSet<i64>>,
    /// Bumped after every (re)subscription to my channel: whatever was missed must be fetched.
    pub resynced: RwSignal<u32>,
    // Browser only: local (non-Send) values must never be created on the multi-threaded server.
    #[cfg(feature = "hydrate")]
    listeners: StoredValue<Vec<(u64, Listener)>, LocalStorage>,
    #[cfg(feature = "hydrate")]
    next_listener: StoredValue<u64>,
    #[cfg(feature = "hydrate")]
    client: StoredValue<Option<crate::realtime::client::PusherClient>, LocalStorage>,
    /// The groups whose channel this tab follows, and its subscription to each.
    #[cfg(feature = "hydrate")]
    rooms: StoredValue<std::collections::HashMap<i64, crate::realtime::client::ListenerId>, LocalStorage>,
}

impl Live {
    /// Provides the context; [`Live::connect`] (browser only) opens the connection.
    pub fn provide() -> Self {
        let live = Self {
            connection: RwSignal::new(ConnectionState::Initialized),
            online: RwSignal::new(HashSet::new()),
            resynced: RwSignal::new(0),
            #[cfg(feature = "hydrate")]
            listeners: StoredValue::new_local(Vec::new()),
            #[cfg(feature = "hydrate")]
            next_listener: StoredValue::new(0),
            #[cfg(feature = "hydrate")]
            client: StoredValue::new_local(None),
            #[cfg(feature = "hydrate")]
            rooms: StoredValue::new_local(Default::default()),
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

    /// Calls `listener` with every event on my channel until the calling component is cleaned up.
    /// Events only happen in the browser; on the server this does nothing.
    pub fn on_event(&self, listener: impl Fn(&LiveEvent) + 'static) {
        #[cfg(not(feature = "hydrate"))]
        let _ = listener;
        #[cfg(feature = "hydrate")]
        self.listen(listener);
    }

    #[cfg(feature = "hydrate")]
    fn listen(&self, listener: impl Fn(&LiveEvent) + 'static) {
        let id = self.next_listener.get_value();
        self.next_listener.set_value(id + 1);
        self.listeners.update_value(|all| all.push((id, std::rc::Rc::new(listener))));
        let listeners = self.listeners;
        on_cleanup(move || {
            listeners.try_update_value(|all| all.retain(|(other, _)| *other != id));
        });
    }

    #[cfg(feature = "hydrate")]
    fn dispatch(&self, event: &LiveEvent) {
        // Cloned first: a listener may add or remove listeners while it runs.
        let all: Vec<Listener> = self.listeners.with_value(|all| all.iter().map(|(_, l)| l.clone()).collect());
        for listener in all {
            listener(event);
        }
    }

    /// The socket id of this tab's connection, passed with sends so the server skips this tab.
    pub fn socket_id(&self) -> Option<String> {
        #[cfg(feature = "hydrate")]
        {
            self.client.with_value(|c| c.as_ref().and_then(|c| c.socket_id()))
        }
        #[cfg(not(feature = "hydrate"))]
        {
            None
        }
    }
}

impl Live {
    /// Follows the channels of these groups (the ones I am a member of in the conversation list),
    /// so their messages, read marks and changes reach this tab whether or not the group is open.
    /// Groups no longer listed are let go. Pusher allows a bounded number of channels per
    /// connection, so only the newest [`ROOMS_FOLLOWED`] are followed; the rest refresh with the list.
    pub fn follow_rooms(&self, mut rooms: Vec<i64>, on_change: Callback<()>) {
        rooms.truncate(ROOMS_FOLLOWED);
        #[cfg(feature = "hydrate")]
        self.follow(rooms, on_change);
        #[cfg(not(feature = "hydrate"))]
        let _ = (rooms, on_change);
    }

    #[cfg(feature = "hydrate")]
    fn follow(&self, rooms: Vec<i64>, on_change: Callback<()>) {
        use crate::realtime::client::ChannelEvent;
        let Some(client) = self.client.get_value() else { return };
        let live = *self;
        self.rooms.update_value(|followed| {
            followed.retain(|room, id| {
                let keep = rooms.contains(room);
                if !keep {
                    client.unsubscribe(*id);
                }
                keep
            });
            for room in rooms {
                followed.entry(room).or_insert_with(|| {
                    client.subscribe(&crate::realtime::room_channel(room), move |event| match event {
                        ChannelEvent::Subscribed { .. } => {
                            live.resynced.update(|n| *n += 1);
                        }
                        ChannelEvent::Event { name, data } => {
                            if let Some(event) = LiveEvent::decode(&name, &data) {
                                live.dispatch(&event);
                                on_change.run(());
                            }
                        }
                        _ => {}
                    })
                });
            }
        });
    }
}

/// The most group channels a tab follows at once (the embedded server allows 100 channels per
/// connection; the user, presence and typing channels need a few).
pub const ROOMS_FOLLOWED: usize = 80;

fn browser_online() -> bool {
    #[cfg(feature = "hydrate")]
    {
        window().navigator().on_line()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        true
    }
}

/// Opens this tab's connection and subscribes to my channel and to `presence-online`. Call from
/// an effect, so it only ever runs in the browser.
#[cfg(feature = "hydrate")]
pub fn connect(live: Live, me: &CurrentUser, config: RealtimeConfig, on_change: Callback<()>) {
    use crate::realtime::client::{ChannelEvent, PusherClient};
    use crate::realtime::{PRESENCE_ONLINE, user_channel};

    if live.client.with_value(Option::is_some) {
        return;
    }
    let client = PusherClient::connect(config, "/broadcasting/auth");
    live.client.set_value(Some(client));
    let state = client.state();
    Effect::new(move |_| {
        let now = state.get();
        // Without a connection we do not know who is online: show nobody rather than stale dots.
        if now != ConnectionState::Connected {
            live.online.update(|online| online.clear());
        }
        live.connection.set(now);
    });

    client.subscribe(&user_channel(me.id), move |event| match event {
        ChannelEvent::Subscribed { .. } => {
            live.resynced.update(|n| *n += 1);
            on_change.run(());
        }
        ChannelEvent::Event { name, data } => {
            if let Some(event) = LiveEvent::decode(&name, &data) {
                live.dispatch(&event);
                on_change.run(());
            }
        }
        _ => {}
    });
    client.subscribe(PRESENCE_ONLINE, move |event| match event {
        ChannelEvent::Subscribed { members } => {
            let ids = members.unwrap_or_default().iter().filter_map(|m| m.user_id.parse().ok()).collect();
            live.online.set(ids);
        }
        ChannelEvent::MemberAdded(member) => {
            if let Ok(id) = member.user_id.parse() {
                live.online.update(|online| {
                    online.insert(id);
                });
            }
        }
        ChannelEvent::MemberRemoved(user_id) => {
            if let Ok(id) = user_id.parse::<i64>() {
                live.online.update(|online| {
                    online.remove(&id);
                });
            }
        }
        _ => {}
    });
}

#[cfg(not(feature = "hydrate"))]
pub fn connect(_: Live, _: &CurrentUser, _: RealtimeConfig, _: Callback<()>) {}

/// Typing whispers on the private channel two people share.
#[derive(Clone, Copy)]
pub struct TypingChannel {
    live: Live,
    channel: StoredValue<String>,
    /// True while subscribed: whispers can go both ways.
    pub ready: RwSignal<bool>,
}

impl TypingChannel {
    /// Listens for `client-typing` from the other person until the calling component goes away.
    /// The connection opens after hydration, so the subscription waits for it.
    pub fn join(live: Live, channel: String, on_typing: impl Fn(Typing) + Send + Sync + 'static) -> Self {
        let ready = RwSignal::new(false);
        #[cfg(feature = "hydrate")]
        {
            use crate::realtime::EVENT_TYPING;
            use crate::realtime::client::ChannelEvent;
            let on_typing = std::sync::Arc::new(on_typing);
            let joined = StoredValue::new(None::<crate::realtime::client::ListenerId>);
            let name = channel.clone();
            Effect::new(move |_| {
                live.connection.track();
                if joined.get_value().is_some() {
                    return;
                }
                let Some(client) = live.client.get_value() else { return };
                let on_typing = on_typing.clone();
                let id = client.subscribe(&name, move |event| match event {
                    ChannelEvent::Subscribed { .. } => ready.set(true),
                    ChannelEvent::SubscriptionFailed { .. } => ready.set(false),
                    ChannelEvent::Whisper { name, data, .. } if name == EVENT_TYPING => {
                        if let Ok(typing) = serde_json::from_value::<Typing>(data) {
                            on_typing(typing);
                        }
                    }
                    _ => {}
                });
                joined.set_value(Some(id));
            });
            on_cleanup(move || {
                if let (Some(id), Some(Some(client))) = (joined.get_value(), live.client.try_get_value()) {
                    client.unsubscribe(id);
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = on_typing;
        Self { live, channel: StoredValue::new(channel), ready }
    }

    /// Tells the other person I am typing; false when the whisper could not go out.
    pub fn say_typing(&self, typing: &Typing) -> bool {
        #[cfg(feature = "hydrate")]
        {
            use crate::realtime::EVENT_TYPING;
            let Some(client) = self.live.client.get_value() else { return false };
            let Ok(data) = serde_json::to_value(typing) else { return false };
            self.channel.with_value(|channel| client.whisper(channel, EVENT_TYPING, data))
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (typing, self.live, self.channel);
            false
        }
    }
}

/// "Connecting…", "Offline — messages will be sent when you're back", "Back online": shown only
/// when something is worth saying (not during the first, quick connect).
#[component]
pub fn ConnectionBanner() -> impl IntoView {
    let live = expect_context::<Live>();
    let was_connected = RwSignal::new(false);
    let back_online = RwSignal::new(false);
    Effect::new(move |previous: Option<ConnectionState>| {
        let now = live.connection.get();
        if now == ConnectionState::Connected {
            if was_connected.get_untracked() && previous.is_some_and(|p| p != ConnectionState::Connected) {
                back_online.set(true);
                set_timeout(move || back_online.set(false), std::time::Duration::from_secs(3));
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
    view! {
        <div class="connection-banner" role="status" aria-live="polite">
            {move || {
                message().map(|(kind, text)| view! { <span class="connection" data-state=kind>{text}</span> })
            }}
        </div>
    }
}
