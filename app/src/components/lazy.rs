//! Pieces of the browser app that are chunks of their own in the split build, fetched when they
//! are about to be used (`prefetch`) or at the latest when they are: the emoji picker and the
//! image lightbox.
//!
//! Each is a `wasm_split` point with the `fallible` option (Leptos' `#[lazy]` is the same point
//! without it): a chunk that cannot be fetched (offline, the server restarting) comes back as an
//! error instead of a panic, which would stop the whole app. `LazyPiece` shows what is happening:
//! a visible status while the chunk loads, and an alert with "Retry" if it did not arrive (the
//! loader keeps no failure, so a retry fetches it again).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use leptos::prelude::*;
use leptos::wasm_split::SplitLoaderError;

use crate::components::ErrorBanner;
use crate::error::AppError;

/// What a split function returns: its view, or why its chunk did not arrive.
pub type Loaded = Result<AnyView, ChunkMissing>;

/// A chunk of the app that could not be fetched.
#[derive(Debug, Clone, Copy)]
pub struct ChunkMissing;

impl From<SplitLoaderError> for ChunkMissing {
    fn from(_: SplitLoaderError) -> Self {
        Self
    }
}

/// Mounts the view `load` brings from its chunk. Until it arrives, `loading` is shown as a status
/// (with `class`, so it takes the piece's place); if it cannot arrive, an alert says that `what`
/// did not load, with a "Retry".
#[component]
pub fn LazyPiece<L, Fut>(
    load: L,
    loading: &'static str,
    what: &'static str,
    #[prop(optional)] class: &'static str,
) -> impl IntoView
where
    L: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Loaded> + Send + 'static,
{
    // One copy of the code below for every piece, however many there are.
    lazy_piece(Arc::new(move || Box::pin(load())), loading, what, class)
}

type Load = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Loaded> + Send>> + Send + Sync>;

fn lazy_piece(load: Load, loading: &'static str, what: &'static str, class: &'static str) -> AnyView {
    let attempt = RwSignal::new(0_u32);
    let piece = move || {
        attempt.track();
        let loaded = load();
        Suspend::new(async move {
            match loaded.await {
                Ok(view) => view,
                Err(ChunkMissing) => {
                    let error = AppError::Transport { message: format!("{what} did not load") };
                    let retry = Callback::new(move |()| attempt.update(|n| *n += 1));
                    view! { <div class=format!("lazy-failed {class}")><ErrorBanner error on_retry=retry /></div> }
                        .into_any()
                }
            }
        })
    };
    view! {
        <Suspense fallback=move || view! { <p class=format!("lazy-loading {class}") role="status">{loading}</p> }>
            {piece}
        </Suspense>
    }
    .into_any()
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
