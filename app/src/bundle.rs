//! The `<head>` lines that load the stylesheet and the browser app, in place of Leptos'
//! `HashedStylesheet` and `HydrationScripts`, for two reasons, each measured (`banter-bench tti` and
//! `ssr`, 2026-12-05, builds alternating):
//!
//! - **The WASM compiles while the page is still being parsed.** Leptos' script starts the app from
//!   a module script, which runs only once the whole document is parsed; only then did the browser
//!   begin compiling the 1.9 MB module it had already fetched, and hydration waited for that. Here a
//!   classic script at the top of `<head>` hands the module's bytes to `WebAssembly.compileStreaming`
//!   as they arrive (the browser compiles on its own threads), and the module script gives the
//!   compiled module to wasm-bindgen's `init`. Time to interactive on loopback: 370 and 388 ms before,
//!   355 and 344 ms after; a repeat visit 192 → 175 ms. First paint comes 10-25 ms later, since the
//!   compiling now shares the two cores with it.
//! - **The file names are worked out once per process.** Both Leptos components read cargo-leptos'
//!   `hash.txt` from disk at every page they render: `/login` went from 7,442 and 7,525 to 8,436 and
//!   8,832 pages/s.
//!
//! What Leptos' component also did is kept: the split build's manifest is handed to the render, for
//! the server to preload a lazy route's chunk with its page (`leptos::WasmSplitManifest` is public
//! but hidden from the docs; this is the use it exists for), and the JS module is preloaded.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use leptos::prelude::*;

/// cargo-leptos' `hash.txt` beside the running server binary: where a build that names its files
/// after their content lists the hashes (the file need not exist).
pub fn hash_txt_path(options: &LeptosOptions) -> Option<PathBuf> {
    Some(std::env::current_exe().ok()?.parent()?.join(options.hash_file.as_ref()))
}

/// The `kind: hash` lines of a `hash.txt` (`js`, `wasm`, `css`, `manifest`, `split`). A hash that
/// is empty or holds anything but letters, digits, `-` and `_` is left out: it becomes part of a
/// file name, never a path.
pub fn hashes(hash_txt: &str) -> impl Iterator<Item = (&str, &str)> {
    hash_txt
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(kind, hash)| (kind.trim(), hash.trim()))
        .filter(|(_, hash)| !hash.is_empty() && hash.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
}

/// The build's file names and the split build's manifest, read once per process.
struct Bundle {
    stylesheet: String,
    js: String,
    wasm: String,
    split: Option<leptos::WasmSplitManifest>,
}

impl Bundle {
    fn get(options: &LeptosOptions) -> &'static Bundle {
        static BUNDLE: OnceLock<Bundle> = OnceLock::new();
        BUNDLE.get_or_init(|| Bundle::read(options))
    }

    /// `banter.<hash>.css`, `.js` and `.wasm` when the build named its files after their content
    /// (cargo-leptos' `hash.txt` beside the server binary lists the hashes), else the plain names.
    fn read(options: &LeptosOptions) -> Bundle {
        let hash_txt = options
            .hash_files
            .then(|| hash_txt_path(options))
            .flatten()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default();
        Bundle::from_hashes(options, &hash_txt, |manifest| {
            let path =
                std::path::Path::new(options.site_root.as_ref()).join(options.site_pkg_dir.as_ref()).join(manifest);
            std::fs::read_to_string(path).ok()
        })
    }

    fn from_hashes(
        options: &LeptosOptions,
        hash_txt: &str,
        read_manifest: impl FnOnce(&str) -> Option<String>,
    ) -> Bundle {
        let hash = |kind: &str| hashes(hash_txt).find(|(k, _)| *k == kind).map(|(_, hash)| hash.to_owned());
        let pkg = format!("/{}", options.site_pkg_dir);
        let name = options.output_name.as_ref();
        let named = |kind: &str, plain: String| match hash(kind) {
            Some(hash) => format!("{pkg}/{name}.{hash}.{kind}"),
            None => format!("{pkg}/{plain}.{kind}"),
        };
        // wasm-bindgen names the module `<name>_bg.wasm` unless cargo-leptos renamed it.
        let plain_wasm =
            if option_env!("LEPTOS_OUTPUT_NAME").is_some() { name.to_owned() } else { format!("{name}_bg") };
        let manifest = match hash("manifest") {
            Some(hash) => format!("__wasm_split_manifest.{hash}.json"),
            None => "__wasm_split_manifest.json".to_owned(),
        };
        let split_js = match hash("split") {
            Some(hash) => format!("__wasm_split.{hash}.js"),
            None => "__wasm_split.______________________.js".to_owned(),
        };
        let split = read_manifest(&manifest)
            .and_then(|json| serde_json::from_str::<HashMap<String, Vec<String>>>(&json).ok())
            .map(|preloads| leptos::WasmSplitManifest(ArcStoredValue::new((pkg.clone(), preloads, split_js))));
        Bundle {
            stylesheet: named("css", name.to_owned()),
            js: named("js", name.to_owned()),
            wasm: named("wasm", plain_wasm),
            split,
        }
    }
}

