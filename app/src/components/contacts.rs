//! The contact list: your conversations and the newest members, searchable, with previews, times
//! and unread badges.

use leptos::prelude::*;
use leptos::reactive::computed::ScopedFuture;
use leptos_meta::{Link, Title};

use crate::components::live::Live;
use crate::components::{Avatar, ChatState, ErrorBanner};
use crate::components::{notify, saved};
use crate::error::AppError;
use crate::model::{Contact, ContactKind, ContactPage, ConversationRef, MessageKind};
use crate::text::{plain, preview};
use crate::time::{LocalClock, day_month, relative};
use crate::validation::NAME_MAX_CHARS;

pub type ContactsResource = Resource<Result<ContactPage, AppError>>;

/// How long typing must pause before the server is asked to search.
const SEARCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// The document title: the unread count first, as chat apps do.
fn title(unread: i64) -> String {
    match unread {
        0 => "Banter".to_owned(),
        n => format!("({}) Banter", crate::model::unread_label(n)),
    }
}

/// What selects the contact rows' links.
const ROW_LINK: &str = ".contact-list a.contact";

/// The contact row link `target` is (or is in), if any.
fn row_link(target: &web_sys::EventTarget) -> Option<web_sys::Element> {
    use leptos::wasm_bindgen::JsCast;
    target.dyn_ref::<web_sys::Element>()?.closest(ROW_LINK).ok().flatten()
}

/// The focus left a row link: forgotten when it went to another element, or when the person
/// clicked outside it (the link is still there, the window still has the focus). Kept when the
/// link itself was removed, which is what drawing the list anew does, or the window lost the focus.
fn left_row(ev: web_sys::FocusEvent, focused: StoredValue<Option<String>>) {
    use leptos::wasm_bindgen::JsCast;
    if ev.related_target().is_some() {
        focused.set_value(None);
        return;
    }
    let Some(target) = ev.target().and_then(|t| t.dyn_into::<web_sys::Node>().ok()) else { return };
    set_timeout(
        move || {
            if target.is_connected() && document().has_focus().unwrap_or(false) {
                focused.set_value(None);
            }
        },
        std::time::Duration::ZERO,
    );
}

/// Puts the focus back on the row that had it, when drawing that row anew took it away (nothing
/// has the focus now): on the new link to the same conversation, if it is still listed.
fn refocus(focused: StoredValue<Option<String>>) {
    use leptos::wasm_bindgen::JsCast;
    let Some(href) = focused.get_value() else { return };
    let doc = document();
    let lost = match (doc.active_element(), doc.body()) {
        (None, _) => true,
        (Some(active), Some(body)) => active == *body.as_ref(),
        (Some(_), None) => false,
    };
    // A row's address is a path of letters, digits and slashes (`Contact::href`): safe in a selector.
    if !lost || !href.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'/') {
        return;
    }
    let again = doc.query_selector(&format!("{ROW_LINK}[href=\"{href}\"]")).ok().flatten();
    match again.and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok()) {
        Some(link) => {
            let _ = link.focus();
        }
        None => focused.set_value(None),
    }
}

/// The list and its search box. `search` is what the server is asked for (the `q` query parameter
/// without JavaScript); while it answers, the rows already loaded are narrowed as you type.
#[component]
pub fn ContactList(
    contacts: ContactsResource,
    open_peer: Memo<Option<ConversationRef>>,
    search: RwSignal<String>,
) -> impl IntoView {
    let filter = RwSignal::new(search.get_untracked());
    let pending = StoredValue::new(None::<TimeoutHandle>);
    let on_input = move |value: String| {
        filter.set(value.clone());
        if let Some(handle) = pending.get_value() {
            handle.clear();
        }
        let handle = set_timeout_with_handle(move || search.set(value), SEARCH_PAUSE).ok();
        pending.set_value(handle);
    };
    view! {
        // Without JavaScript the form asks the server (GET ?q=); with it, the search is live.
        <div class="contacts-actions">
            <a class="button button-small" href="/chat/new-group" data-testid="new-group">
                "New group"
            </a>
        </div>
        <form class="contacts-search" role="search" method="get" on:submit=|ev| ev.prevent_default()>
            <input
                type="search"
                name="q"
                value=search.get_untracked()
                placeholder="Search people"
                aria-label="Search people"
                maxlength=NAME_MAX_CHARS.to_string()
                autocomplete="off"
                on:input:target=move |ev| on_input(ev.target().value())
            />
        </form>
        // Messages are searched on a page of their own, for what the box holds.
        {move || {
            let text = filter.get();
            (!text.trim().is_empty())
                .then(|| {
                    let href = crate::pages::search::search_href(text.trim(), None, 1);
                    view! {
                        <a class="search-messages" href=href data-testid="search-messages">
                            {format!("Search messages for “{}”", text.trim())}
                        </a>
                    }
                })
        }}
        <Transition fallback=ContactSkeleton>
            {move || Suspend::new(async move {
                // Waits for the first list only, without subscribing to the resource: the rows
                // below follow each new list themselves. A tracked wait would make this Suspend
                // resolve again at every reload, drawing every row anew (at every live event).
                let _ = ScopedFuture::new_untracked(async move { contacts.await }).await;
                view! { <Listing contacts open_peer search filter /> }
            })}
        </Transition>
    }
}

