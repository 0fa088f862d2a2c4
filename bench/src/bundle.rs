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

/// The bundle file with extension `ext`: `{output_name}.{hash}.{ext}` when cargo-leptos hashed the
/// names (its `hash.txt`, beside the server binary, says which hash is the current one), else
/// `{output_name}.{ext}`.
pub fn bundle_file(site_root: &Path, server_bin: &Path, output_name: &str, ext: &str) -> PathBuf {
    let hashes =
        server_bin.parent().map(|dir| dir.join("hash.txt")).and_then(|path| std::fs::read_to_string(path).ok());
    let hash = hashes.as_deref().and_then(|text| {
        text.lines().find_map(|line| line.split_once(':').filter(|(key, _)| key.trim() == ext).map(|(_, h)| h.trim()))
    });
    let name = match hash {
        Some(hash) => format!("{output_name}.{hash}.{ext}"),
        None => format!("{output_name}.{ext}"),
    };
    site_root.join("pkg").join(name)
}

pub fn run(site_root: &Path, server_bin: &Path, output_name: &str, r: &mut ScenarioReport) {
    let mut table = Table::new(&["file", "raw", "gzip -9", "brotli 11"], false);
    for ext in ["wasm", "js", "css"] {
        let path = bundle_file(site_root, server_bin, output_name, ext);
        match std::fs::read(&path) {
            Ok(data) => {
                let (raw, gz, br) = (data.len() as u64, gzip_len(&data), brotli_len(&data));
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                table.rows.push(vec![name, bytes(raw), bytes(gz), bytes(br)]);
                r.figure(&format!("{ext} raw / gzip / brotli (bytes)"), format!("{raw} / {gz} / {br}"));
                r.metric(&format!("{ext} raw"), raw as f64, "B", Better::Lower);
                r.metric(&format!("{ext} brotli"), br as f64, "B", Better::Lower);
            }
            Err(e) => r.fail(format!("{}: {e}", path.display())),
        }
    }
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
        assert_eq!(bundle_file(site, &server, "banter", "wasm"), site.join("pkg/banter.wasm"));
        std::fs::write(dir.join("hash.txt"), "js: Ab-1\nwasm: Cd_2\ncss: Ef3\n").unwrap();
        assert_eq!(bundle_file(site, &server, "banter", "wasm"), site.join("pkg/banter.Cd_2.wasm"));
        assert_eq!(bundle_file(site, &server, "banter", "css"), site.join("pkg/banter.Ef3.css"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
