//! Static files: the build's `/pkg` directory (WASM, JS, CSS) and the site's public files.
//!
//! A release build made by cargo-leptos with `hash-files` names the bundle after its content
//! (`banter.<md5>.wasm`) and writes the hashes to `hash.txt` beside the server binary; such names
//! never change meaning, so they go out with `Cache-Control: public, max-age=31536000, immutable`
//! and a returning browser fetches nothing. Unhashed names (a build without `hash.txt`) are
//! revalidated on every load instead (`no-cache`, answered 304 from `Last-Modified`).
//!
//! On the wire each file goes brotli- or gzip-compressed at the best ratio, from variants written
//! once beside it (`banter.<md5>.wasm.br`, `.gz`) by [`precompress`], which `main` runs in the
//! background at start-up; until they exist (or where the directory is read-only) the dynamic
//! compression layer compresses at a lower quality instead.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use leptos::config::LeptosOptions;
use tower_http::services::ServeDir;

/// What a content-named bundle file is sent with: it is never refetched, nor revalidated.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// What any other bundle file is sent with: kept, but checked on every use.
pub const REVALIDATE: &str = "no-cache";
/// What the site's public files (favicon, sounds, the emoji table) are sent with: their names do
/// not change with their content, so a day at most.
pub const PUBLIC_FILE: &str = "public, max-age=86400";

/// File types worth compressing ahead of time; images and sounds are compressed already.
const COMPRESSIBLE: &[&str] = &["wasm", "js", "css", "json", "svg", "tsv", "txt", "html", "map"];
/// Below this, a compressed variant saves less than its own headers cost.
const MIN_SIZE: u64 = 1024;

/// Whether this server's bundle has content-hashed names: cargo-leptos wrote its `hash.txt`
/// beside the running binary (where `app::bundle` reads the names from).
pub fn hashed_build(options: &LeptosOptions) -> bool {
    app::bundle::hash_txt_path(options).is_some_and(|path| path.is_file())
}

/// The bundle's file names that carry their content's hash, from cargo-leptos' `hash.txt`
/// (`js: <hash>`, `wasm: <hash>`, `css: <hash>` → `banter.<hash>.js`, ...). Other files under
/// `/pkg` (wasm-bindgen's snippets) keep their names across builds.
pub fn hashed_names(hash_txt: &str, output_name: &str) -> HashSet<String> {
    app::bundle::hashes(hash_txt)
        .filter(|(kind, _)| matches!(*kind, "js" | "wasm" | "css"))
        .map(|(kind, hash)| format!("{output_name}.{hash}.{kind}"))
        .collect()
}

/// The content-named files of the build this binary belongs to (none without a `hash.txt`): those
/// `hash.txt` lists, and, of a split build, the chunks, the loader and the manifest that
/// cargo-leptos named after their content in the bundle's directory.
pub fn build_hashes(options: &LeptosOptions) -> HashSet<String> {
    let Some(text) = app::bundle::hash_txt_path(options).and_then(|path| std::fs::read_to_string(path).ok()) else {
        return HashSet::new();
    };
    let mut names = hashed_names(&text, &options.output_name);
    if let Ok(entries) = std::fs::read_dir(pkg_dir(options)) {
        names.extend(
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().into_string().ok())
                .filter(|name| content_named(name)),
        );
    }
    names
}

/// Whether a bundle file's name carries its content's hash the way cargo-leptos writes it:
/// `{stem}.{hash}.{ext}`, the hash being MD5 in unpadded base64url (22 characters). Compressed
/// variants (`.br`, `.gz`) are not requested by name, so they do not count.
pub fn content_named(name: &str) -> bool {
    let mut parts = name.rsplit('.');
    let (Some(ext), Some(hash), Some(stem)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    matches!(ext, "js" | "wasm" | "json" | "css")
        && !stem.is_empty()
        && hash.len() == 22
        && hash.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The bundle's directory (`target/site/pkg`).
pub fn pkg_dir(options: &LeptosOptions) -> PathBuf {
    Path::new(options.site_root.as_ref()).join(options.site_pkg_dir.as_ref())
}

/// `mount` (`/pkg`): the bundle in `dir`, from its precompressed variants where the client accepts them. The
/// files named after their content are immutable; the rest are revalidated. Only found files get
/// a `Cache-Control`; a 404 is not cached.
pub fn pkg_router<S: Clone + Send + Sync + 'static>(mount: &str, dir: PathBuf, hashed: HashSet<String>) -> Router<S> {
    let hashed = Arc::new(hashed);
    let files = ServeDir::new(dir).precompressed_br().precompressed_gzip();
    Router::new().nest_service(mount, files).layer(middleware::from_fn(move |request: Request, next: Next| {
        let name = request.uri().path().rsplit('/').next().unwrap_or_default();
        let cache = if hashed.contains(name) { IMMUTABLE } else { REVALIDATE };
        bundle_headers(request, next, cache)
    }))
}

async fn bundle_headers(request: Request, next: Next, cache: &'static str) -> Response {
    let mut response = cache_found(request, next, cache).await;
    // One URL, three encodings: shared caches must key on Accept-Encoding (the compression layer
    // says so for what it compresses itself, not for these ready-made variants).
    if !response.headers().contains_key(header::VARY) {
        response.headers_mut().insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// Adds `Cache-Control: value` to a found file (200, 206, 304) that has none.
pub async fn cache_found(request: Request, next: Next, value: &'static str) -> Response {
    let mut response = next.run(request).await;
    let found = matches!(response.status(), StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED);
    if found && !response.headers().contains_key(header::CACHE_CONTROL) {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    response
}

/// What [`precompress`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Precompressed {
    /// Variants written (a file's `.br` and `.gz` count as two).
    pub written: usize,
    /// Variants already there and newer than their file.
    pub kept: usize,
}

/// Writes a brotli (quality 11) and a gzip (level 9) variant beside every compressible file under
/// `dir` that lacks an up-to-date one. Each variant is written to a temporary name and renamed into
/// place, so a request never sees half of one, and two servers starting at once do not collide.
pub fn precompress(dir: &Path) -> std::io::Result<Precompressed> {
    let mut done = Precompressed::default();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(path);
                continue;
            }
            let compressible =
                path.extension().and_then(|ext| ext.to_str()).is_some_and(|ext| COMPRESSIBLE.contains(&ext));
            if !compressible || meta.len() < MIN_SIZE {
                continue;
            }
            let source_time = meta.modified()?;
            let mut data = None;
            for (suffix, encode) in [("br", brotli_best as fn(&[u8]) -> Vec<u8>), ("gz", gzip_best)] {
                let variant = PathBuf::from(format!("{}.{suffix}", path.display()));
                let fresh =
                    std::fs::metadata(&variant).and_then(|m| m.modified()).is_ok_and(|time| time >= source_time);
                if fresh {
                    done.kept += 1;
                    continue;
                }
                if data.is_none() {
                    data = Some(std::fs::read(&path)?);
                }
                let encoded = encode(data.as_deref().unwrap_or_default());
                let temporary = PathBuf::from(format!("{}.{}.tmp", variant.display(), std::process::id()));
                std::fs::write(&temporary, encoded)?;
                std::fs::rename(&temporary, &variant)?;
                done.written += 1;
            }
        }
    }
    Ok(done)
}

