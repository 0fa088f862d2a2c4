//! The emoji picker: a small dialog with a search box, the recently used emoji, then every emoji
//! by group, in a grid the arrow keys move through. It exists only in the browser, mounted by its
//! caller while open; the emoji table behind it is fetched from `/emoji.tsv` once per page.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use leptos::html::Input;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::wasm_bindgen::JsCast;

use crate::components::lazy::{LazyPiece, Loaded, prefetch};
use crate::emoji::{EmojiTable, GridMove, grid_move, parse_recent, remember_recent, store_recent};

/// Where the server serves the table (`public/emoji.tsv`).
const TABLE_URL: &str = "/emoji.tsv";
/// Where the recently used emoji are kept, comma-separated, newest first.
const RECENT_KEY: &str = "banter-recent-emoji";
/// Emoji per grid row; `.emoji-grid` in the stylesheet has the same number of columns, so Up and
/// Down land straight above and below.
const COLUMNS: usize = 8;
/// Most emoji shown for a search.
const SEARCH_LIMIT: usize = 160;

/// The page's emoji table: fetched once, then kept for the page's life (the picker and the
/// composer's `:shortcode` completion share it). Browser only; on the server it never loads.
pub(crate) mod table {
    use super::*;

    #[cfg(feature = "hydrate")]
    thread_local! {
        static TABLE: std::cell::RefCell<Option<Arc<EmojiTable>>> = const { std::cell::RefCell::new(None) };
    }

    /// The table, if this page has loaded it.
    pub fn cached() -> Option<Arc<EmojiTable>> {
        #[cfg(feature = "hydrate")]
        return TABLE.with(|table| table.borrow().clone());
        #[cfg(not(feature = "hydrate"))]
        None
    }

    /// The table, fetched now unless this page already has it. `Err` when it could not be
    /// fetched or held no emoji; calling again tries again.
    pub async fn load() -> Result<Arc<EmojiTable>, ()> {
        if let Some(table) = cached() {
            return Ok(table);
        }
        #[cfg(feature = "hydrate")]
        {
            let response = gloo_net::http::Request::get(TABLE_URL).send().await.map_err(drop)?;
            if !response.ok() {
                return Err(());
            }
            let table = EmojiTable::parse(&response.text().await.map_err(drop)?);
            if table.is_empty() {
                return Err(());
            }
            let table = Arc::new(table);
            TABLE.with(|cache| *cache.borrow_mut() = Some(Arc::clone(&table)));
            Ok(table)
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = TABLE_URL;
            Err(())
        }
    }
}

/// One emoji button of the grid.
#[derive(Clone, PartialEq)]
struct Item {
    emoji: String,
    name: String,
}

/// A titled run of the grid: "Recent", a group, or the search results.
#[derive(Clone, PartialEq)]
struct Section {
    title: String,
    items: Vec<Item>,
}

/// The recently used emoji, as this browser remembers them.
fn stored_recent() -> Vec<String> {
    window()
        .local_storage()
        .ok()
        .flatten()
        .and_then(|storage| storage.get_item(RECENT_KEY).ok().flatten())
        .map(|stored| parse_recent(&stored))
        .unwrap_or_default()
}

fn save_recent(recent: &[String]) {
    if let Ok(Some(storage)) = window().local_storage() {
        let _ = storage.set_item(RECENT_KEY, &store_recent(recent));
    }
}

/// Distinguishes the ids of two pickers on one page.
static NEXT_PICKER: AtomicU32 = AtomicU32::new(0);

/// The picker as its callers mount it: its code is a chunk of its own in the split browser build,
/// not fetched with the page but as a pointer or the focus reaches a button that opens a picker
/// (`prefetch_picker`), or when one opens. While the chunk loads, a box of the picker's size says
/// so; if it cannot be fetched, the box says that instead, with a "Retry".
#[component]
pub fn LazyEmojiPicker(
    on_pick: Callback<String>,
    on_close: Callback<()>,
    #[prop(into)] label: String,
) -> impl IntoView {
    let label = StoredValue::new(label);
    view! {
        <LazyPiece
            load=move || emoji_picker_view(on_pick, on_close, label.get_value())
            loading="Loading emoji…"
            what="the emoji picker"
            class="emoji-picker"
        />
    }
}

/// Starts fetching the picker's chunk: a pointer is over, or the focus on, a button that opens it.
pub fn prefetch_picker() {
    prefetch(preload_emoji_picker);
}

/// The split point: everything only the picker uses lands in its chunk.
#[leptos::wasm_split::wasm_split(emoji_picker, wasm_split_path = ::leptos::wasm_split, preload(preload_emoji_picker), fallible)]
fn emoji_picker_view(on_pick: Callback<String>, on_close: Callback<()>, label: String) -> Loaded {
    Ok(view! { <EmojiPicker on_pick on_close label /> }.into_any())
}

