//! Files in a message: images as previews sized to the column (their shape reserved before they
//! load, so nothing jumps), other files as a chip with an icon by type, the name and the size.
//! Both are plain links, so they work without JavaScript: an image opens full size, a file
//! downloads under its own name. With JavaScript an image opens in a lightbox instead: the
//! browser's own modal `<dialog>`, which keeps focus inside, closes on Esc and gives focus back to
//! the image that opened it; the arrow keys move between the images of the message.

use leptos::ev::{KeyboardEvent, MouseEvent};
use leptos::prelude::*;

use crate::components::attachment_view::{display_size, file_icon, human_size};
use crate::components::lazy::{LazyPiece, Loaded, prefetch_when_idle};
use crate::model::Attachment;

/// The files of one message.
#[component]
pub fn AttachmentList(files: Vec<Attachment>) -> impl IntoView {
    let (images, others): (Vec<Attachment>, Vec<Attachment>) = files.into_iter().partition(Attachment::is_image);
    let images = (!images.is_empty()).then(|| {
        prefetch_when_idle(preload_lightbox);
        let shown = RwSignal::new(None::<usize>);
        let all = StoredValue::new(images.clone());
        let items = images
            .into_iter()
            .enumerate()
            .map(|(i, file)| {
                let (width, height) = display_size(&file);
                let src = file.preview_url().unwrap_or_else(|| file.url());
                let title = format!("{}, {}: open full size", file.name, human_size(file.size));
                // A plain click opens the lightbox; a modified one (new tab, download) is the browser's.
                let open = move |ev: MouseEvent| {
                    if ev.button() == 0 && !(ev.ctrl_key() || ev.meta_key() || ev.shift_key() || ev.alt_key()) {
                        ev.prevent_default();
                        shown.set(Some(i));
                    }
                };
                view! {
                    <a class="attachment-image" href=file.url() target="_blank" rel="noopener" title=title on:click=open>
                        <img src=src alt=file.name.clone() width=width height=height loading="lazy" decoding="async" />
                    </a>
                }
            })
            .collect_view();
        view! {
            <div class="attachment-images">{items}</div>
            <Show when=move || shown.with(Option::is_some)>
                <LazyLightbox images=all shown=shown />
            </Show>
        }
    });
    let others = (!others.is_empty()).then(|| {
        let items = others
            .into_iter()
            .map(|file| {
                view! {
                    <a class="file-chip" href=file.url() download=file.name.clone()>
                        <span class="visually-hidden">"Download "</span>
                        <span class="file-icon" aria-hidden="true">{file_icon(&file.content_type, &file.name)}</span>
                        <span class="file-name">{file.name.clone()}</span>
                        <span class="file-size">{human_size(file.size)}</span>
                    </a>
                }
            })
            .collect_view();
        view! { <div class="file-chips">{items}</div> }
    });
    view! { <div class="attachments">{images} {others}</div> }
}

/// Where `step` moves from image `at` of `count`: around the ends, as photo viewers do.
fn stepped(at: usize, count: usize, step: isize) -> usize {
    if count == 0 {
        return 0;
    }
    (at as isize + step).rem_euclid(count as isize) as usize
}

/// The lightbox as a message mounts it while open (`shown` is `Some`): its code is a chunk of its
/// own in the split browser build, fetched when the conversation first shows an image and the
/// browser is idle, or when an image is opened before that. The `Show` around it keeps it mounted
/// while the arrows move.
#[component]
fn LazyLightbox(images: StoredValue<Vec<Attachment>>, shown: RwSignal<Option<usize>>) -> impl IntoView {
    view! {
        <LazyPiece load=move || lightbox_view(images, shown) loading="Opening the image…" what="the image viewer" />
    }
}

/// The split point: everything only the lightbox uses lands in its chunk.
#[leptos::wasm_split::wasm_split(lightbox, wasm_split_path = ::leptos::wasm_split, preload(preload_lightbox), fallible)]
fn lightbox_view(images: StoredValue<Vec<Attachment>>, shown: RwSignal<Option<usize>>) -> Loaded {
    Ok(view! { <Lightbox images shown /> }.into_any())
}

