//! Banter's shared crate: routes, pages, components, server functions and wire types.
//! `ssr` builds the server half, `hydrate` the browser half; never both at once.

// Leptos view types nest deeply (the composer's, hydrating, passes the default 128).
#![recursion_limit = "256"]

#[cfg(all(feature = "ssr", feature = "hydrate"))]
compile_error!("`ssr` and `hydrate` are separate builds: enable one of them, not both");

// The server and the browser must both build erased views (.cargo/config.toml): a typed view on
// one side and an erased one on the other write and expect different hydration markers, and the
// page would not hydrate.
#[cfg(not(erase_components))]
compile_error!(
    "build with `--cfg erase_components` (.cargo/config.toml sets it; a RUSTFLAGS variable replaces that list)"
);

pub mod api;
pub mod bundle;
mod components;
pub mod emoji;
pub mod error;
pub mod model;
mod pages;
pub mod realtime;
#[cfg(feature = "ssr")]
pub mod ssr;
pub mod text;
pub mod time;
pub mod timeline;
pub mod validation;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::{Lazy, LazyRoute, SsrMode, path};

use bundle::{BundleLinks, CompileWasm};
use components::lazy::{Loaded, lazy_route_view, preload_route};
use pages::auth::{LoginPage, RegisterPage};
use pages::chat::{ChatLayout, ConversationPane, NoConversation};
use pages::group::{GroupPane, NewGroupPage};
use pages::search::SearchPane;
use pages::{NotFound, home::HomePage};

/// Applies a remembered theme before first paint, so a dark-theme user never sees a white flash.
const THEME_SCRIPT: &str = "try{var t=localStorage.getItem('banter-theme');if(t==='dark'||t==='light')document.documentElement.setAttribute('data-theme',t)}catch(e){}";

/// Enter sends from the first paint. Until the app has taken the composer over (`data-ready` on its
/// form, set once it has hydrated), Enter in the composer posts its plain form as the Send button
/// would, and does nothing when it is blank; Shift+Enter and an input method's Enter stay as typed.
const EARLY_ENTER_SCRIPT: &str = "document.addEventListener('keydown',function(e){var t=e.target,f=t&&t.form;if(e.key!=='Enter'||e.shiftKey||e.isComposing||!f||t.name!=='body'||!f.classList.contains('composer')||f.dataset.ready)return;e.preventDefault();if(t.value.trim())f.requestSubmit()},true)";

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // The server names a nonce in each page's CSP header and hands it over in the request's
    // extensions (`server::security`); every inline script below, and those Leptos streams after
    // the page, must carry that one rather than the one Leptos made up for this render.
    #[cfg(feature = "ssr")]
    if let Some(nonce) = use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<leptos::nonce::Nonce>().cloned())
    {
        provide_context(nonce);
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <script nonce=use_nonce() inner_html=THEME_SCRIPT></script>
                <script nonce=use_nonce() inner_html=EARLY_ENTER_SCRIPT></script>
                <CompileWasm options=options.clone() />
                <AutoReload options=options.clone() />
                <BundleLinks options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // The browser entry marks `<body data-hydrated>` once the app has taken the page over.
    view! {
        <Title text="Banter" />
        <Router>
            <Routes fallback=NotFound>
                // Async: the redirect must be decided before any byte is sent (seen flaky streamed).
                <Route path=path!("/") view=HomePage ssr=SsrMode::Async />
                // Lazy: a signed-in browser never needs the sign-in forms' code. Async, as every
                // lazy route: the page is drawn whole before it is sent, so it works without JavaScript.
                <Route path=path!("/login") view={Lazy::<LoginRoute>::new()} ssr=SsrMode::Async />
                <Route path=path!("/register") view={Lazy::<RegisterRoute>::new()} ssr=SsrMode::Async />
                // Async: the chat is rendered whole on the server before anything is sent, so a
                // reload always shows the truth and every pane works without JavaScript.
                <ParentRoute path=path!("/chat") view=ChatLayout ssr=SsrMode::Async>
                    <Route path=path!("") view=NoConversation ssr=SsrMode::Async />
                    <Route path=path!("new-group") view={Lazy::<NewGroupRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("search") view={Lazy::<SearchRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("g/:room_id") view=GroupPane ssr=SsrMode::Async />
                    <Route path=path!(":peer_id") view=ConversationPane ssr=SsrMode::Async />
                </ParentRoute>
            </Routes>
        </Router>
    }
}

/// Each `Name at "/path" in chunk, preload_fn: view, "loading…", "what", back;` makes a route
/// type whose view is a chunk of its own in the split browser build, fetched when the route is
/// first opened, or with the page when the page opens there (`LAZY_ROUTES`, by the chunk's name).
/// It is `#[lazy_route]` by hand, with the split point's `fallible` option: a chunk that cannot be
/// fetched shows an alert with "Retry" in the page's place instead of stopping the app
/// (`components::lazy`), and `back` (`Some("/chat")` for the chat's panes) gives that alert a
/// "‹ Back" on a narrow screen, where the page's place is the whole screen.
macro_rules! lazy_routes {
    ($($(#[$doc:meta])* $route:ident at $path:literal in $chunk:ident, $preload:ident: $view:expr, $loading:literal, $what:literal, $back:expr;)+) => {
        /// The lazy routes' paths, each with its chunk's name in the split build's manifest. A page
        /// that opens at one of them preloads its chunks.
        pub(crate) const LAZY_ROUTES: &[(&str, &str)] = &[$(($path, stringify!($chunk))),+];

        $(
            $(#[$doc])*
            struct $route;

            #[leptos::wasm_split::wasm_split($chunk, wasm_split_path = ::leptos::wasm_split, preload($preload), fallible)]
            fn $chunk() -> Loaded {
                Ok($view.into_any())
            }

            impl LazyRoute for $route {
                fn data() -> Self {
                    Self
                }

                async fn view(_this: Self) -> AnyView {
                    lazy_route_view($chunk, $loading, $what, $back).await
                }

                async fn preload() {
                    preload_route($preload, $what).await;
                }
            }
        )+
    };
}

lazy_routes! {
    /// `/chat/search`: fetched when search is first opened.
    SearchRoute at "/chat/search" in search_route, preload_search_route:
        view! { <SearchPane /> }, "Opening search…", "search", Some("/chat");
    /// `/chat/new-group`, with the people picker.
    NewGroupRoute at "/chat/new-group" in new_group_route, preload_new_group_route:
        view! { <NewGroupPage /> }, "Opening the new group form…", "the new group form", Some("/chat");
    /// `/login`: the sign-in form, so the chat's first load does not carry it.
    LoginRoute at "/login" in login_route, preload_login_route:
        view! { <LoginPage /> }, "Opening sign-in…", "the sign-in form", None;
    /// `/register`: the registration form, like sign-in.
    RegisterRoute at "/register" in register_route, preload_register_route:
        view! { <RegisterPage /> }, "Opening registration…", "the registration form", None;
}
