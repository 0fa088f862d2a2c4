//! Files waiting in the composer: each is uploaded as soon as it is chosen (by the paperclip,
//! dropped on the conversation, or pasted), shown as a thumbnail or a chip with a progress bar
//! and a button that cancels it (or takes it back once up), and sent with the next message.
//! The limits are checked here before anything is uploaded, and by the server again.

use leptos::prelude::*;
use web_sys::wasm_bindgen::JsCast;
use web_sys::wasm_bindgen::closure::Closure;

use crate::components::attachment_view::{file_icon, human_size};
use crate::error::AppError;
use crate::model::{ATTACHMENT_MAX_BYTES, ATTACHMENTS_PER_MESSAGE, Attachment};

/// A request's event handler, kept alive as long as the request.
type ProgressHandler = Closure<dyn FnMut(web_sys::ProgressEvent)>;

/// Where an upload stands.
#[derive(Clone, Debug, PartialEq)]
pub enum UploadState {
    /// On its way: the share of bytes sent (0–1).
    Sending(f64),
    Done(Attachment),
    Failed(String),
}

/// One file in the composer.
#[derive(Clone)]
pub struct PendingFile {
    key: u32,
    name: String,
    size: f64,
    is_image: bool,
    /// A local URL of the file for the thumbnail (images only), revoked when it leaves.
    thumbnail: Option<String>,
    state: RwSignal<UploadState>,
}

/// The keys of the files of every composer of this page.
static NEXT_KEY: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

thread_local! {
    /// The browser's side of each running upload, by key: the request (so "cancel" can stop it)
    /// and its event handlers, kept alive with it. Only the browser's one thread ever has any; the
    /// composer's signals hold plain data, so the server can render and drop them on any thread.
    static REQUESTS: std::cell::RefCell<std::collections::HashMap<u32, (web_sys::XmlHttpRequest, Vec<ProgressHandler>)>> =
        Default::default();
}

/// The composer's files.
#[derive(Clone, Copy)]
pub struct Uploads {
    files: RwSignal<Vec<PendingFile>>,
    /// Why the last files offered were refused (too large, too many), until the next offer.
    pub refusal: RwSignal<Option<String>>,
}

impl Default for Uploads {
    fn default() -> Self {
        Self::new()
    }
}

impl Uploads {
    pub fn new() -> Self {
        Self { files: RwSignal::new(Vec::new()), refusal: RwSignal::new(None) }
    }

    /// Starts uploading `files`; refuses (with a message, nothing uploaded) those over the size
    /// limit and any past the per-message count.
    pub fn add(&self, files: Vec<web_sys::File>) {
        let room = ATTACHMENTS_PER_MESSAGE.saturating_sub(self.files.with_untracked(Vec::len));
        let mut refused = Vec::new();
        if files.len() > room {
            refused.push(format!("a message can carry at most {ATTACHMENTS_PER_MESSAGE} files"));
        }
        for file in files.into_iter().take(room) {
            if file.size() > ATTACHMENT_MAX_BYTES as f64 {
                refused.push(format!(
                    "{} is {}: a file can be at most {} MB",
                    file.name(),
                    human_size(file.size() as i64),
                    ATTACHMENT_MAX_BYTES / 1_000_000
                ));
                continue;
            }
            if file.size() == 0.0 {
                refused.push(format!("{} is empty", file.name()));
                continue;
            }
            self.start(file);
        }
        self.refusal.set((!refused.is_empty()).then(|| refused.join("; ")));
    }

    fn start(&self, file: web_sys::File) {
        let key = NEXT_KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let is_image = matches!(file.type_().as_str(), "image/jpeg" | "image/png" | "image/gif" | "image/webp");
        let thumbnail = is_image.then(|| web_sys::Url::create_object_url_with_blob(&file).ok()).flatten();
        let pending = PendingFile {
            key,
            name: file.name(),
            size: file.size(),
            is_image,
            thumbnail,
            state: RwSignal::new(UploadState::Sending(0.0)),
        };
        self.files.update(|files| files.push(pending.clone()));
        if let Err(message) = send(&pending, &file) {
            pending.state.set(UploadState::Failed(message));
        }
    }

    /// Takes file `key` out: stops its upload, or removes it from the server if it is up.
    pub fn remove(&self, key: u32) {
        let Some(file) = self.files.with_untracked(|files| files.iter().find(|f| f.key == key).cloned()) else {
            return;
        };
        self.files.update(|files| files.retain(|f| f.key != key));
        if let Some(request) = REQUESTS.with_borrow(|running| running.get(&key).map(|(request, _)| request.clone())) {
            let _ = request.abort();
        }
        if let UploadState::Done(attachment) = file.state.get_untracked()
            && let Ok(request) = web_sys::XmlHttpRequest::new()
            && request.open_with_async("DELETE", &format!("/api/uploads/{}", attachment.id), true).is_ok()
        {
            // Left behind if this fails: the server removes unsent uploads after a day.
            let _ = request.send();
        }
        forget(&file);
    }

    /// The files that are up, in order, when none is still on its way or failed; `None` otherwise.
    pub fn ready(&self) -> Option<Vec<Attachment>> {
        self.files.with(|files| {
            files
                .iter()
                .map(|f| match f.state.get() {
                    UploadState::Done(attachment) => Some(attachment),
                    _ => None,
                })
                .collect()
        })
    }

