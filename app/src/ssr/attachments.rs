//! Files sent with messages: upload (streamed to [`Storage`], checked and sniffed on the way),
//! sending (the rows get their message in the send's transaction), download (only for people who
//! can see the message), deletion with the message, and the sweep of uploads never sent.
//!
//! What a file is comes from its bytes: only JPEG, PNG, GIF and WebP that decode as images are
//! ever served inline, with a preview made here (at most [`PREVIEW_EDGE`] px, EXIF dropped, turned
//! upright first); everything else is downloaded as an attachment. Names are cleaned for display
//! and for the `Content-Disposition` header; storage keys are random.

use std::collections::HashMap;
use std::io::Cursor;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use futures_util::{Stream, StreamExt};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::AppError;
use crate::model::{
    ATTACHMENT_MAX_BYTES, ATTACHMENTS_PER_MESSAGE, Attachment, UPLOAD_WINDOW_MINUTES, UPLOADS_PER_WINDOW,
};
use crate::ssr::entities::attachments;
use crate::ssr::rate_limit::SlidingWindow;
use crate::ssr::storage::{self, Storage};

/// The long side of a preview, in pixels.
pub const PREVIEW_EDGE: u32 = 400;
/// Images larger than this many pixels get no preview (decoding one takes 4 bytes a pixel).
const PREVIEW_MAX_PIXELS: u64 = 40_000_000;
/// Uploads not sent with a message within this time are removed.
pub const ORPHAN_AGE: Duration = Duration::from_secs(24 * 3600);
/// Uploads a person may have waiting (uploaded, not yet sent) at once.
pub const PENDING_MAX: u64 = 50;
/// The longest file name kept, in characters.
const NAME_MAX_CHARS: usize = 200;

/// Previews made at once: each holds a decoded image in memory, and takes a core.
static PREVIEWS: Semaphore = Semaphore::const_new(1);

/// Uploads per person: [`UPLOADS_PER_WINDOW`] files in any [`UPLOAD_WINDOW_MINUTES`].
pub fn upload_limiter() -> SlidingWindow {
    SlidingWindow::new(UPLOADS_PER_WINDOW, Duration::from_secs(UPLOAD_WINDOW_MINUTES * 60))
}

/// The content types served inline, after the bytes decoded as such an image.
const INLINE_IMAGES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// What the first bytes of a file say it is. Images by their signatures; a few common document
/// types for the file chip's icon; UTF-8 text without NULs as text; anything else as bytes.
pub fn sniff(head: &[u8]) -> &'static str {
    const SIGNATURES: [(&[u8], &str); 8] = [
        (b"\xFF\xD8\xFF", "image/jpeg"),
        (b"\x89PNG\r\n\x1A\n", "image/png"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x1F\x8B", "application/gzip"),
        (b"7z\xBC\xAF\x27\x1C", "application/x-7z-compressed"),
    ];
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return "image/webp";
    }
    if let Some((_, kind)) = SIGNATURES.iter().find(|(magic, _)| head.starts_with(magic)) {
        return kind;
    }
    // The head may end inside a character: only what is before the last one must be valid.
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && e.valid_up_to() + 4 > head.len(),
    };
    if !head.is_empty() && text && !head.contains(&0) { "text/plain" } else { "application/octet-stream" }
}

/// A file name as it may be shown and saved: the last part of any path, without control or
/// direction-changing characters, trimmed, at most [`NAME_MAX_CHARS`]; "file" when nothing is left.
pub fn clean_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let kept: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'))
        .take(NAME_MAX_CHARS)
        .collect();
    let trimmed = kept.trim().trim_start_matches('.').trim();
    if trimmed.is_empty() { "file".to_owned() } else { trimmed.to_owned() }
}

/// The `Content-Disposition` value for `name`: `inline` or `attachment`, an ASCII `filename`
/// for old clients and the exact name as `filename*` (RFC 6266 / 5987).
pub fn content_disposition(inline: bool, name: &str) -> String {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

impl From<attachments::Model> for Attachment {
    fn from(row: attachments::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            content_type: row.content_type,
            size: row.size,
            width: row.width,
            height: row.height,
            preview: row.preview_type.is_some(),
        }
    }
}