/// Runs [`precompress`] on the bundle in the background and logs what it did; a failure (a
/// read-only directory, say) is a warning: the dynamic compression layer still compresses.
pub fn spawn_precompress(options: &LeptosOptions) {
    let dir = pkg_dir(options);
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        match precompress(&dir) {
            Ok(done) => tracing::info!(
                dir = %dir.display(),
                written = done.written,
                kept = done.kept,
                ms = Duration::as_millis(&start.elapsed()),
                "static files: compressed variants ready"
            ),
            Err(e) => tracing::warn!(
                dir = %dir.display(),
                "static files: cannot write compressed variants ({e}); compressing on the fly instead"
            ),
        }
    });
}

fn brotli_best(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 3);
    {
        let mut encoder = brotli::CompressorWriter::new(&mut out, 64 * 1024, 11, 22);
        // Writing to a Vec cannot fail.
        let _ = encoder.write_all(data);
    }
    out
}

fn gzip_best(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 3), flate2::Compression::best());
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn split_chunks_count_as_content_named() {
        assert!(content_named("__wasm_split.kvyrgv42nMBX31Tw-_pKYQ.js"));
        assert!(content_named("split_emoji_picker_view_123.kvyrgv42nMBX31Tw-_pKYQ.wasm"));
        assert!(content_named("__wasm_split_manifest.kvyrgv42nMBX31Tw-_pKYQ.json"));
        assert!(!content_named("banter.wasm"), "no hash");
        assert!(!content_named("banter.short.wasm"), "not an MD5");
        assert!(!content_named("banter.kvyrgv42nMBX31Tw-_pKYQ.wasm.br"), "a variant");
        assert!(!content_named(".kvyrgv42nMBX31Tw-_pKYQ.wasm"), "no stem");
        assert!(!content_named("notes.kvyrgv42nMBX31Tw/XNpKQ.txt"));
    }

    #[test]
    fn hashed_names_come_from_the_hash_file() {
        let names = hashed_names("js: Ab-1_x\nwasm: Cd2\ncss: Ef3\nmanifest: Gh4\nwasm: ../x\n", "banter");
        let mut names: Vec<_> = names.into_iter().collect();
        names.sort();
        assert_eq!(names, ["banter.Ab-1_x.js", "banter.Cd2.wasm", "banter.Ef3.css"]);
        assert!(hashed_names("", "banter").is_empty());
    }

    #[test]
    fn precompress_writes_each_variant_once_and_leaves_small_and_binary_files() {
        let dir = std::env::temp_dir().join(format!("banter-precompress-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("snippets")).unwrap();
        let js = "export function banter() { return 'banter'; }\n".repeat(200);
        std::fs::write(dir.join("banter.abc.js"), &js).unwrap();
        std::fs::write(dir.join("snippets").join("x.js"), &js).unwrap();
        std::fs::write(dir.join("tiny.css"), "body{}").unwrap();
        std::fs::write(dir.join("notify.wav"), vec![7u8; 4096]).unwrap();

        assert_eq!(precompress(&dir).unwrap(), Precompressed { written: 4, kept: 0 });
        assert_eq!(precompress(&dir).unwrap(), Precompressed { written: 0, kept: 4 });
        assert!(!dir.join("tiny.css.br").exists(), "tiny files are sent as they are");
        assert!(!dir.join("notify.wav.gz").exists(), "sounds are not compressible text");

        let mut decoded = String::new();
        brotli::Decompressor::new(std::fs::File::open(dir.join("banter.abc.js.br")).unwrap(), 4096)
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, js);
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(dir.join("snippets").join("x.js.gz")).unwrap())
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, js);
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