/// Starts fetching and compiling the WASM module at once; `window.__banterWasm` is the promise of
/// the compiled module. Without streaming compilation (or a server that names another type), the
/// bytes are compiled whole. A failure rejects the promise, and `init` reports it.
fn compile_script(wasm: &str) -> String {
    format!(
        "(function(u){{var w=WebAssembly,whole=function(){{return fetch(u).then(function(r){{return \
         r.arrayBuffer()}}).then(function(b){{return w.compile(b)}})}};window.__banterWasm=w.compileStreaming?\
         w.compileStreaming(fetch(u)).catch(whole):whole()}})({wasm:?})"
    )
}

/// Hands the compiled module to wasm-bindgen's `init`, then hydrates the page.
fn start_script(js: &str) -> String {
    format!("import init,{{hydrate}} from {js:?};init({{module_or_path:window.__banterWasm}}).then(()=>hydrate())")
}

/// The start of `<head>`: begins compiling the WASM. Goes before the stylesheet, which would
/// otherwise hold the script back until it has loaded.
#[component]
pub fn CompileWasm(options: LeptosOptions) -> impl IntoView {
    let bundle = Bundle::get(&options);
    // The preload lets the browser's look-ahead parser request the module before the script runs;
    // the script's `fetch` (same mode, same credentials) then takes that response.
    view! {
        <link rel="preload" href=bundle.wasm.as_str() r#as="fetch" r#type="application/wasm" crossorigin="" />
        <script nonce=leptos::nonce::use_nonce() inner_html=compile_script(&bundle.wasm)></script>
    }
}

/// The stylesheet, the preloaded JS module and the script that starts the app.
#[component]
pub fn BundleLinks(options: LeptosOptions) -> impl IntoView {
    let bundle = Bundle::get(&options);
    // As Leptos' `HydrationScripts` does. The server integration looks the manifest up after the
    // page is drawn, from whichever reactive owner is current on the thread it then runs on: the
    // lazy route's chunk is preloaded with about half of such pages, with Leptos' component as
    // with this one (7 and 8 of 12 direct loads of `/chat/search`). The others fetch the chunk
    // once the app starts.
    if let Some(split) = &bundle.split {
        provide_context(split.clone());
    }
    let nonce = leptos::nonce::use_nonce();
    view! {
        <link id="leptos" rel="stylesheet" href=bundle.stylesheet.as_str() />
        <link rel="modulepreload" href=bundle.js.as_str() crossorigin="" />
        <script type="module" nonce=nonce inner_html=start_script(&bundle.js)></script>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> LeptosOptions {
        LeptosOptions::builder().output_name("banter").site_pkg_dir("pkg").build()
    }

    #[test]
    fn hashed_names_come_from_hash_txt() {
        let hashes = "js: JSHASH\nwasm: WASMHASH\ncss: CSSHASH\nmanifest: MHASH\nsplit: SHASH\n";
        let mut asked = None;
        let bundle = Bundle::from_hashes(&options(), hashes, |manifest| {
            asked = Some(manifest.to_owned());
            Some(r#"{"search_route": ["split_search"]}"#.to_owned())
        });
        assert_eq!(bundle.stylesheet, "/pkg/banter.CSSHASH.css");
        assert_eq!(bundle.js, "/pkg/banter.JSHASH.js");
        assert_eq!(bundle.wasm, "/pkg/banter.WASMHASH.wasm");
        assert_eq!(asked.as_deref(), Some("__wasm_split_manifest.MHASH.json"));
        let split = bundle.split.expect("the manifest was read");
        let (pkg, preloads, loader) = split.0.get_value();
        assert_eq!(pkg, "/pkg");
        assert_eq!(preloads["search_route"], ["split_search"]);
        assert_eq!(loader, "__wasm_split.SHASH.js");
    }

    #[test]
    fn plain_names_without_hashes_and_no_split_without_a_manifest() {
        let bundle = Bundle::from_hashes(&options(), "", |_| None);
        assert_eq!(bundle.stylesheet, "/pkg/banter.css");
        assert_eq!(bundle.js, "/pkg/banter.js");
        assert!(bundle.wasm == "/pkg/banter_bg.wasm" || bundle.wasm == "/pkg/banter.wasm", "{}", bundle.wasm);
        assert!(bundle.split.is_none());
    }

    #[test]
    fn a_hash_that_is_not_a_plain_name_is_ignored() {
        let listed: Vec<_> = hashes("js: Ab-1_x\nwasm: ../x\ncss:\nnot a line\n manifest :  M4 \n").collect();
        assert_eq!(listed, [("js", "Ab-1_x"), ("manifest", "M4")]);
        let bundle = Bundle::from_hashes(&options(), "wasm: ../../etc/passwd\ncss: a/b\n", |_| None);
        assert_eq!(bundle.stylesheet, "/pkg/banter.css");
        assert!(!bundle.wasm.contains(".."), "{}", bundle.wasm);
    }

    #[test]
    fn the_scripts_name_the_files_and_hand_the_compiled_module_over() {
        let compile = compile_script("/pkg/banter.W.wasm");
        assert!(compile.contains(r#"("/pkg/banter.W.wasm")"#), "{compile}");
        assert!(compile.contains("window.__banterWasm=w.compileStreaming?"), "{compile}");
        let start = start_script("/pkg/banter.J.js");
        assert_eq!(
            start,
            r#"import init,{hydrate} from "/pkg/banter.J.js";init({module_or_path:window.__banterWasm}).then(()=>hydrate())"#
        );
    }
}