/// A popover to choose an emoji. `on_pick` gets the emoji chosen (it is also remembered as recently
/// used); `on_close` is called on Escape, and the caller then closes the picker and puts focus back
/// on whatever opened it. `label` names the dialog ("Choose an emoji").
///
/// Keyboard: focus starts in the search box; Down arrow enters the grid, where the arrow keys,
/// Home and End move between emoji (one tab stop for the whole grid), Enter or Space picks, and
/// Enter in the search box picks the first match.
#[component]
fn EmojiPicker(on_pick: Callback<String>, on_close: Callback<()>, #[prop(into)] label: String) -> impl IntoView {
    let id = format!("emoji-picker-{}", NEXT_PICKER.fetch_add(1, Ordering::Relaxed));
    let search_id = format!("{id}-search");
    let table = RwSignal::new(table::cached());
    let failed = RwSignal::new(false);
    let recent = RwSignal::new(Vec::<String>::new());
    let query = RwSignal::new(String::new());
    let active = RwSignal::new(0usize);
    let search = NodeRef::<Input>::new();
    // Down or Enter pressed in the search box before the table had arrived (a keyboard user does
    // not wait for it): done once it has, on the results for what the box holds then. Forgotten
    // when the table cannot be loaded: a later Retry is a new start.
    let pending = RwSignal::new(None::<Pending>);

    let load = move || {
        failed.set(false);
        spawn_local(async move {
            match table::load().await {
                Ok(loaded) => table.set(Some(loaded)),
                Err(()) => {
                    pending.set(None);
                    failed.set(true);
                }
            }
        });
    };
    // Effects run only in the browser, after mounting.
    Effect::new(move |_| {
        recent.set(stored_recent());
        if table.get_untracked().is_none() {
            load();
        }
    });
    // Focus goes to the search box once the picker is in the document: its chunk may have arrived
    // after the button was pressed, and a Suspense mounts what it waited for a moment later.
    Effect::new(move |_| {
        if let Some(input) = search.get() {
            request_animation_frame(move || {
                let _ = input.focus();
            });
        }
    });

    let sections = Memo::new(move |_| {
        let Some(table) = table.get() else { return Vec::new() };
        let item = |e: &crate::emoji::Emoji| Item { emoji: e.emoji.clone(), name: e.name.clone() };
        let query = query.get();
        if !query.trim().is_empty() {
            let items: Vec<Item> = table.search(&query, SEARCH_LIMIT).into_iter().map(item).collect();
            return if items.is_empty() { Vec::new() } else { vec![Section { title: "Search results".into(), items }] };
        }
        let mut sections = Vec::new();
        let recent: Vec<Item> = recent
            .get()
            .iter()
            .map(|emoji| table.get(emoji).map_or_else(|| Item { emoji: emoji.clone(), name: emoji.clone() }, item))
            .collect();
        if !recent.is_empty() {
            sections.push(Section { title: "Recent".into(), items: recent });
        }
        for (group, members) in table.groups() {
            sections.push(Section { title: capitalized(group), items: members.into_iter().map(item).collect() });
        }
        sections
    });
    let lengths = move || sections.with(|s| s.iter().map(|section| section.items.len()).collect::<Vec<_>>());
    let selected = StoredValue::new(Selector::new(move || active.get()));

    let item_id = {
        let id = id.clone();
        move |index: usize| format!("{id}-emoji-{index}")
    };
    let group_id = {
        let id = id.clone();
        move |index: usize| format!("{id}-group-{index}")
    };
    let focus_item = {
        let item_id = item_id.clone();
        move |index: usize| {
            if let Some(button) =
                document().get_element_by_id(&item_id(index)).and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
            {
                let _ = button.focus();
            }
        }
    };
    let pick = move |emoji: String| {
        recent.update(|r| remember_recent(r, &emoji));
        save_recent(&recent.get_untracked());
        on_pick.run(emoji);
    };

    let on_grid_keydown = {
        let focus_item = focus_item.clone();
        move |ev: web_sys::KeyboardEvent| {
            let step = match ev.key().as_str() {
                "ArrowLeft" => GridMove::Left,
                "ArrowRight" => GridMove::Right,
                "ArrowUp" => GridMove::Up,
                "ArrowDown" => GridMove::Down,
                "Home" => GridMove::Home,
                "End" => GridMove::End,
                _ => return,
            };
            ev.prevent_default();
            let next = grid_move(&lengths(), COLUMNS, active.get_untracked(), step);
            active.set(next);
            focus_item(next);
        }
    };
    let pick_first = move || {
        let first = sections.with_untracked(|s| s.first().and_then(|s| s.items.first()).map(|i| i.emoji.clone()));
        if let Some(emoji) = first {
            pick(emoji);
        }
    };
    // The table has arrived: a key pressed while it loaded is done now.
    Effect::new({
        let focus_item = focus_item.clone();
        move |_| {
            if table.with(Option::is_none) {
                return;
            }
            let Some(key) = pending.get_untracked() else { return };
            pending.set(None);
            match key {
                Pending::Enter => pick_first(),
                Pending::Down => {
                    let focus_item = focus_item.clone();
                    // The grid is drawn by now or in this frame.
                    request_animation_frame(move || focus_item(active.get_untracked()));
                }
            }
        }
    });
    let on_search_keydown = move |ev: web_sys::KeyboardEvent| match ev.key().as_str() {
        "ArrowDown" if sections.with_untracked(|s| !s.is_empty()) => {
            ev.prevent_default();
            focus_item(active.get_untracked());
        }
        "ArrowDown" if table.with_untracked(Option::is_none) => {
            ev.prevent_default();
            pending.set(Some(Pending::Down));
        }
        "Enter" => {
            ev.prevent_default();
            if table.with_untracked(Option::is_none) {
                pending.set(Some(Pending::Enter));
            } else {
                pick_first();
            }
        }
        _ => {}
    };

    let status = move || {
        if failed.get() {
            return Some(
                view! {
                    <p class="emoji-status" role="alert">
                        "Couldn't load the emoji. "
                        <button class="link-button" type="button" on:click=move |_| load()>
                            "Retry"
                        </button>
                    </p>
                }
                .into_any(),
            );
        }
        if table.with(Option::is_none) {
            return Some(view! { <p class="emoji-status" role="status">"Loading…"</p> }.into_any());
        }
        None
    };
    // Said by screen readers as the results change.
    let results_said = move || {
        let count = sections.with(|s| s.iter().map(|section| section.items.len()).sum::<usize>());
        match (query.with(|q| q.trim().is_empty()), table.with(Option::is_some), count) {
            (true, _, _) | (_, false, _) => String::new(),
            (false, true, 0) => "No emoji found".to_owned(),
            (false, true, 1) => "1 emoji".to_owned(),
            (false, true, n) => format!("{n} emoji"),
        }
    };

    let grid = move || {
        let mut index = 0;
        sections
            .get()
            .into_iter()
            .enumerate()
            .map(|(at, section)| {
                let (title_id, labelled_by) = (group_id(at), group_id(at));
                let buttons = section
                    .items
                    .into_iter()
                    .map(|Item { emoji, name }| {
                        let i = index;
                        index += 1;
                        let chosen = emoji.clone();
                        view! {
                            <button
                                type="button"
                                class="emoji-option"
                                id=item_id(i)
                                tabindex=move || if selected.with_value(|s| s.selected(&i)) { "0" } else { "-1" }
                                aria-label=name.clone()
                                title=name
                                on:focus=move |_| active.set(i)
                                on:click=move |_| pick(chosen.clone())
                            >
                                {emoji}
                            </button>
                        }
                    })
                    .collect_view();
                view! {
                    <div class="emoji-section" role="group" aria-labelledby=labelled_by>
                        <div class="emoji-section-title" id=title_id>
                            {section.title}
                        </div>
                        <div class="emoji-grid">{buttons}</div>
                    </div>
                }
            })
            .collect_view()
    };

    view! {
        <div
            class="emoji-picker"
            id=id
            role="dialog"
            aria-label=label
            on:keydown=move |ev| {
                if ev.key() == "Escape" {
                    ev.prevent_default();
                    ev.stop_propagation();
                    on_close.run(());
                }
            }
        >
            <label class="visually-hidden" for=search_id.clone()>
                "Search emoji"
            </label>
            <input
                class="emoji-search"
                id=search_id
                type="search"
                placeholder="Search emoji"
                autocomplete="off"
                spellcheck="false"
                node_ref=search
                prop:value=move || query.get()
                on:input:target=move |ev| {
                    query.set(ev.target().value());
                    active.set(0);
                }
                on:keydown=on_search_keydown
            />
            <p class="visually-hidden" role="status">
                {results_said}
            </p>
            <div class="emoji-scroll" on:keydown=on_grid_keydown>
                {status}
                {move || {
                    (table.with(Option::is_some) && !query.with(|q| q.trim().is_empty())
                        && sections.with(Vec::is_empty))
                        .then(|| view! { <p class="emoji-status">"No emoji found."</p> })
                }}
                {grid}
            </div>
        </div>
    }
    .into_any()
}

/// A key the search box got before the emoji table arrived.
#[derive(Clone, Copy)]
enum Pending {
    Down,
    Enter,
}

/// `smileys & emotion` → `Smileys & emotion`, for a section title.
fn capitalized(group: &str) -> String {
    let mut chars = group.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
