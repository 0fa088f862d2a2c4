//! Notifications for messages that arrive while you are not looking (the tab hidden, or another
//! conversation open): a desktop notification once you turned them on (the browser asks only
//! after you click "Enable notifications", never on page load), an optional sound, and the
//! favicon's unread count. Muted conversations, your own messages and the conversation you are
//! looking at never notify. The choices are this browser's (localStorage); mutes are the
//! server's, so they follow you to every device.

use leptos::prelude::*;

use crate::model::{ChatMessage, ConversationRef, MessageKind};

/// The browser's side: storage flags, the Notification API, the sound. Without `hydrate` (the
/// server's build) nothing is ever shown: notifications happen only in a browser.
#[cfg(feature = "hydrate")]
mod browser {
    use leptos::prelude::window;
    use web_sys::wasm_bindgen::JsCast;
    use web_sys::wasm_bindgen::closure::Closure;
    use web_sys::{HtmlAudioElement, Notification, NotificationOptions, NotificationPermission};

    /// The sound (a short chime, served from `public/`).
    const SOUND_URL: &str = "/notify.wav";

    pub fn flag(key: &str) -> bool {
        let storage = window().local_storage().ok().flatten();
        storage.and_then(|s| s.get_item(key).ok().flatten()).as_deref() == Some("on")
    }

    pub fn set_flag(key: &str, on: bool) {
        if let Ok(Some(storage)) = window().local_storage() {
            let _ = if on { storage.set_item(key, "on") } else { storage.remove_item(key) };
        }
    }

    /// Whether this browser has the Notification API at all.
    pub fn supported() -> bool {
        web_sys::js_sys::Reflect::has(&window(), &"Notification".into()).unwrap_or(false)
    }

    pub fn granted() -> bool {
        supported() && Notification::permission() == NotificationPermission::Granted
    }

    /// Asks the browser; true when it allows notifications.
    pub async fn ask() -> bool {
        let Ok(promise) = Notification::request_permission() else { return false };
        let answer = wasm_bindgen_futures::JsFuture::from(promise).await.ok().and_then(|v| v.as_string());
        answer.as_deref() == Some("granted")
    }

    pub fn notify(title: &str, body: &str, tag: &str, open: impl FnOnce() + 'static) {
        let options = NotificationOptions::new();
        options.set_body(body);
        options.set_tag(tag);
        options.set_icon("/favicon.svg");
        if let Ok(notification) = Notification::new_with_options(title, &options) {
            let shown = notification.clone();
            let on_click = Closure::once_into_js(move || {
                let _ = window().focus();
                open();
                shown.close();
            });
            notification.set_onclick(Some(on_click.unchecked_ref()));
        }
    }

    pub fn chime() {
        if let Ok(audio) = HtmlAudioElement::new_with_src(SOUND_URL) {
            let _ = audio.play();
        }
    }
}

#[cfg(not(feature = "hydrate"))]
mod browser {
    pub fn flag(_: &str) -> bool {
        false
    }
    pub fn set_flag(_: &str, _: bool) {}
    pub fn supported() -> bool {
        false
    }
    pub fn granted() -> bool {
        false
    }
    pub async fn ask() -> bool {
        false
    }
    pub fn notify(_: &str, _: &str, _: &str, _: impl FnOnce() + 'static) {}
    pub fn chime() {}
}

use browser::{flag, granted, set_flag, supported};

/// localStorage: "on" once notifications were turned on here (and the browser allowed them).
const NOTIFY_KEY: &str = "banter-notifications";
/// localStorage: "on" for a sound with each notification.
const SOUND_KEY: &str = "banter-sound";

/// What a new message means for this tab: a notification about it, or nothing.
pub struct Incoming<'a> {
    pub message: &'a ChatMessage,
    pub me: i64,
    /// The conversation this tab shows, if any.
    pub open: Option<ConversationRef>,
    /// Whether the tab is visible.
    pub visible: bool,
    pub muted: bool,
}

impl Incoming<'_> {
    /// The conversation it belongs to.
    pub fn conversation(&self) -> ConversationRef {
        match self.message.room_id {
            Some(room) => ConversationRef::Group(room),
            None if self.message.sender_id == self.me => ConversationRef::Direct(self.message.recipient_id),
            None => ConversationRef::Direct(self.message.sender_id),
        }
    }

    /// Someone else's text, in a conversation that is not muted and not in front of me.
    pub fn deserves_notice(&self) -> bool {
        let looking = self.visible && self.open == Some(self.conversation());
        self.message.sender_id != self.me && self.message.kind == MessageKind::Text && !self.muted && !looking
    }
}

