//! Files in a message: images as previews sized to the column (their shape reserved before they
//! load, so nothing jumps), other files as a chip with an icon by type, the name and the size.
//! Both are plain links, so they work without JavaScript: an image opens full size, a file
//! downloads under its own name.

use leptos::prelude::*;

use crate::components::attachment_view::{display_size, file_icon, human_size};
use crate::model::Attachment;

/// The files of one message.
#[component]
pub fn AttachmentList(files: Vec<Attachment>) -> impl IntoView {
    let (images, others): (Vec<Attachment>, Vec<Attachment>) = files.into_iter().partition(Attachment::is_image);
    let images = (!images.is_empty()).then(|| {
        let items = images
            .into_iter()
            .map(|file| {
                let (width, height) = display_size(&file);
                let src = file.preview_url().unwrap_or_else(|| file.url());
                let title = format!("{}, {}: open full size", file.name, human_size(file.size));
                view! {
                    <a class="attachment-image" href=file.url() target="_blank" rel="noopener" title=title>
                        <img src=src alt=file.name.clone() width=width height=height loading="lazy" decoding="async" />
                    </a>
                }
            })
            .collect_view();
        view! { <div class="attachment-images">{items}</div> }
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