/// What an image upload turned out to be once decoded.
struct Decoded {
    width: u32,
    height: u32,
    /// The preview's bytes and content type.
    preview: Option<(Vec<u8>, &'static str)>,
}

/// Decodes `bytes` as an image (upright, by its EXIF orientation) and makes its preview: JPEG,
/// or lossless WebP when it has transparency. Re-encoding keeps no metadata. `None`: it is not
/// an image this code can read, or too large to decode.
fn decode(bytes: &[u8]) -> Option<Decoded> {
    use image::{DynamicImage, ImageDecoder, ImageReader};
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().ok()?;
    let mut decoder = reader.into_decoder().ok()?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 || u64::from(width) * u64::from(height) > PREVIEW_MAX_PIXELS {
        return None;
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(PREVIEW_MAX_PIXELS * 4 + (16 << 20));
    decoder.set_limits(limits).ok()?;
    let orientation = decoder.orientation().ok()?;
    let mut image = DynamicImage::from_decoder(decoder).ok()?;
    image.apply_orientation(orientation);
    let (width, height) = (image.width(), image.height());
    let small = image.thumbnail(PREVIEW_EDGE.min(width), PREVIEW_EDGE.min(height));
    let mut out = Vec::new();
    let preview = if small.color().has_alpha() {
        small
            .write_with_encoder(image::codecs::webp::WebPEncoder::new_lossless(&mut out))
            .ok()
            .map(|()| (out, "image/webp"))
    } else {
        DynamicImage::ImageRgb8(small.to_rgb8())
            .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82))
            .ok()
            .map(|()| (out, "image/jpeg"))
    };
    Some(Decoded { width, height, preview })
}

/// Stores a file `me` uploads, read from `body` as it arrives, under a random key, and records
/// it as not sent yet. Refused with 413 past [`ATTACHMENT_MAX_BYTES`] (whatever `declared`
/// length the client gave; a declared length over the limit is refused before reading), 429
/// past the upload rate or with [`PENDING_MAX`] uploads waiting, 400 when empty.
pub async fn upload<S, E>(
    db: &DatabaseConnection,
    storage: &Storage,
    limiter: &SlidingWindow,
    me: i64,
    name: &str,
    declared: Option<u64>,
    mut body: S,
) -> Result<Attachment, AppError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let too_large =
        || AppError::TooLarge { message: format!("a file can be at most {} MB", ATTACHMENT_MAX_BYTES / 1_000_000) };
    if declared.is_some_and(|n| n > ATTACHMENT_MAX_BYTES) {
        return Err(too_large());
    }
    let waiting = attachments::Entity::find()
        .filter(attachments::Column::UploaderId.eq(me))
        .filter(attachments::Column::MessageId.is_null())
        .count(db)
        .await?;
    if waiting >= PENDING_MAX {
        return Err(AppError::rate_limited(
            &format!("{PENDING_MAX} files are waiting to be sent; send or remove some first"),
            60,
        ));
    }
    let ticket = limiter.acquire(&me.to_string(), Instant::now()).await.map_err(|refusal| {
        AppError::rate_limited(
            &format!("at most {UPLOADS_PER_WINDOW} uploads in {UPLOAD_WINDOW_MINUTES} minutes"),
            refusal.retry_after_secs(),
        )
    })?;

    let key = storage::new_key();
    let mut upload = storage.upload(&key).await?;
    let (mut size, mut hash, mut head) = (0u64, Sha256::new(), Vec::with_capacity(64));
    let read = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| AppError::invalid("file", format!("the upload was cut off: {e}")))?;
            size += chunk.len() as u64;
            if size > ATTACHMENT_MAX_BYTES {
                return Err(too_large());
            }
            if head.len() < 64 {
                head.extend_from_slice(&chunk[..chunk.len().min(64 - head.len())]);
            }
            hash.update(&chunk);
            upload.write(&chunk).await?;
        }
        if size == 0 {
            return Err(AppError::invalid("file", "the file is empty"));
        }
        Ok(())
    }
    .await;
    if let Err(e) = read {
        upload.abort().await;
        if !matches!(e, AppError::TooLarge { .. }) {
            limiter.refund(ticket).await;
        }
        return Err(e);
    }
    upload.finish().await?;

    let mut content_type = sniff(&head);
    let (mut width, mut height, mut preview_type) = (None, None, None);
    if INLINE_IMAGES.contains(&content_type) {
        match preview(storage, &key, size).await {
            Ok(Some(decoded)) => {
                width = i32::try_from(decoded.width).ok();
                height = i32::try_from(decoded.height).ok();
                preview_type = decoded.preview.map(|(_, kind)| kind.to_owned());
            }
            // Not readable as the image it claims to be: kept as a plain file, never shown inline.
            Ok(None) => content_type = "application/octet-stream",
            Err(e) => {
                let _ = storage.delete(&key).await;
                return Err(e);
            }
        }
    }
    let row = attachments::ActiveModel {
        message_id: Set(None),
        uploader_id: Set(me),
        storage_key: Set(key.clone()),
        name: Set(clean_name(name)),
        content_type: Set(content_type.to_owned()),
        size: Set(size as i64),
        width: Set(width),
        height: Set(height),
        preview_type: Set(preview_type),
        sha256: Set(hex::encode(hash.finalize())),
        position: Set(0),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await;
    match row {
        Ok(row) => Ok(row.into()),
        Err(e) => {
            let _ = storage.delete(&storage::preview_key(&key)).await;
            let _ = storage.delete(&key).await;
            Err(e.into())
        }
    }
}

