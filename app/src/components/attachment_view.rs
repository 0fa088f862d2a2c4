//! How files are described to people: sizes, icons by type, and the box an image preview takes.

use crate::model::Attachment;

/// `1.2 MB`, `340 KB`, `12 bytes` (decimal units, as the limits are stated).
pub fn human_size(bytes: i64) -> String {
    let bytes = bytes.max(0) as f64;
    if bytes >= 1_000_000.0 {
        format!("{:.1} MB", bytes / 1_000_000.0)
    } else if bytes >= 1_000.0 {
        format!("{:.0} KB", bytes / 1_000.0)
    } else if bytes == 1.0 {
        "1 byte".to_owned()
    } else {
        format!("{bytes:.0} bytes")
    }
}

/// An icon for a file chip, by what the file is (its sniffed type, then its name's ending).
pub fn file_icon(content_type: &str, name: &str) -> &'static str {
    let ending = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match (content_type, ending.as_str()) {
        ("application/pdf", _) => "📕",
        ("application/zip" | "application/gzip" | "application/x-7z-compressed", _) => "🗜️",
        (_, "mp3" | "wav" | "ogg" | "flac" | "m4a") => "🎵",
        (_, "mp4" | "mov" | "webm" | "mkv") => "🎬",
        (_, "xls" | "xlsx" | "csv" | "ods") => "📊",
        (_, "doc" | "docx" | "odt" | "rtf") => "📝",
        ("text/plain", _) => "📄",
        (kind, _) if kind.starts_with("image/") => "🖼️",
        _ => "📎",
    }
}

/// The width and height an image preview is laid out at (its real shape, at most 400 px on the
/// long side), so the space is reserved before it loads.
pub fn display_size(file: &Attachment) -> (u32, u32) {
    let (w, h) = (file.width.unwrap_or(1).max(1) as f64, file.height.unwrap_or(1).max(1) as f64);
    let scale = (400.0 / w.max(h)).min(1.0);
    (((w * scale).round() as u32).max(1), ((h * scale).round() as u32).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(human_size(1), "1 byte");
        assert_eq!(human_size(999), "999 bytes");
        assert_eq!(human_size(34_000), "34 KB");
        assert_eq!(human_size(25_000_000), "25.0 MB");
    }

    #[test]
    fn a_preview_keeps_the_image_shape_within_400_px() {
        let file = |w, h| Attachment {
            id: 1,
            name: "x".into(),
            content_type: "image/png".into(),
            size: 1,
            width: Some(w),
            height: Some(h),
            preview: true,
        };
        assert_eq!(display_size(&file(1200, 800)), (400, 267));
        assert_eq!(display_size(&file(300, 900)), (133, 400));
        assert_eq!(display_size(&file(20, 10)), (20, 10));
        assert_eq!(file_icon("application/pdf", "a.bin"), "📕");
        assert_eq!(file_icon("application/octet-stream", "song.MP3"), "🎵");
    }
}
