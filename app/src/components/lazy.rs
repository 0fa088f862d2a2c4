//! Pieces of the browser app that are chunks of their own in the split build, fetched when they
//! are about to be used (`prefetch`) or at the latest when they are: the emoji picker, the image
//! lightbox, and the lazy routes' pages (search, the new-group form, sign-in, registration).
//!
//! Each is a `wasm_split` point with the `fallible` option (Leptos' `#[lazy]` and `#[lazy_route]`
//! make the same point without it): a chunk that cannot be fetched (offline, the server
//! restarting) comes back as an error instead of a panic, which would stop the whole app.
//! `LazyPiece` shows what is happening: a visible status while the chunk loads, and an alert with
//! "Retry" if it did not arrive (the loader keeps no failure, so a retry fetches it again), or,
//! when the server no longer has the build the page runs (a new version was deployed since the
//! page was opened: its chunks are gone for good), an alert that says so, whose "Reload" loads
//! the page again from the new version.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use leptos::prelude::*;
use leptos::wasm_split::SplitLoaderError;

use crate::components::ErrorBanner;
use crate::error::AppError;

/// What a split function returns: its view, or why its chunk did not arrive.
pub type Loaded = Result<AnyView, ChunkMissing>;

/// A chunk of the app that could not be fetched. (`SplitLoaderError` itself is not `Send`, and a
/// view's future must be.)
#[derive(Debug, Clone, Copy)]
pub struct ChunkMissing;

impl From<SplitLoaderError> for ChunkMissing {
    fn from(_: SplitLoaderError) -> Self {
        Self
    }
}

/// Mounts the view `load` brings from its chunk. Until it arrives, `loading` is shown as a status
/// (with `class`, so it takes the piece's place); if it cannot arrive, an alert says that `what`
/// did not load, with a "Retry". `failed`: a first attempt has failed already, so the alert shows
/// at once. `role`: the alert's box's, where it stands for a page's main content.
#[component]
pub fn LazyPiece<L, Fut>(
    load: L,
    loading: &'static str,
    what: &'static str,
    #[prop(optional)] class: &'static str,
    #[prop(optional)] failed: bool,
    #[prop(optional)] role: Option<&'static str>,
) -> impl IntoView
where
    L: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Loaded> + Send + 'static,
{
    // One copy of the code below for every piece, however many there are.
    let load: Load = Arc::new(move || Box::pin(load()));
    lazy_piece(load, Piece { loading, what, class, failed, role, back: None })
}

type Load = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Loaded> + Send>> + Send + Sync>;

#[derive(Clone, Copy)]
struct Piece {
    loading: &'static str,
    what: &'static str,
    class: &'static str,
    failed: bool,
    role: Option<&'static str>,
    /// Where "‹ Back" leads from the alert (shown on narrow screens only, as in a conversation).
    back: Option<&'static str>,
}

fn lazy_piece(load: Load, piece: Piece) -> AnyView {
    let Piece { loading, what, class, failed, role, back } = piece;
    let attempt = RwSignal::new(0_u32);
    let piece = move || {
        // Read first, so that Retry runs this again; the first attempt is not made again when it is
        // known to have failed.
        let tried = attempt.get();
        let loaded = (!failed || tried > 0).then(|| load());
        Suspend::new(async move {
            let loaded = match loaded {
                Some(loaded) => loaded.await,
                None => Err(ChunkMissing),
            };
            if let Ok(view) = loaded {
                return view;
            }
            let (error, retry, action) = if build_replaced().await {
                let message = format!("Banter has been updated since this page was opened: reload it to open {what}");
                (AppError::not_found(message), Callback::new(|()| reload()), "Reload")
            } else {
                let retry = Callback::new(move |()| attempt.update(|n| *n += 1));
                (AppError::Transport { message: format!("{what} did not load") }, retry, "Retry")
            };
            let back = back.map(|href| view! { <a class="back" href=href>"‹ Back"</a> });
            view! {
                <div class=format!("lazy-failed {class}") role=role>
                    {back}
                    <ErrorBanner error on_retry=retry action=action />
                </div>
            }
            .into_any()
        })
    };
    view! {
        <Suspense fallback=move || view! { <p class=format!("lazy-loading {class}") role="status">{loading}</p> }>
            {piece}
        </Suspense>
    }
    .into_any()
}

