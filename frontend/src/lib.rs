//! The browser entry point: hydrates the server-rendered page. Nothing else lives here.

// Leptos view types nest deeply; computing their layout needs more than the default 128.
#![recursion_limit = "256"]

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Lazy: a page whose route is a chunk of its own (search, the new-group form) waits for that
    // chunk before it hydrates.
    leptos::mount::hydrate_lazy(app::App);
}
