//! `bundle`: sizes of the site's WASM, JS and CSS: raw, gzip -9, brotli q11 (what the server
//! sends: it serves the variants it wrote at quality 11 and level 9, `server/src/assets.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::report::{Better, ScenarioReport, Table};
use crate::stats::bytes;

pub fn gzip_len(data: &[u8]) -> u64 {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
    enc.write_all(data).expect("in-memory gzip");
    enc.finish().expect("in-memory gzip").len() as u64
}

pub fn brotli_len(data: &[u8]) -> u64 {
    let mut out = Vec::new();
    {
        let mut enc = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
        enc.write_all(data).expect("in-memory brotli");
    }
    out.len() as u64
}

/// The hashes in cargo-leptos' `hash.txt` beside the server binary (`js: …`, `wasm: …`), if the
/// build named its files after their content.
fn read_hashes(server_bin: &Path) -> Option<String> {
    server_bin.parent().map(|dir| dir.join("hash.txt")).and_then(|path| std::fs::read_to_string(path).ok())
}

/// The bundle file with extension `ext`: `{output_name}.{hash}.{ext}` when cargo-leptos hashed the
/// names (`hashes`, its `hash.txt`, says which hash is the current one), else `{output_name}.{ext}`.
pub fn bundle_file(site_root: &Path, hashes: Option<&str>, output_name: &str, ext: &str) -> PathBuf {
    let hash = hashes.and_then(|text| {
        text.lines().find_map(|line| line.split_once(':').filter(|(key, _)| key.trim() == ext).map(|(_, h)| h.trim()))
    });
    let name = match hash {
        Some(hash) => format!("{output_name}.{hash}.{ext}"),
        None => format!("{output_name}.{ext}"),
    };
    site_root.join("pkg").join(name)
}

/// The split build's other files: the lazily loaded WASM chunks, fetched when a piece is first
/// used, and the loader script every page fetches with the main module. Sorted by name.
fn split_files(pkg: &Path, main_wasm: &Path) -> (Vec<PathBuf>, Option<PathBuf>) {
    let mut chunks = Vec::new();
    let mut loader = None;
    for path in std::fs::read_dir(pkg).into_iter().flatten().flatten().map(|entry| entry.path()) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.ends_with(".wasm") && path != main_wasm {
            chunks.push(path);
        } else if name.starts_with("__wasm_split.") && name.ends_with(".js") {
            loader = Some(path);
        }
    }
    chunks.sort();
    (chunks, loader)
}

/// One file's row: raw, gzip and brotli sizes (a file that cannot be read fails the scenario).
fn row(table: &mut Table, r: &mut ScenarioReport, path: &Path) -> Option<(u64, u64, u64)> {
    match std::fs::read(path) {
        Ok(data) => {
            let sizes = (data.len() as u64, gzip_len(&data), brotli_len(&data));
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            table.rows.push(vec![name, bytes(sizes.0), bytes(sizes.1), bytes(sizes.2)]);
            Some(sizes)
        }
        Err(e) => {
            r.fail(format!("{}: {e}", path.display()));
            None
        }
    }
}

pub fn run(site_root: &Path, server_bin: &Path, output_name: &str, r: &mut ScenarioReport) {
    let hashes = read_hashes(server_bin);
    let mut table = Table::new(&["file", "raw", "gzip -9", "brotli 11"], false);
    // What every page fetches before it is interactive.
    let mut first_load = 0;
    for ext in ["wasm", "js", "css"] {
        let path = bundle_file(site_root, hashes.as_deref(), output_name, ext);
        if let Some((raw, gz, br)) = row(&mut table, r, &path) {
            first_load += br;
            r.figure(&format!("{ext} raw / gzip / brotli (bytes)"), format!("{raw} / {gz} / {br}"));
            r.metric(&format!("{ext} raw"), raw as f64, "B", Better::Lower);
            r.metric(&format!("{ext} brotli"), br as f64, "B", Better::Lower);
        }
    }
    let main_wasm = bundle_file(site_root, hashes.as_deref(), output_name, "wasm");
    let (chunks, loader) = split_files(&site_root.join("pkg"), &main_wasm);
    if let Some((_, _, br)) = loader.as_deref().and_then(|path| row(&mut table, r, path)) {
        first_load += br;
    }
    let (mut lazy_raw, mut lazy_br) = (0, 0);
    for chunk in &chunks {
        if let Some((raw, _, br)) = row(&mut table, r, chunk) {
            lazy_raw += raw;
            lazy_br += br;
        }
    }
    r.figure(
        "lazily loaded WASM chunks (split build)",
        format!("{}: {lazy_raw} B raw, {lazy_br} B brotli in all, each fetched when first used", chunks.len()),
    );
    r.figure("first load of a page, brotli (wasm + js + css + split loader)", format!("{first_load} B"));
    r.metric("first load brotli", first_load as f64, "B", Better::Lower);
    r.table = Some(table);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressors_shrink_repetitive_input() {
        let data = "banter ".repeat(1000);
        assert!(gzip_len(data.as_bytes()) < 200);
        assert!(brotli_len(data.as_bytes()) < 100);
    }

    #[test]
    fn bundle_names_follow_the_hash_file_beside_the_server() {
        let dir = std::env::temp_dir().join(format!("banter-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let server = dir.join("server");
        let site = Path::new("target/site");
        let hashes = read_hashes(&server);
        assert_eq!(bundle_file(site, hashes.as_deref(), "banter", "wasm"), site.join("pkg/banter.wasm"));
        std::fs::write(dir.join("hash.txt"), "js: Ab-1\nwasm: Cd_2\ncss: Ef3\n").unwrap();
        let hashes = read_hashes(&server);
        assert_eq!(bundle_file(site, hashes.as_deref(), "banter", "wasm"), site.join("pkg/banter.Cd_2.wasm"));
        assert_eq!(bundle_file(site, hashes.as_deref(), "banter", "css"), site.join("pkg/banter.Ef3.css"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