/// Reads the stored image back and decodes it off the async workers (one at a time), storing
/// its preview beside it. `None`: it does not decode as an image.
async fn preview(storage: &Storage, key: &str, size: u64) -> Result<Option<Decoded>, AppError> {
    let _turn = PREVIEWS.acquire().await.map_err(|_| AppError::Internal)?;
    let bytes = storage.read_all(key, size).await?;
    let decoded = tokio::task::spawn_blocking(move || decode(&bytes)).await.map_err(|_| AppError::Internal)?;
    if let Some(Decoded { preview: Some((bytes, _)), .. }) = &decoded {
        storage.put(&storage::preview_key(key), bytes.clone()).await?;
    }
    Ok(decoded)
}

/// Gives `me`'s unsent uploads `ids` to message `message_id`, in that order, inside the send's
/// transaction `tx`: 400 when there are more than [`ATTACHMENTS_PER_MESSAGE`], one repeats, or
/// one is not `me`'s or was sent already (nothing is kept then: the caller rolls back).
pub async fn attach(tx: &impl ConnectionTrait, me: i64, message_id: i64, ids: &[i64]) -> Result<(), AppError> {
    check_count(ids)?;
    for (position, id) in ids.iter().enumerate() {
        let done = attachments::Entity::update_many()
            .col_expr(attachments::Column::MessageId, Expr::value(message_id))
            .col_expr(attachments::Column::Position, Expr::value(position as i32))
            .filter(attachments::Column::Id.eq(*id))
            .filter(attachments::Column::UploaderId.eq(me))
            .filter(attachments::Column::MessageId.is_null())
            .exec(tx)
            .await?;
        if done.rows_affected != 1 {
            return Err(AppError::invalid(
                "attachments",
                "an attached file is not one of your uploads waiting to be sent",
            ));
        }
    }
    Ok(())
}

/// At most [`ATTACHMENTS_PER_MESSAGE`] files, each once.
pub fn check_count(ids: &[i64]) -> Result<(), AppError> {
    if ids.len() > ATTACHMENTS_PER_MESSAGE {
        return Err(AppError::invalid(
            "attachments",
            format!("a message can carry at most {ATTACHMENTS_PER_MESSAGE} files"),
        ));
    }
    let mut seen = ids.to_vec();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != ids.len() {
        return Err(AppError::invalid("attachments", "the same file is attached twice"));
    }
    Ok(())
}

