//! `/chat/search?q=…[&in=u{id}|g{id}][&p=N]`: message search, in every conversation or one, as
//! a pane beside the contact list. A plain GET form and links: it works without JavaScript, and
//! with it the form navigates in place and "More results" appends the next page.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

use crate::api::messages::search_messages;
use crate::components::ErrorBanner;
use crate::error::AppError;
use crate::model::{ConversationRef, SEARCH_MAX_CHARS, SearchHit, SearchPage};
use crate::time::{LocalClock, relative};

/// `in=u5` is the conversation with person 5, `in=g3` group 3 ([`ConversationRef::key`]).
fn parse_scope(param: &str) -> Option<ConversationRef> {
    ConversationRef::from_key(param)
}

/// The address of page `page` of a search.
pub fn search_href(text: &str, scope: Option<ConversationRef>, page: u32) -> String {
    let mut href = format!("/chat/search?q={}", encode(text));
    if let Some(scope) = scope {
        href.push_str(&format!("&in={}", scope.key()));
    }
    if page > 1 {
        href.push_str(&format!("&p={page}"));
    }
    href
}

/// Percent-encodes a query parameter's value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn find(text: String, scope: Option<ConversationRef>, page: u32) -> Result<SearchPage, AppError> {
    let (peer_id, room_id) = match scope {
        Some(ConversationRef::Direct(id)) => (Some(id), None),
        Some(ConversationRef::Group(id)) => (None, Some(id)),
        None => (None, None),
    };
    search_messages(text, peer_id, room_id, Some(page)).await
}

#[component]
pub fn SearchPane() -> impl IntoView {
    let query = use_query_map();
    let text = Memo::new(move |_| query.read().get("q").unwrap_or_default());
    let scope = Memo::new(move |_| query.read().get("in").and_then(|s| parse_scope(&s)));
    let page = Memo::new(move |_| query.read().get("p").and_then(|p| p.parse::<u32>().ok()).unwrap_or(1));
    let results = Resource::new_blocking(
        move || (text.get(), scope.get(), page.get()),
        |(text, scope, page)| async move {
            if text.trim().is_empty() { Ok(None) } else { find(text, scope, page).await.map(Some) }
        },
    );
    let back = move || scope.get().map_or_else(|| "/chat".to_owned(), ConversationRef::href);
    view! {
        <main class="conversation search-pane" aria-label="Search messages">
            <Title text="Search · Banter" />
            <header class="conversation-header">
                <a class="back" href=back aria-label="Back">
                    "‹"
                </a>
                <div class="peer">
                    <h2 class="peer-name">
                        {move || if scope.get().is_some() { "Search in this conversation" } else { "Search messages" }}
                    </h2>
                </div>
            </header>
            <div class="search-body">
                <Form method="get" action="/chat/search" attr:class="message-search" attr:role="search" attr:aria-label="Messages">
                    <label class="visually-hidden" for="message-search-q">
                        "Search messages"
                    </label>
                    <input
                        id="message-search-q"
                        type="search"
                        name="q"
                        value=move || text.get()
                        placeholder="Words, or \"a phrase\""
                        maxlength=SEARCH_MAX_CHARS.to_string()
                        autocomplete="off"
                        autofocus
                    />
                    {move || scope.get().map(|s| view! { <input type="hidden" name="in" value=s.key() /> })}
                    <button class="button" type="submit">
                        "Search"
                    </button>
                </Form>
                {move || {
                    scope
                        .get()
                        .map(|_| {
                            view! {
                                <p class="search-scope">
                                    <a href=move || search_href(&text.get(), None, 1)>"Search all conversations instead"</a>
                                </p>
                            }
                        })
                }}
                <Transition fallback=|| view! { <p class="hint" aria-busy="true">"Searching…"</p> }>
                    {move || Suspend::new(async move {
                        match results.await {
                            Ok(None) => {
                                view! {
                                    <p class="hint">
                                        "Every word you type must match, as a word or its beginning; put words in quotes to find them in a row."
                                    </p>
                                }
                                    .into_any()
                            }
                            Ok(Some(found)) if found.hits.is_empty() => {
                                view! {
                                    <p class="empty-state" role="status">
                                        {format!("No messages match “{}”.", text.get_untracked().trim())}
                                    </p>
                                }
                                    .into_any()
                            }
                            Ok(Some(found)) => {
                                view! {
                                    <Results found first=page.get_untracked() text=text.get_untracked() scope=scope.get_untracked() />
                                }
                                    .into_any()
                            }
                            Err(error) => view! { <ErrorBanner error on_retry=move |()| results.refetch() /> }.into_any(),
                        }
                    })}
                </Transition>
            </div>
        </main>
    }
}

