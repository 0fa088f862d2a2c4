//! The browser half of [`Live`]: the one Pusher connection of this tab, the listeners of its
//! events, the groups it follows, and typing whispers. Compiled only with `hydrate`; on the server
//! its twin in `live.rs` does nothing, so the page renders complete without a connection.

use std::collections::HashMap;
use std::rc::Rc;

use leptos::prelude::*;

use super::Live;
use crate::model::CurrentUser;
use crate::realtime::client::{ChannelEvent, ListenerId, PusherClient};
use crate::realtime::machine::ConnectionState;
use crate::realtime::{EVENT_TYPING, EventChannels, LiveEvent, RealtimeConfig, Typing};

type Listener = Rc<dyn Fn(&LiveEvent)>;

#[derive(Default)]
struct State {
    listeners: Vec<(u64, Listener)>,
    next_listener: u64,
    client: Option<PusherClient>,
    /// Where the server's events come: encrypted channels or not, as the server said.
    channels: EventChannels,
    /// The groups whose channel this tab follows, and its subscription to each.
    rooms: HashMap<i64, ListenerId>,
}

/// This tab's connection and listeners. Local (non-`Send`) state, created only in the browser.
#[derive(Clone, Copy)]
pub struct Tab(StoredValue<State, LocalStorage>);

impl Tab {
    pub fn new() -> Self {
        Self(StoredValue::new_local(State::default()))
    }

    fn client(&self) -> Option<PusherClient> {
        self.0.try_with_value(|s| s.client).flatten()
    }

    pub fn browser_online() -> bool {
        window().navigator().on_line()
    }

    /// Calls `listener` with every event until the calling component is cleaned up.
    pub fn listen(&self, listener: impl Fn(&LiveEvent) + 'static) {
        let state = self.0;
        let id = state.with_value(|s| s.next_listener);
        state.update_value(|s| {
            s.next_listener += 1;
            s.listeners.push((id, Rc::new(listener)));
        });
        on_cleanup(move || {
            state.try_update_value(|s| s.listeners.retain(|(other, _)| *other != id));
        });
    }

    fn dispatch(&self, event: &LiveEvent) {
        // Cloned first: a listener may add or remove listeners while it runs.
        let all: Vec<Listener> = self.0.with_value(|s| s.listeners.iter().map(|(_, l)| l.clone()).collect());
        for listener in all {
            listener(event);
        }
    }

    /// Hands a channel's application events to the listeners.
    fn on_channel(self, live: Live, on_change: Callback<()>) -> impl Fn(ChannelEvent) + 'static {
        move |event| match event {
            // After a (re)subscription, and when events could not be decrypted even with a fresh
            // key: whatever was missed comes from the catch-up fetch.
            ChannelEvent::Subscribed { .. } | ChannelEvent::Undecryptable { .. } => {
                live.resynced.update(|n| *n += 1);
                on_change.run(());
            }
            ChannelEvent::Event { name, data } => match LiveEvent::decode(&name, &data) {
                // Only the dots change: nothing to read again.
                Some(LiveEvent::StatusChanged(status)) => live.seed_online([(status.user_id, status.online)]),
                Some(event) => {
                    self.dispatch(&event);
                    on_change.run(());
                }
                None => {}
            },
            _ => {}
        }
    }

    pub fn socket_id(&self) -> Option<String> {
        self.client().and_then(|c| c.socket_id())
    }

    /// Opens the connection and subscribes to my channel.
    pub fn connect(&self, live: Live, me: &CurrentUser, config: RealtimeConfig, on_change: Callback<()>) {
        if self.client().is_some() {
            return;
        }
        let channels = config.channels;
        let client = PusherClient::connect(config, "/broadcasting/auth");
        self.0.update_value(|s| {
            s.client = Some(client);
            s.channels = channels;
        });
        let state = client.state();
        Effect::new(move |was: Option<ConnectionState>| {
            let now = state.get();
            // A lost connection means missed status changes: show nobody rather than stale dots,
            // until the resubscription reads the list again. (The page's own dots, as it was
            // rendered, stay while the first connection opens.)
            if was == Some(ConnectionState::Connected) && now != ConnectionState::Connected {
                live.online.update(|online| online.clear());
            }
            live.connection.set(now);
            now
        });
        client.subscribe(&channels.user(me.id), self.on_channel(live, on_change));
    }

    /// Follows exactly these groups' channels: new ones are subscribed, others let go.
    pub fn follow_rooms(&self, live: Live, rooms: Vec<i64>, on_change: Callback<()>) {
        let Some(client) = self.client() else { return };
        let tab = *self;
        self.0.update_value(|s| {
            s.rooms.retain(|room, id| {
                let keep = rooms.contains(room);
                if !keep {
                    client.unsubscribe(*id);
                }
                keep
            });
            let names = s.channels;
            for room in rooms {
                s.rooms
                    .entry(room)
                    .or_insert_with(|| client.subscribe(&names.room(room), tab.on_channel(live, on_change)));
            }
        });
    }

    /// Subscribes to `channel` for its `client-typing` whispers once the connection exists, until
    /// the calling component goes away. `ready` says whether whispers can go both ways.
    pub fn join_typing(
        &self,
        live: Live,
        channel: String,
        ready: RwSignal<bool>,
        on_typing: impl Fn(Typing) + Send + Sync + 'static,
    ) {
        let tab = *self;
        let on_typing = std::sync::Arc::new(on_typing);
        let joined = StoredValue::new(None::<ListenerId>);
        Effect::new(move |_| {
            live.connection.track();
            if joined.get_value().is_some() {
                return;
            }
            let Some(client) = tab.client() else { return };
            let on_typing = on_typing.clone();
            let id = client.subscribe(&channel, move |event| match event {
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
            if let (Some(id), Some(client)) = (joined.get_value(), tab.client()) {
                client.unsubscribe(id);
            }
        });
    }

    /// Whispers `typing` on `channel`; false when it could not go out.
    pub fn whisper(&self, channel: &str, typing: &Typing) -> bool {
        let Some(client) = self.client() else { return false };
        let Ok(data) = serde_json::to_value(typing) else { return false };
        client.whisper(channel, EVENT_TYPING, data)
    }
}
