//! `/login` and `/register`. Plain forms posting to the server functions, so they work before
//! (or without) WASM; once hydrated, errors appear inline without a reload.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;

use crate::api::auth::{Login, Register};
use crate::error::AppError;

/// The error of the latest attempt, if it failed.
fn latest_error<S>(action: ServerAction<S>) -> Signal<Option<AppError>>
where
    S: ServerFn<Error = AppError> + Send + Sync + Clone + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    Signal::derive(move || action.value().get().and_then(Result::err))
}

#[component]
fn Field(
    label: &'static str,
    name: &'static str,
    kind: &'static str,
    autocomplete: &'static str,
    error: Signal<Option<AppError>>,
    #[prop(optional)] hint: Option<&'static str>,
) -> impl IntoView {
    let id = format!("field-{name}");
    let error_id = format!("{id}-error");
    let message = move || error.get().and_then(|e| e.for_field(name));
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <input
                id=id
                name=name
                type=kind
                autocomplete=autocomplete
                required
                aria-invalid=move || message().is_some().to_string()
                aria-describedby=error_id.clone()
            />
            {hint.map(|hint| view! { <p class="field-hint">{hint}</p> })}
            <p class="field-error" id=error_id>
                {message}
            </p>
        </div>
    }
}

#[component]
fn FormError(error: Signal<Option<AppError>>) -> impl IntoView {
    move || {
        error.get().and_then(|e| e.form_message()).map(|message| {
            view! {
                <p class="form-error" role="alert">
                    {message}
                </p>
            }
        })
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let error = latest_error(login);
    view! {
        <Title text="Sign in · Banter" />
        <main class="centered">
            <div class="card auth-card">
                <h1 class="brand">"Banter"</h1>
                <h2>"Sign in"</h2>
                <ActionForm action=login>
                    <FormError error />
                    <Field label="Email" name="email" kind="email" autocomplete="email" error />
                    <Field
                        label="Password"
                        name="password"
                        kind="password"
                        autocomplete="current-password"
                        error
                    />
                    <button class="button button-primary" type="submit" disabled=move || login.pending().get()>
                        "Sign in"
                    </button>
                </ActionForm>
                <p class="muted">"New here? " <a href="/register">"Create an account"</a></p>
            </div>
        </main>
    }
}

#[component]
pub fn RegisterPage() -> impl IntoView {
    let register = ServerAction::<Register>::new();
    let error = latest_error(register);
    view! {
        <Title text="Create an account · Banter" />
        <main class="centered">
            <div class="card auth-card">
                <h1 class="brand">"Banter"</h1>
                <h2>"Create an account"</h2>
                <ActionForm action=register>
                    <FormError error />
                    <Field label="Name" name="name" kind="text" autocomplete="name" error />
                    <Field label="Email" name="email" kind="email" autocomplete="email" error />
                    <Field
                        label="Password"
                        name="password"
                        kind="password"
                        autocomplete="new-password"
                        hint="At least 8 characters."
                        error
                    />
                    <Field
                        label="Confirm password"
                        name="password_confirmation"
                        kind="password"
                        autocomplete="new-password"
                        error
                    />
                    <button class="button button-primary" type="submit" disabled=move || register.pending().get()>
                        "Create account"
                    </button>
                </ActionForm>
                <p class="muted">"Already have an account? " <a href="/login">"Sign in"</a></p>
            </div>
        </main>
    }
}