/// Whether the build this page runs has been replaced on the server since the page was opened (a
/// new version deployed): its WASM module is gone (404), so no chunk of it can arrive again and
/// only a reload helps. Asked only once a chunk has failed, or the live connection has come back
/// (`live::ConnectionBanner`); `false` when the server cannot be reached, or answers anything else
/// (then the chunk's failure was the network's).
pub(crate) async fn build_replaced() -> bool {
    #[cfg(feature = "hydrate")]
    {
        use gloo_net::http::{Method, RequestBuilder};
        // The module's name is the build's: a content hash (`bundle::CompileWasm` writes it).
        let module = document()
            .query_selector("script[data-wasm]")
            .ok()
            .flatten()
            .and_then(|script| script.get_attribute("data-wasm"));
        let Some(module) = module else { return false };
        // Past the HTTP cache, which holds the module as it was when the page was opened.
        let asked = RequestBuilder::new(&module).method(Method::HEAD).cache(web_sys::RequestCache::NoStore).send();
        send_wrapper::SendWrapper::new(asked).await.is_ok_and(|response| response.status() == 404)
    }
    #[cfg(not(feature = "hydrate"))]
    false
}

/// Loads the page again, from the server: into the build it has now.
pub(crate) fn reload() {
    #[cfg(feature = "hydrate")]
    if window().location().reload().is_err() {
        leptos::logging::warn!("could not reload the page");
    }
}

/// A lazy route's page: the view `load` brings from its chunk (fetched already by `preload_route`
/// when it could be), or, when the chunk did not arrive, the page's place holds an alert that
/// `what` did not load, with a "Retry" that fetches it again (showing `loading` meanwhile) and
/// then shows the page. The rest of the app goes on working. `back`: where the alert's "‹ Back"
/// leads on a narrow screen, where the page's place is the whole screen.
pub async fn lazy_route_view<L, Fut>(
    load: L,
    loading: &'static str,
    what: &'static str,
    back: Option<&'static str>,
) -> AnyView
where
    L: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Loaded> + Send + 'static,
{
    // One copy of the code below for every route, as for `LazyPiece`.
    let piece = Piece { loading, what, class: "lazy-route", failed: true, role: Some("main"), back };
    route_view(Arc::new(move || Box::pin(load())), piece).await
}

async fn route_view(load: Load, piece: Piece) -> AnyView {
    match load().await {
        Ok(view) => view,
        Err(ChunkMissing) => lazy_piece(load, piece),
    }
}

/// A lazy route's preload: `preload` is its split point's, `what` names its page. When the app
/// moves to the route, one attempt (the page then says whether its chunk arrived). When the page
/// opened there and the app is starting, it waits for the chunk, trying again after a growing wait
/// for as long as it takes: the app cannot take the server's page over without the page's code,
/// and until it does the page works as the server drew it, as it does without JavaScript. A
/// status at the page's foot says so meanwhile. If the server no longer has the page's build (a
/// new version was deployed between the page and its chunk), no attempt can succeed: an alert
/// says so, with "Reload", and the page stays as the server drew it, without trying again.
pub async fn preload_route<P, Fut>(preload: P, what: &'static str)
where
    P: Fn() -> Fut + 'static,
    Fut: Future<Output = Result<(), SplitLoaderError>> + 'static,
{
    #[cfg(feature = "hydrate")]
    fetch_route_chunk(&move || Box::pin(preload()), what).await;
    #[cfg(not(feature = "hydrate"))]
    let _ = (preload, what);
}

#[cfg(feature = "hydrate")]
async fn fetch_route_chunk(
    preload: &dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), SplitLoaderError>>>>,
    what: &'static str,
) {
    let starting = || Owner::current_shared_context().is_some_and(|context| context.during_hydration());
    let mut notice = None;
    let mut attempt = 0;
    while preload().await.is_err() && starting() {
        if build_replaced().await {
            let message = format!("Banter has been updated since this page was opened: reload it to open {what}");
            StartupNotice::show(&mut notice, true, &message).await;
            // Never done: the app does not take this page over.
            std::future::pending::<()>().await;
        }
        if notice.is_none() {
            let message = format!("Could not reach Banter: {what} did not load yet. Trying again…");
            StartupNotice::show(&mut notice, false, &message).await;
        }
        gloo_timers::future::sleep(super::retry::delay(attempt, super::retry::spread())).await;
        attempt = attempt.saturating_add(1);
    }
    // Gone before the app hydrates the page, which it is not part of.
    if let Some(notice) = notice {
        notice.0.remove();
    }
}