/// The attachments of messages `ids`, in their order, by message.
pub async fn of_messages(db: &impl ConnectionTrait, ids: &[i64]) -> Result<HashMap<i64, Vec<Attachment>>, AppError> {
    let mut found: HashMap<i64, Vec<Attachment>> = HashMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    let rows = attachments::Entity::find()
        .filter(attachments::Column::MessageId.is_in(ids.iter().copied()))
        .order_by_asc(attachments::Column::Position)
        .all(db)
        .await?;
    for row in rows {
        if let Some(message) = row.message_id {
            found.entry(message).or_default().push(row.into());
        }
    }
    Ok(found)
}

/// A file to send back: its bytes, their length, and how to answer.
pub struct Download {
    pub size: u64,
    pub content_type: String,
    /// Shown by the browser (an image that decoded), or saved (everything else).
    pub inline: bool,
    pub name: String,
    pub sha256: String,
    pub body: futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>,
}

/// File `id` (or its preview) for `me`: only when `me` can see its message, which is not
/// deleted, or it is `me`'s own upload not sent yet. 404 for everyone else, as for no file.
pub async fn open(
    db: &DatabaseConnection,
    storage: &Storage,
    me: i64,
    id: i64,
    preview: bool,
) -> Result<Download, AppError> {
    let not_found = || AppError::not_found("no such file");
    let row = attachments::Entity::find_by_id(id).one(db).await?.ok_or_else(not_found)?;
    match row.message_id {
        None if row.uploader_id == me => {}
        None => return Err(not_found()),
        Some(message) => {
            let (message, _) = crate::ssr::messages::locate(db, me, message).await.map_err(|_| not_found())?;
            if message.deleted_at.is_some() {
                return Err(not_found());
            }
        }
    }
    let (key, content_type) = if preview {
        (storage::preview_key(&row.storage_key), row.preview_type.clone().ok_or_else(not_found)?)
    } else {
        (row.storage_key.clone(), row.content_type.clone())
    };
    let (size, body) = storage.read(&key).await?.ok_or_else(not_found)?;
    let inline = row.width.is_some() && INLINE_IMAGES.contains(&content_type.as_str());
    Ok(Download { size, content_type, inline, name: row.name, sha256: row.sha256, body })
}

/// Removes the rows and stored files of `rows`. A file that cannot be removed now is logged and
/// left for the store's own lifecycle rules; the rows go either way.
async fn remove(db: &impl ConnectionTrait, storage: &Storage, rows: Vec<attachments::Model>) -> Result<u64, AppError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    attachments::Entity::delete_many().filter(attachments::Column::Id.is_in(ids)).exec(db).await?;
    for row in &rows {
        for key in [storage::preview_key(&row.storage_key), row.storage_key.clone()] {
            if let Err(e) = storage.delete(&key).await {
                tracing::warn!(error = %e, attachment = row.id, "a deleted attachment's file stays in the store");
            }
        }
    }
    Ok(rows.len() as u64)
}

/// Removes the attachments of message `message_id` (it was deleted).
pub async fn remove_for_message(db: &DatabaseConnection, storage: &Storage, message_id: i64) -> Result<u64, AppError> {
    let rows = attachments::Entity::find().filter(attachments::Column::MessageId.eq(message_id)).all(db).await?;
    remove(db, storage, rows).await
}

/// Removes `me`'s upload `id` that was not sent (the person took it out of the composer).
pub async fn discard(db: &DatabaseConnection, storage: &Storage, me: i64, id: i64) -> Result<(), AppError> {
    let rows = attachments::Entity::find()
        .filter(attachments::Column::Id.eq(id))
        .filter(attachments::Column::UploaderId.eq(me))
        .filter(attachments::Column::MessageId.is_null())
        .all(db)
        .await?;
    if remove(db, storage, rows).await? == 0 {
        return Err(AppError::not_found("no such upload waiting to be sent"));
    }
    Ok(())
}

