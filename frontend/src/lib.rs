//! The browser entry point: hydrates the server-rendered page. Nothing else lives here.

// Leptos view types nest deeply; computing their layout needs more than the default 128.
#![recursion_limit = "256"]

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Async: a page whose route is a chunk of its own (search, the new-group form, sign-in,
    // registration) waits for that chunk before it hydrates.
    wasm_bindgen_futures::spawn_local(async {
        let Some(body) = leptos::prelude::document().body() else { return };
        leptos::mount::hydrate_from_async(body.clone(), app::App).await.forget();
        // The page is the app's now: the browser tests and the `tti` scenario wait for this mark.
        let _ = body.set_attribute("data-hydrated", "true");
    });
}
