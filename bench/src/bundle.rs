//! `bundle`: sizes of the site's WASM, JS and CSS: raw, gzip -9, brotli q11.

use std::io::Write;
use std::path::Path;

use crate::report::{ScenarioReport, Table};
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

pub fn run(site_root: &Path, output_name: &str, r: &mut ScenarioReport) {
    let mut table = Table::new(&["file", "raw", "gzip -9", "brotli 11"], false);
    for ext in ["wasm", "js", "css"] {
        let path = site_root.join("pkg").join(format!("{output_name}.{ext}"));
        match std::fs::read(&path) {
            Ok(data) => {
                let (raw, gz, br) = (data.len() as u64, gzip_len(&data), brotli_len(&data));
                table.rows.push(vec![format!("{output_name}.{ext}"), bytes(raw), bytes(gz), bytes(br)]);
                r.figure(&format!("{ext} raw / gzip / brotli (bytes)"), format!("{raw} / {gz} / {br}"));
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
}