/// What a page opened on a lazy route says while the app cannot take it over: built by hand, at
/// the end of `<body>`, since the app's views are not running yet. Holds its live region.
#[cfg(feature = "hydrate")]
struct StartupNotice(web_sys::Element);

#[cfg(feature = "hydrate")]
impl StartupNotice {
    /// Shows `message` in a status, or in an alert with a "Reload" link (a plain link to the page
    /// itself, which loads it again), replacing the notice shown before.
    async fn show(notice: &mut Option<Self>, alert: bool, message: &str) {
        if let Some(shown) = notice.take() {
            shown.0.remove();
        }
        let Some(region) = Self::region(if alert { "alert" } else { "status" }) else { return };
        // A screen reader announces what a live region comes to hold, not what it comes with.
        gloo_timers::future::sleep(std::time::Duration::from_millis(100)).await;
        if Self::fill(&region, alert, message).is_none() {
            leptos::logging::warn!("could not show: {message}");
        }
        *notice = Some(Self(region));
    }

    fn region(role: &str) -> Option<web_sys::Element> {
        let document = document();
        let region = document.create_element("div").ok()?;
        region.set_class_name("page-notice-live");
        region.set_attribute("role", role).ok()?;
        document.body()?.append_child(&region).ok()?;
        Some(region)
    }

    fn fill(region: &web_sys::Element, alert: bool, message: &str) -> Option<()> {
        let document = document();
        let element = document.create_element("div").ok()?;
        element.set_class_name(if alert { "banner banner-error page-notice" } else { "banner page-notice" });
        let text = document.create_element("span").ok()?;
        text.set_text_content(Some(message));
        element.append_child(&text).ok()?;
        if alert {
            let reload = document.create_element("a").ok()?;
            reload.set_class_name("button button-small");
            reload.set_attribute("href", "").ok()?;
            // Past the router, which is listening already while the page waits to hydrate.
            reload.set_attribute("rel", "external").ok()?;
            reload.set_text_content(Some("Reload"));
            element.append_child(&reload).ok()?;
        }
        region.append_child(&element).ok()?;
        Some(())
    }
}

/// Fetches a chunk ahead of its first use, so that it opens at once: `preload` is the split
/// point's own preload function. A failure costs nothing: the first use fetches it again. On the
/// server, nothing.
pub fn prefetch<P, Fut>(preload: P)
where
    P: FnOnce() -> Fut + 'static,
    Fut: Future<Output = Result<(), SplitLoaderError>> + 'static,
{
    #[cfg(feature = "hydrate")]
    leptos::task::spawn_local(async move { _ = preload().await });
    #[cfg(not(feature = "hydrate"))]
    let _ = preload;
}

/// `prefetch`, once the browser is idle (or a moment after hydration where there is no
/// `requestIdleCallback`: Safari).
pub fn prefetch_when_idle<P, Fut>(preload: P)
where
    P: Fn() -> Fut + Copy + 'static,
    Fut: Future<Output = Result<(), SplitLoaderError>> + 'static,
{
    #[cfg(feature = "hydrate")]
    if request_idle_callback_with_handle(move || prefetch(preload)).is_err() {
        set_timeout(move || prefetch(preload), std::time::Duration::from_secs(2));
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = preload;
}