/// The images of one message, full size, one at a time. Made only while open, so a page of
/// messages carries no closed dialogs.
#[component]
fn Lightbox(images: StoredValue<Vec<Attachment>>, shown: RwSignal<Option<usize>>) -> impl IntoView {
    let dialog = NodeRef::<leptos::html::Dialog>::new();
    let count = images.with_value(Vec::len);
    // Opened as a modal once it is in the page: the rest of the page becomes inert until it closes.
    // The `Suspense` that waited for its chunk builds it first and puts it in the page a moment later.
    Effect::new(move |_| {
        if dialog.get().is_some() {
            show_modal_when_placed(dialog);
        }
    });
    // Closing goes through the dialog (Esc does too), so focus returns where it was; its `close`
    // event then takes the lightbox away.
    let close = move || {
        if let Some(dialog) = dialog.get_untracked() {
            dialog.close();
        }
    };
    let step = move |by: isize| shown.update(|at| *at = at.map(|i| stepped(i, count, by)));
    let keydown = move |ev: KeyboardEvent| match ev.key().as_str() {
        "ArrowRight" | "ArrowDown" | "PageDown" => {
            ev.prevent_default();
            step(1);
        }
        "ArrowLeft" | "ArrowUp" | "PageUp" => {
            ev.prevent_default();
            step(-1);
        }
        "Home" => {
            ev.prevent_default();
            shown.set(Some(0));
        }
        "End" => {
            ev.prevent_default();
            shown.set(Some(count.saturating_sub(1)));
        }
        _ => {}
    };
    // A click on the dim area around the picture (the dialog itself, not its content) closes it.
    let backdrop = move |ev: MouseEvent| {
        if ev.target() == ev.current_target() {
            close();
        }
    };
    // The dialog's parts stay in place while the arrows move (only what they show changes), so
    // the focused button keeps its focus.
    let at = move || shown.get().unwrap_or(0);
    let file =
        move |read: fn(&Attachment) -> String| images.with_value(|all| all.get(at()).map(read).unwrap_or_default());
    let dimension = move |read: fn(&Attachment) -> Option<i32>| images.with_value(|all| all.get(at()).and_then(read));
    let label = move || {
        let name = file(|f| f.name.clone());
        if count > 1 { format!("{name}, image {} of {count}", at() + 1) } else { name }
    };
    let meta = move || {
        let size = images.with_value(|all| all.get(at()).map(|f| human_size(f.size)).unwrap_or_default());
        if count > 1 { format!("{size} · {} of {count}", at() + 1) } else { size }
    };
    let arrows = (count > 1).then(|| {
        view! {
            <button type="button" aria-label="Previous image" on:click=move |_| step(-1)>
                "‹"
            </button>
            <button type="button" aria-label="Next image" on:click=move |_| step(1)>
                "›"
            </button>
        }
    });
    view! {
        <dialog
            class="lightbox"
            node_ref=dialog
            aria-label=label
            on:close=move |_| shown.set(None)
            on:keydown=keydown
            on:click=backdrop
        >
            <figure class="lightbox-figure">
                <img
                    class="lightbox-image"
                    src=move || file(Attachment::url)
                    alt=move || file(|f| f.name.clone())
                    width=move || dimension(|f| f.width)
                    height=move || dimension(|f| f.height)
                />
                <figcaption class="lightbox-caption">
                    <span class="lightbox-name">{move || file(|f| f.name.clone())}</span>
                    <span class="lightbox-meta">{meta}</span>
                </figcaption>
            </figure>
            <div class="lightbox-controls">
                {arrows}
                <a class="lightbox-download" href=move || file(Attachment::url) download=move || file(|f| f.name.clone())>
                    "Download"
                </a>
                <button type="button" class="lightbox-close" autofocus on:click=move |_| close()>
                    "Close"
                </button>
            </div>
        </dialog>
    }
}

/// Opens `dialog` as a modal once it is in the document, looking again each frame until then
/// (a modal can only be shown in the page); nothing once it is gone.
fn show_modal_when_placed(dialog: NodeRef<leptos::html::Dialog>) {
    let Some(element) = dialog.get_untracked() else { return };
    if element.open() {
        return;
    }
    if element.is_connected() {
        let _ = element.show_modal();
    } else {
        request_animation_frame(move || show_modal_when_placed(dialog));
    }
}

#[cfg(test)]
mod tests {
    use super::stepped;

    #[test]
    fn the_arrows_go_around_the_ends() {
        assert_eq!(stepped(0, 3, 1), 1);
        assert_eq!(stepped(2, 3, 1), 0);
        assert_eq!(stepped(0, 3, -1), 2);
        assert_eq!(stepped(0, 1, 1), 0);
        assert_eq!(stepped(0, 0, 1), 0);
    }
}
