//! `/`: sends a signed-in visitor to the chat and everyone else to the sign-in page.

use leptos::prelude::*;
use leptos_router::components::Redirect;

use crate::api::auth::me;

#[component]
pub fn HomePage() -> impl IntoView {
    // Blocking, so the server answers with a real redirect before any HTML is sent.
    let user = Resource::new_blocking(|| (), |_| me());
    view! {
        <Suspense>
            {move || Suspend::new(async move {
                let target = if user.await.is_ok() { "/chat" } else { "/login" };
                view! { <Redirect path=target /> }
            })}
        </Suspense>
    }
}
