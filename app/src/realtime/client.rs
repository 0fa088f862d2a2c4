//! The browser's Pusher Channels client: wires a web-sys WebSocket, the auth endpoint (fetch), a
//! one-second ticker and the window's online/offline/visibility events to [`Machine`], which makes every
//! decision. Nothing here decides anything the machine's tests do not cover.
//!
//! Re-entrancy: listeners run with no `RefCell` borrowed, so a listener may call back into the client
//! (subscribe, whisper, unsubscribe itself). A replaced socket loses its handlers before it is closed,
//! and its `Closure`s are dropped once the current event handler has returned.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use gloo_net::http::Request;
use gloo_timers::callback::Interval;
use leptos::prelude::*;
use pusher_protocol::ChannelAuthorization;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, VisibilityState, WebSocket};

use super::RealtimeConfig;
use super::machine::{ABNORMAL_CLOSURE, Command, Machine, WhisperRefused, auth_error_message, auth_form};
pub use super::machine::{ChannelEvent, ConnectionState, ListenerId};

/// How often the machine's clock input runs: reconnect timers, connect timeout, keepalive, auth retries.
const TICK_MS: u32 = 1_000;

type Listener = Rc<dyn Fn(ChannelEvent)>;

/// A handle on the page's one Pusher connection. `Copy + Send + Sync`, so it can live in a leptos context;
/// the state behind it is single-threaded and owned by the reactive owner that called [`connect`](Self::connect).
#[derive(Clone, Copy)]
pub struct PusherClient {
    inner: StoredValue<Rc<Inner>, LocalStorage>,
    state: RwSignal<ConnectionState>,
}

impl PusherClient {
    /// Starts connecting now to `config`'s WebSocket URL (the page's own host for the embedded server).
    /// `auth_endpoint` is POSTed for private and presence channels, on the page's origin (cookies go along).
    pub fn connect(config: RealtimeConfig, auth_endpoint: &'static str) -> Self {
        let state = RwSignal::new(ConnectionState::Initialized);
        let (host, tls) = page_location();
        let url = config.websocket_url(&host, tls);
        let inner = Rc::new_cyclic(|weak| Inner {
            url,
            auth_endpoint,
            state,
            machine: RefCell::new(Machine::new(random_seed())),
            listeners: RefCell::new(HashMap::new()),
            socket: RefCell::new(None),
            generation: Cell::new(0),
            _hooks: BrowserHooks::install(weak),
        });
        inner.feed(|m, now| m.connect(now));
        Self { inner: StoredValue::new_local(inner), state }
    }

    /// The connection state, reactively.
    pub fn state(&self) -> Signal<ConnectionState> {
        self.state.into()
    }

    /// The current socket id (`123.456`), while connected: pass it to `send_message` so this tab is not
    /// sent its own message back.
    pub fn socket_id(&self) -> Option<String> {
        let inner = self.inner.try_get_value()?;
        let machine = inner.machine.try_borrow().ok()?;
        machine.socket_id().map(str::to_owned)
    }

    /// Adds `listener` to `channel`, subscribing when it is the channel's first listener. The listener
    /// hears `Subscribed` after every successful (re)subscription (at once if already subscribed).
    pub fn subscribe(&self, channel: &str, listener: impl Fn(ChannelEvent) + 'static) -> ListenerId {
        let Some(inner) = self.inner.try_get_value() else { return ListenerId::DETACHED };
        let Ok(mut machine) = inner.machine.try_borrow_mut() else { return ListenerId::DETACHED };
        let (id, commands) = machine.subscribe(channel);
        drop(machine);
        inner.listeners.borrow_mut().insert(id, Rc::new(listener));
        inner.run(commands);
        id
    }

    /// Removes a listener; the channel is left (`pusher:unsubscribe`) when its last listener goes.
    pub fn unsubscribe(&self, id: ListenerId) {
        let Some(inner) = self.inner.try_get_value() else { return };
        inner.listeners.borrow_mut().remove(&id);
        inner.feed(|m, _| m.unsubscribe(id));
    }

    /// Sends a `client-*` event to the channel's other subscribers. `false` when not connected, not
    /// subscribed to `channel`, or the event breaks the protocol's rules (name, channel kind, 10 KiB).
    pub fn whisper(&self, channel: &str, event: &str, data: serde_json::Value) -> bool {
        let Some(inner) = self.inner.try_get_value() else { return false };
        let frame = match inner.machine.try_borrow() {
            Ok(machine) => machine.whisper(channel, event, data),
            Err(_) => return false,
        };
        match frame {
            Ok(text) => inner.send(&text),
            Err(WhisperRefused::Invalid(error)) => {
                leptos::logging::warn!("realtime: whisper {event} on {channel} refused: {error}");
                false
            }
            Err(WhisperRefused::NotConnected | WhisperRefused::NotSubscribed) => false,
        }
    }