/// Removes uploads never sent with a message and older than `age`; how many.
pub async fn sweep_unsent(db: &DatabaseConnection, storage: &Storage, age: Duration) -> Result<u64, AppError> {
    let before = Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::zero());
    let rows = attachments::Entity::find()
        .filter(attachments::Column::MessageId.is_null())
        .filter(attachments::Column::CreatedAt.lt(before))
        .all(db)
        .await?;
    remove(db, storage, rows).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssr::messages::Draft;
    use crate::ssr::test_support::{for_each_database, for_each_storage, unlimited, user};
    use crate::ssr::{conversations, groups};

    /// `bytes` as an upload body arriving in chunks of `chunk` bytes.
    fn body(bytes: &[u8], chunk: usize) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            bytes.chunks(chunk.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        futures_util::stream::iter(chunks)
    }

    /// A `width` × `height` PNG (opaque), or JPEG with an EXIF block naming a place.
    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn jpeg_with_exif(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, _| image::Rgb([(x % 256) as u8, 40, 200]));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        let jpeg = out.into_inner();
        // APP1 "Exif": a big-endian TIFF header with one empty IFD, then a made-up GPS note.
        let mut exif = b"Exif\0\0MM\0\x2A\0\0\0\x08\0\0\0\0\0\0".to_vec();
        exif.extend_from_slice(b"GPS 48.8584N 2.2945E");
        let length = (exif.len() + 2) as u16;
        let mut with = jpeg[..2].to_vec();
        with.extend_from_slice(&[0xFF, 0xE1]);
        with.extend_from_slice(&length.to_be_bytes());
        with.extend_from_slice(&exif);
        with.extend_from_slice(&jpeg[2..]);
        with
    }

    async fn stored(db: &DatabaseConnection, storage: &Storage, me: i64, name: &str, bytes: &[u8]) -> Attachment {
        upload(db, storage, &unlimited(), me, name, Some(bytes.len() as u64), body(bytes, 7_000)).await.unwrap()
    }

    /// The bytes `me` gets for file `id` (or its preview), or the error.
    async fn fetch(
        db: &DatabaseConnection,
        storage: &Storage,
        me: i64,
        id: i64,
        preview: bool,
    ) -> Result<Vec<u8>, AppError> {
        let file = open(db, storage, me, id, preview).await?;
        let chunks: Vec<std::io::Result<Bytes>> = file.body.collect().await;
        Ok(chunks.into_iter().flat_map(|c| c.unwrap().to_vec()).collect())
    }

    fn draft<'a>(body: &'a str, client_id: &'a str, attachments: &'a [i64]) -> Draft<'a> {
        Draft { body, client_id, reply_to_id: None, attachments }
    }

    #[test]
    fn bytes_say_what_a_file_is_not_its_name() {
        assert_eq!(sniff(&png(2, 2)), "image/png");
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), "image/jpeg");
        assert_eq!(sniff(b"GIF89a..."), "image/gif");
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 "), "image/webp");
        assert_eq!(sniff(b"%PDF-1.7"), "application/pdf");
        assert_eq!(sniff(b"<html><script>alert(1)</script>"), "text/plain");
        assert_eq!(sniff("caf\u{e9}".as_bytes()), "text/plain");
        assert_eq!(sniff(b"\0\x01\x02binary"), "application/octet-stream");
    }

    #[test]
    fn names_are_cleaned_and_headers_quote_them_safely() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\me\\report.pdf"), "report.pdf");
        assert_eq!(clean_name("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(clean_name("a\nb\r\"c\".txt"), "ab\"c\".txt");
        assert_eq!(clean_name(" .. "), "file");
        assert_eq!(clean_name(".htaccess"), "htaccess");
        assert_eq!(clean_name(&"x".repeat(500)).chars().count(), 200);
        assert_eq!(
            content_disposition(false, "résumé \"final\".pdf"),
            "attachment; filename=\"r_sum_ _final_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"
        );
        assert!(content_disposition(true, "a.png").starts_with("inline; "));
    }

    #[tokio::test]
    async fn a_sent_file_reaches_the_conversation_and_nobody_else() {
        for_each_storage(|storage| async move {
            for_each_database(|db| {
                let storage = storage.clone();
                async move {
                    let (ann, ben, eve) = (user(&db, "ann").await, user(&db, "ben").await, user(&db, "eve").await);
                    let photo = png(1200, 800);
                    let file = stored(&db, &storage, ann.id, "holiday.txt", &photo).await;
                    // A PNG named .txt is a PNG: previewed, its size read from the pixels.
                    assert_eq!(
                        (file.content_type.as_str(), file.width, file.height),
                        ("image/png", Some(1200), Some(800))
                    );
                    assert!(file.preview && file.is_image());
                    assert_eq!(file.size, photo.len() as i64);
                    // Before it is sent, only its uploader can fetch it.
                    assert_eq!(fetch(&db, &storage, ann.id, file.id, false).await.unwrap(), photo);
                    assert_eq!(fetch(&db, &storage, ben.id, file.id, false).await.unwrap_err().status(), 404);

                    let sent = conversations::send_draft(&db, &unlimited(), &ann, ben.id, draft("", "c-1", &[file.id]))
                        .await
                        .unwrap()
                        .message;
                    assert_eq!(sent.body, "", "the text is optional with a file");
                    assert_eq!(sent.attachments.len(), 1);
                    assert_eq!(sent.attachments[0].name, "holiday.txt");
                    assert_eq!(fetch(&db, &storage, ben.id, file.id, false).await.unwrap(), photo);
                    let preview = fetch(&db, &storage, ben.id, file.id, true).await.unwrap();
                    let small = image::load_from_memory(&preview).unwrap();
                    assert_eq!((small.width(), small.height()), (400, 267), "the long side is 400 px");
                    for outsider in [eve.id, 999_999] {
                        assert_eq!(fetch(&db, &storage, outsider, file.id, false).await.unwrap_err().status(), 404);
                        assert_eq!(fetch(&db, &storage, outsider, file.id, true).await.unwrap_err().status(), 404);
                    }
                    assert_eq!(fetch(&db, &storage, ben.id, file.id + 1000, false).await.unwrap_err().status(), 404);

                    // Sent once: it cannot go out again, nor be sent by someone else.
                    let again =
                        conversations::send_draft(&db, &unlimited(), &ann, eve.id, draft("x", "c-2", &[file.id])).await;
                    assert_eq!(again.unwrap_err().status(), 400);
                    let theirs = stored(&db, &storage, ann.id, "b.png", &png(10, 10)).await;
                    let stolen =
                        conversations::send_draft(&db, &unlimited(), &ben, ann.id, draft("mine", "c-3", &[theirs.id]))
                            .await;
                    assert_eq!(stolen.unwrap_err().status(), 400);
                    conversations::send(&db, &unlimited(), &ann, ben.id, "no file", "c-4", None).await.unwrap();
                    let history = conversations::conversation(&db, ben.id, ann.id, None, Some(50)).await.unwrap();
                    assert!(!history.messages.iter().any(|m| m.body == "mine"), "a refused file stores no message");
                    let files: Vec<(&str, usize)> =
                        history.messages.iter().map(|m| (m.body.as_str(), m.attachments.len())).collect();
                    assert_eq!(files, [("", 1), ("no file", 0)], "the page carries each message's own files");
                }
            })
            .await;
        })
        .await;
    }

    #[tokio::test]
    async fn a_group_file_is_for_its_members_and_not_after_removal() {
        for_each_storage(|storage| async move {
            for_each_database(|db| {
                let storage = storage.clone();
                async move {
                    let (ann, ben, rex) = (user(&db, "ann").await, user(&db, "ben").await, user(&db, "rex").await);
                    let room = groups::create(&db, &ann, "Crew", &[ben.id, rex.id]).await.unwrap().group.id;
                    let before = stored(&db, &storage, ben.id, "plan.pdf", b"%PDF-1.7 plan").await;
                    groups::send_draft(&db, &unlimited(), &ben, room, draft("the plan", "g-1", &[before.id]))
                        .await
                        .unwrap();
                    assert_eq!(fetch(&db, &storage, rex.id, before.id, false).await.unwrap(), b"%PDF-1.7 plan");
                    groups::remove(&db, &ann, room, rex.id).await.unwrap();
                    let after = stored(&db, &storage, ben.id, "plan-2.pdf", b"%PDF-1.7 plan two").await;
                    groups::send_draft(&db, &unlimited(), &ben, room, draft("", "g-2", &[after.id])).await.unwrap();
                    assert_eq!(fetch(&db, &storage, ann.id, after.id, false).await.unwrap(), b"%PDF-1.7 plan two");
                    assert_eq!(fetch(&db, &storage, rex.id, after.id, false).await.unwrap_err().status(), 404);
                    // What they could read while a member stays as readable as its message.
                    assert!(fetch(&db, &storage, rex.id, before.id, false).await.is_ok());
                }
            })
            .await;
        })
        .await;
    }

    #[tokio::test]
    async fn html_is_never_an_image_and_exif_never_reaches_a_preview() {
        for_each_storage(|storage| async move {
            for_each_database(|db| {
                let storage = storage.clone();
                async move {
                    let ann = user(&db, "ann").await;
                    let page =
                        stored(&db, &storage, ann.id, "cat.png", b"<html><script>alert(document.cookie)</script>")
                            .await;
                    assert_eq!(page.content_type, "text/plain");
                    assert!(!page.is_image() && !page.preview);
                    let file = open(&db, &storage, ann.id, page.id, false).await.unwrap();
                    assert!(!file.inline, "served as a download");
                    // PNG signature, but not a PNG: kept as bytes, never inline.
                    let fake = stored(&db, &storage, ann.id, "x.png", b"\x89PNG\r\n\x1A\nnot really").await;
                    assert_eq!((fake.content_type.as_str(), fake.preview), ("application/octet-stream", false));

                    let photo = jpeg_with_exif(640, 480);
                    assert!(photo.windows(4).any(|w| w == b"Exif"));
                    let file = stored(&db, &storage, ann.id, "paris.jpg", &photo).await;
                    assert_eq!(
                        (file.content_type.as_str(), file.width, file.height),
                        ("image/jpeg", Some(640), Some(480))
                    );
                    let preview = fetch(&db, &storage, ann.id, file.id, true).await.unwrap();
                    assert!(!preview.windows(4).any(|w| w == b"Exif"), "no EXIF block in the preview");
                    assert!(!preview.windows(3).any(|w| w == b"GPS"));
                }
            })
            .await;
        })
        .await;
    }

    #[tokio::test]
    async fn limits_are_enforced_on_the_bytes_not_only_the_claim() {
        for_each_storage(|storage| async move {
            for_each_database(|db| {
                let storage = storage.clone();
                async move {
                    let ann = user(&db, "ann").await;
                    let limiter = unlimited();
                    let claimed = upload(
                        &db,
                        &storage,
                        &limiter,
                        ann.id,
                        "big.bin",
                        Some(ATTACHMENT_MAX_BYTES + 1),
                        body(b"x", 1),
                    );
                    assert_eq!(claimed.await.unwrap_err().status(), 413);
                    // No length given, and one byte too many: refused while reading.
                    let over = vec![7u8; ATTACHMENT_MAX_BYTES as usize + 1];
                    let lied = upload(&db, &storage, &limiter, ann.id, "big.bin", None, body(&over, 1 << 20));
                    assert_eq!(lied.await.unwrap_err().status(), 413);
                    let empty = upload(&db, &storage, &limiter, ann.id, "e.txt", Some(0), body(b"", 1)).await;
                    assert_eq!(empty.unwrap_err().status(), 400);
                    assert_eq!(attachments::Entity::find().count(&db).await.unwrap(), 0, "nothing recorded");
                    // Exactly the limit is fine.
                    let full = vec![1u8; ATTACHMENT_MAX_BYTES as usize];
                    let ok =
                        upload(&db, &storage, &limiter, ann.id, "full.bin", None, body(&full, 1 << 20)).await.unwrap();
                    assert_eq!(ok.size as u64, ATTACHMENT_MAX_BYTES);

                    let rate = SlidingWindow::new(2, Duration::from_secs(60));
                    for n in 0..2 {
                        upload(&db, &storage, &rate, ann.id, "r.txt", None, body(format!("r{n}").as_bytes(), 9))
                            .await
                            .unwrap();
                    }
                    let third = upload(&db, &storage, &rate, ann.id, "r.txt", None, body(b"r3", 9)).await;
                    assert_eq!(third.unwrap_err().status(), 429);

                    let ids: Vec<i64> = (1..=11).collect();
                    let eleven =
                        conversations::send_draft(&db, &unlimited(), &ann, ann.id + 1, draft("x", "c-1", &ids)).await;
                    assert_eq!(eleven.unwrap_err().status(), 400);
                }
            })
            .await;
        })
        .await;
    }

    #[tokio::test]
    async fn deleting_a_message_or_leaving_an_upload_unsent_removes_the_files() {
        for_each_storage(|storage| async move {
            for_each_database(|db| {
                let storage = storage.clone();
                async move {
                    let (ann, ben) = (user(&db, "ann").await, user(&db, "ben").await);
                    let sent_file = stored(&db, &storage, ann.id, "a.png", &png(500, 500)).await;
                    let unsent = stored(&db, &storage, ann.id, "b.txt", b"never sent").await;
                    let message = conversations::send_draft(&db, &unlimited(), &ann, ben.id, draft("look", "c-1", &[sent_file.id]))
                        .await
                        .unwrap()
                        .message;
                    let key_of = |id: i64| {
                        let db = db.clone();
                        async move { attachments::Entity::find_by_id(id).one(&db).await.unwrap().map(|row| row.storage_key) }
                    };
                    let (sent_key, unsent_key) = (key_of(sent_file.id).await.unwrap(), key_of(unsent.id).await.unwrap());
                    assert!(storage.exists(&sent_key).await.unwrap() && storage.exists(&storage::preview_key(&sent_key)).await.unwrap());

                    // A day has not passed: nothing is swept. With no age, the unsent upload goes, the sent one stays.
                    assert_eq!(sweep_unsent(&db, &storage, ORPHAN_AGE).await.unwrap(), 0);
                    assert_eq!(sweep_unsent(&db, &storage, Duration::ZERO).await.unwrap(), 1);
                    assert!(!storage.exists(&unsent_key).await.unwrap());
                    assert!(key_of(unsent.id).await.is_none());
                    assert!(storage.exists(&sent_key).await.unwrap());

                    let (tombstone, _) =
                        crate::ssr::messages::delete(&db, Some(&storage), ann.id, message.id).await.unwrap();
                    assert!(tombstone.attachments.is_empty());
                    assert_eq!(remove_for_message(&db, &storage, message.id).await.unwrap(), 0);
                    assert!(!storage.exists(&sent_key).await.unwrap());
                    assert!(!storage.exists(&storage::preview_key(&sent_key)).await.unwrap());
                    assert_eq!(fetch(&db, &storage, ben.id, sent_file.id, false).await.unwrap_err().status(), 404);

                    // Taking an upload back out of the composer: only one's own, only unsent.
                    let draft_file = stored(&db, &storage, ann.id, "c.txt", b"second thoughts").await;
                    assert_eq!(discard(&db, &storage, ben.id, draft_file.id).await.unwrap_err().status(), 404);
                    discard(&db, &storage, ann.id, draft_file.id).await.unwrap();
                    assert!(key_of(draft_file.id).await.is_none());
                }
            })
            .await;
        })
        .await;
    }
}
