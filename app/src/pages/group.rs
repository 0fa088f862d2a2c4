//! `/chat/g/{room_id}` (a group conversation, with its member panel) and `/chat/new-group`. Every
//! form here is a plain form first: without JavaScript it posts and the server redirects back.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::groups::{AddMembers, CreateGroup, LeaveGroup, MakeAdmin, RemoveMember, RenameGroup, group_members};
use crate::api::messages::contacts;
use crate::components::conversation::Conversation;
use crate::components::live::Live;
use crate::components::{Avatar, ChatState, ErrorBanner};
use crate::error::AppError;
use crate::model::{Contact, ConversationRef, CurrentUser, GROUP_NAME_MAX_CHARS, Member, MemberPage};
use crate::realtime::LiveEvent;

/// The message a finished action failed with, if it did.
fn failure<T: Clone + Send + Sync + 'static>(value: Option<Result<T, AppError>>) -> Option<String> {
    value.and_then(Result::err).map(|e| e.to_string())
}

type MembersResource = Resource<Result<MemberPage, AppError>>;
type PeopleResource = Resource<Result<crate::model::ContactPage, AppError>>;

/// A search for people and its answer. Made where the page is set up, never inside a suspense's
/// async view: a resource made there is not matched up when the page hydrates.
#[derive(Clone, Copy)]
struct PeopleSearch {
    text: RwSignal<String>,
    found: PeopleResource,
}

impl PeopleSearch {
    /// Starts from the query parameter `param` (the search without JavaScript).
    fn new(param: &'static str) -> Self {
        let text = RwSignal::new(use_query_map().with_untracked(|q| q.get(param)).unwrap_or_default());
        let found = Resource::new_blocking(
            move || text.get(),
            |search| contacts((!search.trim().is_empty()).then_some(search)),
        );
        Self { text, found }
    }
}

/// The open group's first page of members (from `members_after` without JavaScript, where "More"
/// is a link), loaded by the chat shell for the reason given at `OpenPage`; `version` reloads it.
#[derive(Clone, Copy)]
pub struct OpenMembers {
    pub members: MembersResource,
    pub version: RwSignal<u32>,
}

impl OpenMembers {
    pub fn provide(open: Memo<Option<ConversationRef>>) {
        let version = RwSignal::new(0u32);
        let query = use_query_map();
        let members = Resource::new_blocking(
            move || (open.get(), version.get(), query.with(|q| q.get("members_after"))),
            |(open, _, after)| async move {
                match open {
                    Some(ConversationRef::Group(room)) => group_members(room, after).await,
                    _ => Err(AppError::not_found("no such group")),
                }
            },
        );
        provide_context(Self { members, version });
    }
}