/// The hits of page `first`, and with JavaScript the pages after it appended by "More results".
#[component]
fn Results(found: SearchPage, first: u32, text: String, scope: Option<ConversationRef>) -> impl IntoView {
    let hits = RwSignal::new(found.hits);
    let has_more = RwSignal::new(found.has_more);
    let next = RwSignal::new(first + 1);
    let loading = RwSignal::new(false);
    let error = RwSignal::new(None::<AppError>);
    let clock = LocalClock::new();
    let from = (first - 1) * crate::model::SEARCH_PAGE + 1;
    let text = StoredValue::new(text);
    let more = move |ev: leptos::ev::MouseEvent| {
        ev.prevent_default();
        if loading.get_untracked() {
            return;
        }
        loading.set(true);
        spawn_local(async move {
            match find(text.get_value(), scope, next.get_untracked()).await {
                Ok(page) => {
                    hits.try_update(|h| h.extend(page.hits));
                    has_more.try_set(page.has_more);
                    next.try_update(|n| *n += 1);
                    error.try_set(None);
                }
                Err(e) => {
                    error.try_set(Some(e));
                }
            }
            loading.try_set(false);
        });
    };
    let summary = move || {
        let count = hits.with(Vec::len) as u32;
        let to = from + count - 1;
        let more = if has_more.get() { " (more below)" } else { "" };
        match (from, count) {
            (1, 1) => format!("1 message{more}"),
            (1, _) => format!("{count} messages{more}"),
            _ => format!("Messages {from}–{to}{more}"),
        }
    };
    view! {
        <p class="search-summary" role="status">
            {summary}
        </p>
        <ol class="search-results" aria-label="Messages found">
            <For each=move || hits.get() key=|hit| hit.message_id let:hit>
                <HitRow hit clock />
            </For>
        </ol>
        {move || error.get().map(|error| view! { <ErrorBanner error /> })}
        <Show when=move || has_more.get()>
            <a class="button button-ghost search-more" href=move || text.with_value(|t| search_href(t, scope, next.get())) on:click=more>
                {move || if loading.get() { "Loading…" } else { "More results" }}
            </a>
        </Show>
    }
}

#[component]
fn HitRow(hit: SearchHit, clock: LocalClock) -> impl IntoView {
    let at = hit.created_at;
    let href = hit.href();
    // Who wrote it: "You", the person (a group's member), or nothing when the conversation's
    // name already says it (the other person, one-to-one).
    let me = use_context::<crate::model::CurrentUser>().map(|u| u.id);
    let who = match hit.conversation {
        _ if Some(hit.sender_id) == me => Some("You".to_owned()),
        ConversationRef::Direct(peer) if peer == hit.sender_id => None,
        _ => Some(hit.sender_name.clone()),
    };
    view! {
        <li class="search-hit">
            <a href=href data-testid="search-hit">
                <span class="hit-top">
                    <span class="hit-where">{hit.conversation_name.clone()}</span>
                    <time datetime=at.to_rfc3339()>
                        {move || {
                            if clock.is_local() { relative(at, chrono::Utc::now(), true) } else { at.format("%-d %b %Y").to_string() }
                        }}
                    </time>
                </span>
                {who.map(|who| view! { <span class="hit-who">{who}</span> })}
                <span class="hit-text">
                    {hit
                        .excerpt
                        .into_iter()
                        .map(|part| {
                            if part.hit { view! { <mark>{part.text}</mark> }.into_any() } else { part.text.into_any() }
                        })
                        .collect_view()}
                </span>
            </a>
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_address_keeps_its_text_scope_and_page() {
        assert_eq!(
            search_href("café \"new build\" & more", None, 1),
            "/chat/search?q=caf%C3%A9+%22new+build%22+%26+more"
        );
        assert_eq!(search_href("x", Some(ConversationRef::Group(3)), 2), "/chat/search?q=x&in=g3&p=2");
        assert_eq!(parse_scope("u5"), Some(ConversationRef::Direct(5)));
        assert_eq!(parse_scope("g12"), Some(ConversationRef::Group(12)));
        assert_eq!(parse_scope("x5"), None);
        assert_eq!(parse_scope("u"), None);
        assert_eq!(parse_scope(""), None);
    }
}
