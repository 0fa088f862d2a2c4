//! The contact list: your conversations and the newest members, searchable, with previews, times
//! and unread badges.

use leptos::prelude::*;
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
///
/// Rendered as a plain string inside the contact list's suspense, where the list is at hand: a
/// title closure reading the resource would run when the head is rendered, outside the reactive
/// arena on a busy server (seen as a panic under concurrent SSR).
fn title(unread: i64) -> String {
    match unread {
        0 => "Banter".to_owned(),
        n => format!("({}) Banter", crate::model::unread_label(n)),
    }
}

/// The contact row link `target` is (or is in), if any.
fn row_link(target: &web_sys::EventTarget) -> Option<web_sys::Element> {
    use leptos::wasm_bindgen::JsCast;
    target.dyn_ref::<web_sys::Element>()?.closest(".contact-list a.contact").ok().flatten()
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

/// Puts the focus back on the row that had it, when drawing the list anew took it away (nothing
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
    let again = doc.query_selector(&format!(".contact-list a.contact[href=\"{href}\"]")).ok().flatten();
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
    // Made once, here: a room subscription keeps the callback it was made with, so one made in the
    // list's render would be disposed (and panic when called) as soon as the list is drawn again.
    let chat = expect_context::<ChatState>();
    let room_changed = Callback::new(move |()| chat.contacts_changed());
    // The address of the row link that has the keyboard focus (an address, not the element: what
    // a page keeps must be sendable across the server's threads). The list is drawn anew each time
    // it is read again, at every live event, which takes the focus away with the old link; it is
    // then put back on that conversation's new link.
    let focused = StoredValue::new(None::<String>);
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
                match contacts.await {
                    Ok(page) if page.people.is_empty() => {
                        let searched = search.get_untracked();
                        view! {
                            <Title text=title(page.unread) />
                            <Link rel="icon" href=notify::favicon(page.unread) />
                            <p class="empty-state">
                                {if searched.trim().is_empty() {
                                    "Nobody else is here yet. Invite someone to register!".to_owned()
                                } else {
                                    format!("Nobody called “{}” here.", searched.trim())
                                }}
                            </p>
                        }
                            .into_any()
                    }
                    Ok(page) => {
                        // Follow the channels of the groups I am in, as the list names them. Done
                        // here, where each fresh list is drawn, not by an effect reading the
                        // resource: that read would make the whole chat shell suspend again.
                        let rooms = page
                            .people
                            .iter()
                            .filter(|c| matches!(c.kind, ContactKind::Group { member: true, .. }))
                            .map(|c| c.id)
                            .collect();
                        let live = expect_context::<Live>();
                        live.follow_rooms(rooms, room_changed);
                        live.seed_online(
                            page.people.iter().filter(|c| c.kind == ContactKind::Person).map(|c| (c.id, c.online)),
                        );
                        let title = title(page.unread);
                        let icon = notify::favicon(page.unread);
                        // What notifications need to know of each conversation: its name, and
                        // whether I muted it. Only the whole list knows them all.
                        if search.get_untracked().trim().is_empty() {
                            expect_context::<ChatState>().directory.set_value(
                                page.people.iter().map(|c| (c.conversation(), (c.name.clone(), c.muted))).collect(),
                            );
                        }
                        let list = StoredValue::new(page.people);
                        // Only the unsearched list says whether you have talked to anyone.
                        let searching = !search.get_untracked().trim().is_empty();
                        let talked = searching || list.with_value(|l| l.iter().any(|c| c.last_message.is_some()));
                        // One for the list, which hydrates as a whole, not a signal and an effect per row.
                        let clock = LocalClock::new();
                        // The new list replaces the one before it after this effect has run:
                        // a frame later, it has.
                        Effect::new(move |_| request_animation_frame(move || refocus(focused)));
                        view! {
                            <Title text=title />
                            <Link rel="icon" href=icon />
                            {(!talked).then(|| view! { <p class="hint">"No conversations yet. Pick someone to say hello."</p> })}
                            <ul
                                class="contact-list"
                                on:focusin=move |ev| {
                                    let link = ev.target().and_then(|t| row_link(&t));
                                    focused.set_value(link.and_then(|link| link.get_attribute("href")));
                                }
                                on:focusout=move |ev| left_row(ev, focused)
                            >
                                {move || {
                                    let needle = filter.get().trim().to_lowercase();
                                    list.with_value(|l| {
                                        l.iter()
                                            .filter(|c| needle.is_empty() || c.name.to_lowercase().contains(&needle))
                                            .cloned()
                                            .map(|contact| view! { <ContactRow contact open_peer clock /> })
                                            .collect_view()
                                    })
                                }}
                            </ul>
                        }
                            .into_any()
                    }
                    Err(error) => {
                        view! { <ErrorBanner error on_retry=move |()| contacts.refetch() /> }.into_any()
                    }
                }
            })}
        </Transition>
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
                                            relative(at, chrono::Utc::now(), true)
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