    /// Closes the connection for good (state `Disconnected`); nothing reconnects it.
    pub fn disconnect(&self) {
        if let Some(inner) = self.inner.try_get_value() {
            inner.feed(|m, _| m.disconnect());
        }
    }
}

struct Inner {
    url: String,
    auth_endpoint: &'static str,
    state: RwSignal<ConnectionState>,
    machine: RefCell<Machine>,
    listeners: RefCell<HashMap<ListenerId, Listener>>,
    socket: RefCell<Option<Socket>>,
    /// Bumped whenever the socket is replaced or dropped; events of older sockets are ignored.
    generation: Cell<u64>,
    /// Kept for its `Drop`, which unhooks it from the window.
    _hooks: Option<BrowserHooks>,
}

impl Inner {
    /// Gives the machine one input and carries out what it asks for.
    fn feed(self: &Rc<Self>, input: impl FnOnce(&mut Machine, u64) -> Vec<Command>) {
        let commands = match self.machine.try_borrow_mut() {
            Ok(mut machine) => input(&mut machine, now_ms()),
            Err(_) => {
                leptos::logging::warn!("realtime: re-entrant machine input dropped");
                return;
            }
        };
        self.run(commands);
    }

    /// Carries out commands with no borrow held across a listener call.
    fn run(self: &Rc<Self>, commands: Vec<Command>) {
        for command in commands {
            match command {
                Command::SetState(state) => {
                    let _ = self.state.try_set(state);
                }
                Command::Connect => self.open_socket(),
                Command::Close => self.drop_socket(),
                Command::Send(text) => {
                    self.send(&text);
                }
                Command::Authorize { channel, socket_id } => self.authorize(channel, socket_id),
                Command::Deliver { listeners, event } => {
                    for id in listeners {
                        let listener = self.listeners.borrow().get(&id).cloned();
                        if let Some(listener) = listener {
                            listener(event.clone());
                        }
                    }
                }
                Command::Log(message) => leptos::logging::warn!("{message}"),
            }
        }
    }

    fn send(&self, text: &str) -> bool {
        let socket = self.socket.borrow();
        let Some(socket) = socket.as_ref() else { return false };
        match socket.ws.send_with_str(text) {
            Ok(()) => true,
            Err(error) => {
                leptos::logging::warn!("realtime: send failed: {error:?}");
                false
            }
        }
    }

    fn open_socket(self: &Rc<Self>) {
        self.drop_socket();
        match Socket::open(&self.url, Rc::downgrade(self), self.generation.get()) {
            Ok(socket) => *self.socket.borrow_mut() = Some(socket),
            Err(error) => {
                leptos::logging::warn!("realtime: cannot open {}: {error:?}", self.url);
                self.feed(|m, now| m.closed(now, ABNORMAL_CLOSURE));
            }
        }
    }

    /// Forgets the current socket: its handlers go at once, the socket (and its `Closure`s) right after
    /// the running event handler, which may be one of them.
    fn drop_socket(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        let socket = self.socket.borrow_mut().take();
        if let Some(socket) = socket {
            socket.detach();
            leptos::task::spawn_local(async move { drop(socket) });
        }
    }

    fn is_current(&self, generation: u64) -> bool {
        self.generation.get() == generation
    }

    /// Asks the auth endpoint to sign `channel` for `socket_id`; the machine drops the answer if the
    /// socket changed meanwhile.
    fn authorize(self: &Rc<Self>, channel: String, socket_id: String) {
        let weak = Rc::downgrade(self);
        let endpoint = self.auth_endpoint;
        leptos::task::spawn_local(async move {
            let result = request_authorization(endpoint, &socket_id, &channel).await;
            let Some(inner) = weak.upgrade() else { return };
            match result {
                Ok(authorization) => inner.feed(|m, _| m.auth_ok(&channel, &socket_id, authorization)),
                Err((status, message)) => {
                    inner.feed(|m, now| m.auth_failed(now, &channel, &socket_id, status, message))
                }
            }
        });
    }
}

/// `Err((status, message))`: status 0 when the endpoint could not be reached, 500 when a 2xx answer
/// was not a `ChannelAuthorization` (both retried).
async fn request_authorization(
    endpoint: &str,
    socket_id: &str,
    channel: &str,
) -> Result<ChannelAuthorization, (u16, String)> {
    let request = Request::post(endpoint)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json")
        .body(auth_form(socket_id, channel))
        .map_err(|e| (0, format!("could not build the auth request: {e}")))?;
    let response = request.send().await.map_err(|e| (0, format!("could not reach the auth endpoint: {e}")))?;
    let status = response.status();
    if !response.ok() {
        let body = response.text().await.unwrap_or_default();
        return Err((status, auth_error_message(status, &body)));
    }
    response.json::<ChannelAuthorization>().await.map_err(|e| (500, format!("unreadable auth response: {e}")))
}