/// Done for each new list, on the server and in the browser: follow the channels of the groups I
/// am in, as the list names them; note who is online; and keep what notifications need to know of
/// each conversation (its name, and whether I muted it), which only the whole list knows.
fn take_in(page: &ContactPage, searched: bool, room_changed: Callback<()>, live: Live, chat: ChatState) {
    let rooms = page.people.iter().filter(|c| matches!(c.kind, ContactKind::Group { member: true, .. })).map(|c| c.id);
    live.follow_rooms(rooms.collect(), room_changed);
    live.seed_online(page.people.iter().filter(|c| c.kind == ContactKind::Person).map(|c| (c.id, c.online)));
    if !searched {
        chat.directory.set_value(page.people.iter().map(|c| (c.conversation(), (c.name.clone(), c.muted))).collect());
    }
}

/// What a row shows, as a key: a row whose key is unchanged is kept as it is.
fn shown(contact: &Contact) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    contact.hash(&mut hasher);
    hasher.finish()
}

/// The contacts of `page` whose names hold `needle` (lower case; empty holds all).
fn matching<'a>(page: &'a Option<ContactPage>, needle: &'a str) -> impl Iterator<Item = &'a Contact> {
    page.iter()
        .flat_map(|page| &page.people)
        .filter(move |c| needle.is_empty() || c.name.to_lowercase().contains(needle))
}

/// The loaded list. Each row is keyed by what it shows, so a new list (every live event brings
/// one) draws only the rows that changed, and the others keep their elements, the keyboard focus
/// among them. A reload that fails keeps the last list, under the error.
#[component]
fn Listing(
    contacts: ContactsResource,
    open_peer: Memo<Option<ConversationRef>>,
    search: RwSignal<String>,
    filter: RwSignal<String>,
) -> impl IntoView {
    let page = Memo::new(move |last: Option<&Option<ContactPage>>| {
        contacts.with(|result| match result {
            Some(Ok(page)) => Some(page.clone()),
            _ => last.cloned().flatten(),
        })
    });
    // Made once, here: a room subscription keeps the callback it was made with.
    let (chat, live) = (expect_context::<ChatState>(), expect_context::<Live>());
    let room_changed = Callback::new(move |()| chat.contacts_changed());
    // The unread count the title shows. One title reads it, in a signal of its own: on the server
    // the head is rendered after the body, when a signal of the page's reactive arena may be gone
    // (a title reading the resource was seen to panic under concurrent SSR), and a title drawn
    // again with the new text would leave the old one behind in leptos_meta's stack of titles.
    let unread = ArcRwSignal::new(0);
    let on_list = {
        let unread = unread.clone();
        move || {
            let searched = !search.get_untracked().trim().is_empty();
            page.with_untracked(|page| {
                if let Some(page) = page {
                    take_in(page, searched, room_changed, live, chat);
                    if unread.get_untracked() != page.unread {
                        unread.set(page.unread);
                    }
                }
            });
        }
    };
    on_list();
    let title_text = {
        let unread = unread.clone();
        move || title(unread.get())
    };
    // One for the list, which hydrates as a whole, not a signal and an effect per row. Ticking:
    // "now", "5m" age while the list stays as it is.
    let clock = LocalClock::ticking();
    // The rows the search box's text leaves (the server's answer for it may be on its way).
    let needle = move || filter.get().trim().to_lowercase();
    let rows = move || {
        let needle = needle();
        page.with(|page| matching(page, &needle).cloned().collect::<Vec<_>>())
    };
    // Asked without copying the rows.
    let none = move || {
        let needle = needle();
        page.with(|page| matching(page, &needle).next().is_none())
    };
    // The address of the row link that has the keyboard focus (an address, not the element: what
    // a page keeps must be sendable across the server's threads). A row that changed is drawn
    // anew, and moved to the top if it has a new message, which takes the focus away with the old
    // link; it is then put back on that conversation's new link, once the new rows are in place.
    let focused = StoredValue::new(None::<String>);
    // Each later list (the first one is taken in above, on the server as well), even one equal to
    // the list before: the first one read after the connection opened is when the groups' channels
    // can be followed, and one read after a reconnection brings back the online dots. Then the
    // focus, if a redrawn row took it away (a frame later, the new rows are in place).
    Effect::new(move |taken: Option<()>| {
        contacts.track();
        if taken.is_some() {
            untrack(&on_list);
        }
        request_animation_frame(move || refocus(focused));
    });
    view! {
        <Title text=title_text />
        {move || view! { <Link rel="icon" href=notify::favicon(unread.get()) /> }}
        {move || {
            let failed = contacts.with(|result| result.as_ref().and_then(|r| r.as_ref().err().cloned()));
            failed.map(|error| view! { <ErrorBanner error on_retry=move |()| contacts.refetch() /> })
        }}
        {move || {
            page.with(|page| {
                let page = page.as_ref()?;
                let searching = search.get_untracked();
                let (class, note) = if !page.people.is_empty() {
                    // Only the unsearched list says whether you have talked to anyone.
                    let talked =
                        !searching.trim().is_empty() || page.people.iter().any(|c| c.last_message.is_some());
                    if talked {
                        return None;
                    }
                    ("hint", "No conversations yet. Pick someone to say hello.".to_owned())
                } else if searching.trim().is_empty() {
                    ("empty-state", "Nobody else is here yet. Invite someone to register!".to_owned())
                } else {
                    ("empty-state", format!("Nobody called “{}” here.", searching.trim()))
                };
                Some(view! { <p class=class>{note}</p> })
            })
        }}
        <ul
            class="contact-list"
            hidden=none
            on:focusin=move |ev| {
                let link = ev.target().and_then(|t| row_link(&t));
                focused.set_value(link.and_then(|link| link.get_attribute("href")));
            }
            on:focusout=move |ev| left_row(ev, focused)
        >
            <For each=rows key=shown let(contact)>
                <ContactRow contact open_peer clock />
            </For>
        </ul>
    }
}