/// The notification's text: the first line, shortened.
pub fn first_line(body: &str) -> String {
    let line = body.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    if line.chars().count() > 120 {
        format!("{}…", line.chars().take(119).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// Shows a desktop notification (when turned on and allowed) and plays the sound (when chosen).
/// Clicking it brings this tab forward and runs `open` (which opens the conversation).
pub fn show(title: &str, body: &str, tag: &str, open: impl FnOnce() + 'static) {
    if !flag(NOTIFY_KEY) || !granted() {
        return;
    }
    browser::notify(title, body, tag, open);
    if flag(SOUND_KEY) {
        browser::chime();
    }
}

/// The icon with the unread count on it, as a `data:` URL; the plain icon when nothing is unread.
pub fn favicon(unread: i64) -> String {
    if unread <= 0 {
        return "/favicon.svg".to_owned();
    }
    let label = crate::model::unread_label(unread);
    let size = if label.len() > 2 { 22 } else { 28 };
    let svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 64 64'><rect width='64' height='64' rx='14' \
         fill='#4f46e5'/><path d='M16 20h32a4 4 0 0 1 4 4v14a4 4 0 0 1-4 4H30l-9 7v-7h-5a4 4 0 0 1-4-4V24a4 4 0 0 1 \
         4-4z' fill='#fff'/><circle cx='46' cy='18' r='18' fill='#d93025'/><text x='46' y='{y}' font-size='{size}' \
         font-family='Arial,sans-serif' font-weight='700' text-anchor='middle' fill='#fff'>{label}</text></svg>",
        y = 18 + size * 7 / 20,
    );
    // Into one string: a string per character was 600 allocations on every page with unread messages.
    let mut url = String::with_capacity(svg.len() * 2);
    url.push_str("data:image/svg+xml,");
    for c in svg.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | ' ' | '\'' | '=' | '/' | ':' | '.' | ',' | '-' => url.push(c),
            _ => {
                use std::fmt::Write;
                let _ = write!(url, "%{:02X}", c as u32);
            }
        }
    }
    url
}

/// "Enable notifications", and once on, the sound switch. Drawn only in a browser that has
/// notifications (after hydration): without JavaScript there is nothing to notify with.
#[component]
pub fn NotificationSwitch() -> impl IntoView {
    let available = RwSignal::new(false);
    let on = RwSignal::new(false);
    let sound = RwSignal::new(false);
    let refused = RwSignal::new(false);
    Effect::new(move |_| {
        available.set(supported());
        on.set(flag(NOTIFY_KEY) && granted());
        sound.set(flag(SOUND_KEY));
    });
    let toggle = move |_| {
        if on.get_untracked() {
            set_flag(NOTIFY_KEY, false);
            on.set(false);
            return;
        }
        leptos::task::spawn_local(async move {
            let allowed = browser::ask().await;
            set_flag(NOTIFY_KEY, allowed);
            on.try_set(allowed);
            refused.try_set(!allowed);
        });
    };
    let toggle_sound = move |_| {
        let next = !sound.get_untracked();
        set_flag(SOUND_KEY, next);
        sound.set(next);
    };
    view! {
        <Show when=move || available.get()>
            <button
                class="button button-ghost notify-toggle"
                type="button"
                aria-pressed=move || on.get().to_string()
                on:click=toggle
                title=move || if refused.get() { "The browser blocks notifications for this site" } else { "" }
            >
                {move || if on.get() { "🔔 Notifications on" } else { "Enable notifications" }}
            </button>
            <Show when=move || on.get()>
                <button
                    class="button button-ghost"
                    type="button"
                    aria-pressed=move || sound.get().to_string()
                    on:click=toggle_sound
                >
                    {move || if sound.get() { "Sound on" } else { "Sound off" }}
                </button>
            </Show>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn message(sender_id: i64, recipient_id: i64, room_id: Option<i64>, kind: MessageKind) -> ChatMessage {
        ChatMessage {
            id: 1,
            sender_id,
            recipient_id,
            room_id,
            sender_name: "bob".into(),
            kind,
            body: "hi".into(),
            client_id: "c".into(),
            created_at: Utc::now(),
            read_at: None,
            edited_at: None,
            deleted: false,
            change: 0,
            reply_to: None,
            reactions: Vec::new(),
            attachments: Vec::new(),
        }
    }

    #[test]
    fn only_others_text_in_an_unmuted_conversation_out_of_sight_notifies() {
        let theirs = message(2, 1, None, MessageKind::Text);
        let incoming = |open, visible, muted| Incoming { message: &theirs, me: 1, open, visible, muted };
        assert_eq!(incoming(None, true, false).conversation(), ConversationRef::Direct(2));
        assert!(incoming(None, true, false).deserves_notice(), "another pane open");
        assert!(incoming(Some(ConversationRef::Direct(3)), true, false).deserves_notice(), "another conversation open");
        assert!(incoming(Some(ConversationRef::Direct(2)), false, false).deserves_notice(), "the tab is hidden");
        assert!(!incoming(Some(ConversationRef::Direct(2)), true, false).deserves_notice(), "looking at it");
        assert!(!incoming(None, false, true).deserves_notice(), "muted");

        let mine = message(1, 2, None, MessageKind::Text);
        let from_me = Incoming { message: &mine, me: 1, open: None, visible: false, muted: false };
        assert_eq!(from_me.conversation(), ConversationRef::Direct(2));
        assert!(!from_me.deserves_notice(), "my own, from another tab");

        let line = message(2, 0, Some(7), MessageKind::System);
        let system = Incoming { message: &line, me: 1, open: None, visible: false, muted: false };
        assert_eq!(system.conversation(), ConversationRef::Group(7));
        assert!(!system.deserves_notice(), "a group's system line");
    }

    #[test]
    fn the_first_line_is_shown_short() {
        assert_eq!(first_line("\n  Lunch?  \nsecond"), "Lunch?");
        assert_eq!(first_line(&"x".repeat(200)).chars().count(), 120);
    }

    #[test]
    fn the_favicon_carries_the_count() {
        assert_eq!(favicon(0), "/favicon.svg");
        assert!(favicon(3).starts_with("data:image/svg+xml,") && favicon(3).contains("%3E3%3C"));
        // `#` would end the URL: the colours are escaped.
        assert!(!favicon(3).contains('#') && favicon(3).contains("fill='%234f46e5'"));
        assert!(favicon(250).contains("99+") || favicon(250).contains("99%2B"));
    }
}