/// One WebSocket with its event handlers. Dropping it unhooks the handlers and closes the socket.
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    fn open(url: &str, weak: Weak<Inner>, generation: u64) -> Result<Self, wasm_bindgen::JsValue> {
        let ws = WebSocket::new(url)?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let on_open = {
            let weak = weak.clone();
            Closure::<dyn FnMut(Event)>::new(move |_: Event| {
                if let Some(inner) = weak.upgrade().filter(|i| i.is_current(generation)) {
                    inner.feed(|m, now| m.opened(now));
                }
            })
        };
        let on_message = {
            let weak = weak.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                // Protocol 7 is text only; binary messages are not ours to read.
                let Some(text) = event.data().as_string() else { return };
                if let Some(inner) = weak.upgrade().filter(|i| i.is_current(generation)) {
                    inner.feed(|m, now| m.frame(now, &text));
                }
            })
        };
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            if let Some(inner) = weak.upgrade().filter(|i| i.is_current(generation)) {
                inner.drop_socket();
                inner.feed(|m, now| m.closed(now, event.code()));
            }
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Self { ws, _on_open: on_open, _on_message: on_message, _on_close: on_close })
    }

    fn detach(&self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.detach();
        // Closing a socket that is already closing or closed does nothing.
        let _ = self.ws.close();
    }
}

/// The window's `online`/`offline`, the document's `visibilitychange`, and the ticker; all unhooked on drop.
struct BrowserHooks {
    window: web_sys::Window,
    document: Option<web_sys::Document>,
    on_online: Closure<dyn FnMut(Event)>,
    on_offline: Closure<dyn FnMut(Event)>,
    on_visibility: Closure<dyn FnMut(Event)>,
    _ticker: Interval,
}

impl BrowserHooks {
    fn install(weak: &Weak<Inner>) -> Option<Self> {
        let window = web_sys::window()?;
        let document = window.document();
        let on_online = on_event(weak, |m, now| m.online(now));
        let on_offline = on_event(weak, |m, now| m.offline(now));
        let on_visibility = {
            let weak = weak.clone();
            let document = document.clone();
            Closure::<dyn FnMut(Event)>::new(move |_: Event| {
                let visible = document.as_ref().is_some_and(|d| d.visibility_state() == VisibilityState::Visible);
                if let Some(inner) = weak.upgrade().filter(|_| visible) {
                    inner.feed(|m, now| m.visible(now));
                }
            })
        };
        let ticker = {
            let weak = weak.clone();
            Interval::new(TICK_MS, move || {
                if let Some(inner) = weak.upgrade() {
                    inner.feed(|m, now| m.tick(now));
                }
            })
        };
        let _ = window.add_event_listener_with_callback("online", on_online.as_ref().unchecked_ref());
        let _ = window.add_event_listener_with_callback("offline", on_offline.as_ref().unchecked_ref());
        if let Some(document) = &document {
            let _ =
                document.add_event_listener_with_callback("visibilitychange", on_visibility.as_ref().unchecked_ref());
        }
        Some(Self { window, document, on_online, on_offline, on_visibility, _ticker: ticker })
    }
}

impl Drop for BrowserHooks {
    fn drop(&mut self) {
        let _ = self.window.remove_event_listener_with_callback("online", self.on_online.as_ref().unchecked_ref());
        let _ = self.window.remove_event_listener_with_callback("offline", self.on_offline.as_ref().unchecked_ref());
        if let Some(document) = &self.document {
            let _ = document
                .remove_event_listener_with_callback("visibilitychange", self.on_visibility.as_ref().unchecked_ref());
        }
    }
}

fn on_event(weak: &Weak<Inner>, input: fn(&mut Machine, u64) -> Vec<Command>) -> Closure<dyn FnMut(Event)> {
    let weak = weak.clone();
    Closure::<dyn FnMut(Event)>::new(move |_: Event| {
        if let Some(inner) = weak.upgrade() {
            inner.feed(input);
        }
    })
}

/// The page's `host` (with port) and whether it was served over https.
fn page_location() -> (String, bool) {
    let Some(location) = web_sys::window().map(|w| w.location()) else { return (String::new(), false) };
    let host = location.host().unwrap_or_default();
    let tls = location.protocol().is_ok_and(|p| p == "https:");
    (host, tls)
}

/// Milliseconds on the wall clock; the machine only compares differences, and tolerates a clock that
/// jumps backwards (its timers then fire late, never early).
fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// Seeds the reconnect jitter; any value works, the point is that browsers differ.
fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    let random = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
    if random { u64::from_le_bytes(bytes) } else { now_ms() }
}