    pub fn is_empty(&self) -> bool {
        self.files.with(Vec::is_empty)
    }

    /// After a send: the files went with the message.
    pub fn clear(&self) {
        let files = self.files.try_update(std::mem::take).unwrap_or_default();
        files.iter().for_each(forget);
        self.refusal.set(None);
    }
}

/// The files of a file input, a drop or a paste.
pub fn files_of(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    let Some(list) = list else { return Vec::new() };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

/// Lets go of what the browser holds for `file`: its thumbnail URL and its request's handlers.
fn forget(file: &PendingFile) {
    if let Some(url) = &file.thumbnail {
        let _ = web_sys::Url::revoke_object_url(url);
    }
    REQUESTS.with_borrow_mut(|running| running.remove(&file.key));
}

/// Uploads `file` for `pending` with progress (an XMLHttpRequest: `fetch` reports no upload progress).
fn send(pending: &PendingFile, file: &web_sys::File) -> Result<(), String> {
    let failed = |_| "the upload could not start".to_owned();
    let request = web_sys::XmlHttpRequest::new().map_err(failed)?;
    let url = format!("/api/uploads?name={}", crate::text::query_value(&pending.name));
    request.open_with_async("POST", &url, true).map_err(failed)?;
    request.set_request_header("accept", "application/json").map_err(failed)?;
    let state = pending.state;
    let progress = ProgressHandler::new(move |ev: web_sys::ProgressEvent| {
        if ev.length_computable() && ev.total() > 0.0 {
            state.set(UploadState::Sending((ev.loaded() / ev.total()).min(1.0)));
        }
    });
    let done = {
        let request = request.clone();
        ProgressHandler::new(move |_| {
            let body = request.response_text().ok().flatten().unwrap_or_default();
            let status = request.status().unwrap_or(0);
            state.set(match status {
                201 => match serde_json::from_str::<Attachment>(&body) {
                    Ok(attachment) => UploadState::Done(attachment),
                    Err(_) => UploadState::Failed("the server's answer could not be read".into()),
                },
                0 => UploadState::Failed("the connection was lost".into()),
                _ => UploadState::Failed(
                    serde_json::from_str::<AppError>(&body)
                        .map(|e| e.to_string())
                        .unwrap_or_else(|_| format!("the upload failed ({status})")),
                ),
            });
        })
    };
    let lost = ProgressHandler::new(move |_| {
        state.set(UploadState::Failed("the connection was lost".into()));
    });
    if let Ok(upload) = request.upload() {
        upload.set_onprogress(Some(progress.as_ref().unchecked_ref()));
    }
    request.set_onload(Some(done.as_ref().unchecked_ref()));
    request.set_onerror(Some(lost.as_ref().unchecked_ref()));
    request.send_with_opt_blob(Some(file)).map_err(failed)?;
    REQUESTS.with_borrow_mut(|running| running.insert(pending.key, (request, vec![progress, done, lost])));
    Ok(())
}

/// The files under the composer, each with its progress and a button to take it out.
#[component]
pub fn UploadTray(uploads: Uploads) -> impl IntoView {
    let items = move || {
        uploads
            .files
            .get()
            .into_iter()
            .map(|file| {
                let key = file.key;
                let state = file.state;
                let name = file.name.clone();
                let picture = match (&file.thumbnail, file.is_image) {
                    (Some(url), true) => view! { <img class="upload-thumb" src=url.clone() alt="" /> }.into_any(),
                    _ => view! { <span class="file-icon" aria-hidden="true">{file_icon("", &file.name)}</span> }
                        .into_any(),
                };
                let status = move || match state.get() {
                    UploadState::Sending(share) => view! {
                        <progress class="upload-progress" max="100" value=(share * 100.0).round() aria-label=format!("Uploading {}", name.clone())></progress>
                    }
                    .into_any(),
                    UploadState::Done(_) => view! { <span class="upload-done">"Ready"</span> }.into_any(),
                    UploadState::Failed(why) => view! { <span class="upload-failed" role="alert">{why}</span> }.into_any(),
                };
                let label = {
                    let name = file.name.clone();
                    move || match state.get() {
                        UploadState::Sending(_) => format!("Cancel uploading {name}"),
                        _ => format!("Remove {name}"),
                    }
                };
                view! {
                    <li class="upload" data-state=move || match state.get() {
                        UploadState::Sending(_) => "sending",
                        UploadState::Done(_) => "done",
                        UploadState::Failed(_) => "failed",
                    }>
                        {picture}
                        <span class="upload-text">
                            <span class="file-name">{file.name.clone()}</span>
                            <span class="file-size">{human_size(file.size as i64)}</span>
                            {status}
                        </span>
                        <button class="button button-ghost upload-remove" type="button" aria-label=label on:click=move |_| uploads.remove(key)>
                            <span aria-hidden="true">"×"</span>
                        </button>
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        {move || uploads.refusal.get().map(|why| view! { <p class="composer-error" role="alert">{why}</p> })}
        <Show when=move || !uploads.is_empty()>
            <ul class="upload-tray" aria-label="Files to send">{items}</ul>
        </Show>
    }
}