/// `/chat/g/{room_id}`: one group.
#[component]
pub fn GroupPane() -> impl IntoView {
    // Loaded by the chat shell (see `OpenPage`).
    let page = expect_context::<super::chat::OpenPage>().0;
    let OpenMembers { members, version: members_version } = expect_context();
    let add_search = PeopleSearch::new("add");
    view! {
        <main class="conversation" aria-label="Conversation">
            <Transition fallback=|| view! { <div class="conversation-skeleton" aria-busy="true"></div> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(page) => {
                            let room = page.peer.id;
                            let (member, admin) = page.group.as_ref().map_or((false, false), |g| (g.member, g.admin));
                            let name = page.peer.name.clone();
                            view! {
                                <Title text=format!("{name} · Banter") />
                                <Conversation page>
                                    {member
                                        .then(|| {
                                            view! {
                                                <MemberPanel
                                                    room
                                                    admin
                                                    name=name.clone()
                                                    members
                                                    version=members_version
                                                    add_search
                                                />
                                            }
                                        })}
                                </Conversation>
                            }
                                .into_any()
                        }
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

/// The member panel: who is in the group (paged), who is online, who is admin; for admins, rename,
/// add, remove and make admin; for everyone, leave. A disclosure in the conversation's header.
#[component]
fn MemberPanel(
    room: i64,
    admin: bool,
    name: String,
    members: MembersResource,
    version: RwSignal<u32>,
    add_search: PeopleSearch,
) -> impl IntoView {
    let me = expect_context::<CurrentUser>();
    let live = expect_context::<Live>();
    let chat = expect_context::<ChatState>();
    // A membership change in this group redraws the list from its first page.
    live.on_event(move |event| {
        if let LiveEvent::GroupChanged(change) = event
            && change.room_id == room
        {
            version.update(|v| *v += 1);
            chat.contacts_changed();
        }
    });
    let rename = ServerAction::<RenameGroup>::new();
    let leave = ServerAction::<LeaveGroup>::new();
    let errors = move || failure(rename.value().get()).or_else(|| failure(leave.value().get()));
    let my_id = me.id;
    view! {
        <details class="member-panel" data-testid="member-panel">
            <summary class="button button-ghost">"Members"</summary>
            <div class="member-panel-body">
                {move || errors().map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
                <Transition fallback=|| view! { <p class="muted">"Loading members…"</p> }>
                    {move || Suspend::new(async move {
                        match members.await {
                            Ok(page) => view! { <MemberList room page admin my_id /> }.into_any(),
                            Err(error) => view! { <ErrorBanner error /> }.into_any(),
                        }
                    })}
                </Transition>
                {admin
                    .then(|| {
                        view! {
                            <ActionForm action=rename attr:class="inline-fields">
                                <input type="hidden" name="room_id" value=room />
                                <label for="group-rename">"Group name"</label>
                                <input
                                    id="group-rename"
                                    name="name"
                                    value=name.clone()
                                    required
                                    maxlength=GROUP_NAME_MAX_CHARS.to_string()
                                />
                                <button class="button button-small" type="submit">"Rename"</button>
                            </ActionForm>
                            <AddPeople room search=add_search />
                        }
                    })}
                <ActionForm action=leave attr:class="leave-form">
                    <input type="hidden" name="room_id" value=room />
                    <button class="button button-small button-danger" type="submit">"Leave group"</button>
                </ActionForm>
            </div>
        </details>
    }
}

/// One page of members, and "More members" for the next (a link without JavaScript).
#[component]
fn MemberList(room: i64, page: MemberPage, admin: bool, my_id: i64) -> impl IntoView {
    let MemberPage { members, next: first_next, total } = page;
    let more = RwSignal::new(Vec::<Member>::new());
    let next = RwSignal::new(first_next);
    let loading = RwSignal::new(false);
    let load_more = move |after: String| {
        loading.set(true);
        leptos::task::spawn_local(async move {
            if let Ok(page) = group_members(room, Some(after)).await {
                more.update(|m| m.extend(page.members));
                next.set(page.next);
            }
            loading.set(false);
        });
    };
    view! {
        <h3 class="member-count">{format!("{total} members")}</h3>
        <ul class="member-list" aria-label="Members">
            {members.into_iter().map(|member| view! { <MemberRow room member admin my_id /> }).collect_view()}
            <For each=move || more.get() key=|m| m.id children=move |member| view! { <MemberRow room member admin my_id /> } />
        </ul>
        {move || {
            next.get()
                .map(|after| {
                    let href = format!("/chat/g/{room}?members_after={after}");
                    view! {
                        <a
                            class="button button-small"
                            href=href
                            on:click=move |ev| {
                                ev.prevent_default();
                                if !loading.get_untracked() {
                                    load_more(after.clone());
                                }
                            }
                        >
                            "More members"
                        </a>
                    }
                })
        }}
    }
}

#[component]
fn MemberRow(room: i64, member: Member, admin: bool, my_id: i64) -> impl IntoView {
    let live = expect_context::<Live>();
    let id = member.id;
    live.seed_online([(id, member.online)]);
    let online = move || live.online.with(|online| online.contains(&id));
    let remove = ServerAction::<RemoveMember>::new();
    let promote = ServerAction::<MakeAdmin>::new();
    let error = move || failure(remove.value().get()).or_else(|| failure(promote.value().get()));
    let remove_label = format!("Remove {}", member.name);
    let label = if id == my_id { format!("{} (you)", member.name) } else { member.name.clone() };
    let actions = (admin && id != my_id).then(|| {
        let name = member.name.clone();
        view! {
            {(!member.admin)
                .then(|| {
                    view! {
                        <ActionForm action=promote attr:class="inline-form">
                            <input type="hidden" name="room_id" value=room />
                            <input type="hidden" name="user_id" value=id />
                            <button class="link-button" type="submit" aria-label=format!("Make {name} an admin")>
                                "Make admin"
                            </button>
                        </ActionForm>
                    }
                })}
            <ActionForm action=remove attr:class="inline-form">
                <input type="hidden" name="room_id" value=room />
                <input type="hidden" name="user_id" value=id />
                <button class="link-button danger" type="submit" aria-label=remove_label>
                    "Remove"
                </button>
            </ActionForm>
        }
    });
    view! {
        <li class="member" data-member=member.name.clone()>
            <span class="avatar-wrap">
                <Avatar id name=member.name.clone() />
                {move || online().then(|| view! { <span class="presence-dot" role="img" title="Online" aria-label="online"></span> })}
            </span>
            <span class="member-name">{label}</span>
            {member.admin.then(|| view! { <span class="admin-badge">"admin"</span> })}
            <span class="member-actions">{actions}</span>
            {move || error().map(|e| view! { <span class="form-error" role="alert">{e}</span> })}
        </li>
    }
}

/// People to pick from: a search (a GET form without JavaScript, live with it) and checkboxes.
#[component]
fn PeoplePicker(
    /// The query parameter the search travels in without JavaScript.
    param: &'static str,
    search: PeopleSearch,
) -> impl IntoView {
    let PeopleSearch { text: search, found } = search;
    // Chosen people stay chosen while the search changes (with JavaScript).
    let chosen = RwSignal::new(Vec::<(i64, String)>::new());
    let toggle = move |id: i64, name: String, on: bool| {
        chosen.update(|c| {
            c.retain(|(other, _)| *other != id);
            if on {
                c.push((id, name));
            }
        });
    };
    view! {
        <fieldset class="people-picker">
            <legend>"People"</legend>
            <div class="picker-search">
                <label for=format!("{param}-search") class="visually-hidden">"Search people"</label>
                <input
                    id=format!("{param}-search")
                    type="search"
                    name=param
                    form=format!("{param}-search-form")
                    placeholder="Search people"
                    value=search.get_untracked()
                    on:input:target=move |ev| search.set(ev.target().value())
                />
                <button class="button button-small" type="submit" form=format!("{param}-search-form")>"Search"</button>
            </div>
            <ul class="picked" aria-label="Chosen">
                {move || {
                    chosen
                        .get()
                        .into_iter()
                        .map(|(id, name)| {
                            view! {
                                <li class="chip">
                                    {name}
                                    <input type="hidden" name="member_ids[]" value=id />
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
            <Transition fallback=|| view! { <p class="muted">"Searching…"</p> }>
                {move || Suspend::new(async move {
                    let people: Vec<Contact> = match found.await {
                        Ok(page) => page.people.into_iter().filter(|c| !c.is_group()).collect(),
                        Err(error) => return view! { <ErrorBanner error /> }.into_any(),
                    };
                    if people.is_empty() {
                        return view! { <p class="muted">"Nobody found."</p> }.into_any();
                    }
                    view! {
                        <ul class="people-options">
                            {people
                                .into_iter()
                                .map(|person| {
                                    let (id, name) = (person.id, person.name.clone());
                                    let checked = move || chosen.with(|c| c.iter().any(|(other, _)| *other == id));
                                    let input_id = format!("{param}-person-{id}");
                                    view! {
                                        <li>
                                            <input
                                                type="checkbox"
                                                id=input_id.clone()
                                                // The hidden chip input carries it once chosen with JavaScript.
                                                name=move || if checked() { "" } else { "member_ids[]" }
                                                value=id
                                                prop:checked=checked
                                                on:change:target=move |ev| toggle(id, name.clone(), ev.target().checked())
                                            />
                                            <label for=input_id>{person.name.clone()}</label>
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ul>
                    }
                        .into_any()
                })}
            </Transition>
        </fieldset>
    }
}

/// Admins add people: the picker and an "Add" button.
#[component]
fn AddPeople(room: i64, search: PeopleSearch) -> impl IntoView {
    let add = ServerAction::<AddMembers>::new();
    view! {
        <form id="add-search-form" method="get" action=format!("/chat/g/{room}") on:submit=|ev| ev.prevent_default()></form>
        <ActionForm action=add attr:class="add-people">
            <input type="hidden" name="room_id" value=room />
            {move || failure(add.value().get()).map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            <PeoplePicker param="add" search />
            <button class="button button-small" type="submit">"Add to group"</button>
        </ActionForm>
    }
}

/// `/chat/new-group`: a name and the people to add.
#[component]
pub fn NewGroupPage() -> impl IntoView {
    let create = ServerAction::<CreateGroup>::new();
    let error = move || create.value().get().and_then(Result::err);
    let search = PeopleSearch::new("q");
    view! {
        <Title text="New group · Banter" />
        <main class="conversation new-group" aria-label="New group">
            <header class="conversation-header">
                <a class="back" href="/chat" aria-label="Back to contacts">"‹"</a>
                <h2 class="peer-name">"New group"</h2>
            </header>
            <div class="new-group-body">
                <form id="q-search-form" method="get" action="/chat/new-group" on:submit=|ev| ev.prevent_default()></form>
                <ActionForm action=create attr:class="new-group-form">
                    {move || {
                        error().and_then(|e| e.form_message().or_else(|| e.for_field("member_ids")))
                            .map(|e| view! { <p class="form-error" role="alert">{e}</p> })
                    }}
                    <label for="group-name">"Group name"</label>
                    <input
                        id="group-name"
                        name="name"
                        required
                        maxlength=GROUP_NAME_MAX_CHARS.to_string()
                        placeholder="e.g. Weekend trip"
                        aria-describedby="group-name-error"
                    />
                    <p id="group-name-error" class="field-error" role="alert">
                        {move || error().and_then(|e| e.for_field("name"))}
                    </p>
                    <PeoplePicker param="q" search />
                    <button class="button button-primary" type="submit" disabled=move || create.pending().get()>
                        "Create group"
                    </button>
                </ActionForm>
            </div>
        </main>
    }
}