#[component]
fn ContactRow(contact: Contact, open_peer: Memo<Option<ConversationRef>>, clock: LocalClock) -> impl IntoView {
    let id = contact.id;
    let target = match contact.kind {
        ContactKind::Person => ConversationRef::Direct(id),
        ContactKind::Group { .. } => ConversationRef::Group(id),
    };
    let group = contact.is_group();
    let last = contact.last_message.clone();
    let when = last.as_ref().map(|m| m.created_at);
    // "You: …" for mine, "Dana: …" in a group, and a group's own lines ("Dana added Erin") as they are.
    let preview_text = last.as_ref().map(|m| {
        let text = match () {
            _ if m.deleted => crate::model::TOMBSTONE.to_owned(),
            // Files without text: say so rather than show nothing.
            _ if m.body.is_empty() && m.kind != MessageKind::System => "📎 Files".to_owned(),
            _ => preview(&plain(&m.body), 60),
        };
        match (&m.sender_name, m.kind) {
            (_, MessageKind::System) => text,
            _ if m.from_me => format!("You: {text}"),
            (Some(name), _) => format!("{name}: {text}"),
            (None, _) => text,
        }
    });
    let unread = contact.unread;
    let live = expect_context::<Live>();
    let online = move || !group && live.online.with(|online| online.contains(&id));
    let subtitle = match contact.kind {
        ContactKind::Group { member: false, .. } => Some("You are no longer a member".to_owned()),
        _ => None,
    };
    // A draft kept in this browser (see the composer), for conversations not open right now.
    let draft = RwSignal::new(None::<String>);
    let me = expect_context::<crate::model::CurrentUser>().id;
    Effect::new(move |_| {
        let shown = open_peer.get() != Some(target);
        let kept = saved::read(&saved::key("draft", me, target)).filter(|d| shown && !d.trim().is_empty());
        draft.set(kept.map(|d| preview(&plain(&d), 60)));
    });
    let muted = contact.muted;
    let preview_line = subtitle.or(preview_text).unwrap_or_else(|| "No messages yet".to_owned());
    view! {
        <li>
            <a
                class="contact"
                class:unread={unread > 0}
                class:group=group
                href=contact.href()
                aria-current=move || (open_peer.get() == Some(target)).then_some("page")
            >
                <span class="avatar-wrap">
                    <Avatar id name=contact.name.clone() />
                    {move || online().then(|| view! { <span class="presence-dot" role="img" title="Online" aria-label="online"></span> })}
                </span>
                <span class="contact-main">
                    <span class="contact-top">
                        <span class="contact-name">{contact.name.clone()}</span>
                        {when.map(|at| {
                            view! {
                                <time class="contact-time" datetime=at.to_rfc3339()>
                                    {move || {
                                        let local = clock.is_local();
                                        if local {
                                            relative(at, clock.now(), true)
                                        } else {
                                            day_month(at.date_naive())
                                        }
                                    }}
                                </time>
                            }
                        })}
                    </span>
                    <span class="contact-bottom">
                        <span class="contact-preview">
                            {move || match draft.get() {
                                Some(text) => {
                                    view! {
                                        <span class="draft-label">"Draft: "</span>
                                        {text}
                                    }
                                        .into_any()
                                }
                                None => preview_line.clone().into_any(),
                            }}
                        </span>
                        {muted.then(|| view! { <span class="muted-mark" role="img" aria-label="muted" title="Muted">"🔕"</span> })}
                        {(unread > 0)
                            .then(|| {
                                view! {
                                    <span class="badge" role="img" aria-label=crate::model::unread_spoken(unread)>
                                        {crate::model::unread_label(unread)}
                                    </span>
                                }
                            })}
                    </span>
                </span>
            </a>
        </li>
    }
}

#[component]
fn ContactSkeleton() -> impl IntoView {
    view! {
        <ul class="contact-list" aria-busy="true" aria-label="Loading contacts">
            {(0..6).map(|_| view! { <li class="contact skeleton-row"></li> }).collect_view()}
        </ul>
    }
}
