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
//! What Leptos' component also did is kept: the JS module is preloaded, and a page that opens on a
//! lazy route preloads that route's chunks and the split build's loader. Leptos does the latter
//! itself once the page is drawn, from a manifest handed to the render, but it reads that manifest
//! outside the render's reactive owner, so it found it on only some loads (7 and 8 of 12 direct
//! loads of `/chat/search`); here the links come from the request's path, on every load.
//!
//! Nothing here makes a browser with JavaScript off fetch WASM: Chromium fetches a
//! `<link rel="preload">` whether or not scripts run (it took the 515 KB module on every first
//! visit without JavaScript), so the module is fetched by the compiling script alone, and a lazy
//! route's chunks are preloaded by links a script adds. Module preloads (`modulepreload`) are
//! fetched only where modules run, so they stay links.

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
    split: Option<Split>,
}

/// The split build: its loader, and per split point (by the name its `wasm_split` attribute gives
/// it) the chunks it needs, as cargo-leptos' `__wasm_split_manifest.json` lists them.
struct Split {
    loader: String,
    chunks: HashMap<String, Vec<String>>,
}

impl Split {
    /// The chunks of the split point `name`, as `/pkg/…` paths.
    fn chunks_of(&self, name: &str) -> Vec<String> {
        let mut chunks: Vec<String> = self.chunks.get(name).into_iter().flatten().cloned().collect();
        chunks.sort_unstable();
        chunks.dedup();
        chunks
    }
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
            .map(|chunks| Split {
                loader: format!("{pkg}/{split_js}"),
                chunks: chunks
                    .into_iter()
                    .map(|(key, chunks)| (key, chunks.into_iter().map(|c| format!("{pkg}/{c}.wasm")).collect()))
                    .collect(),
            });
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

/// Adds a `<link rel="preload">` for each of `chunks` (WASM files under `/pkg`) while the page is
/// parsed: the same preloads as links in the markup, which a browser would fetch with JavaScript
/// off too. None without chunks, or for a name that is not a plain file path.
fn preload_script(chunks: &[String]) -> Option<String> {
    let plain = |c: &String| c.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
    let listed: Vec<String> = chunks.iter().filter(|c| plain(c)).map(|c| format!("{c:?}")).collect();
    (!listed.is_empty()).then(|| {
        format!(
            "[{}].forEach(function(h){{var l=document.createElement(\"link\");l.rel=\"preload\";l.as=\"fetch\";\
             l.type=\"application/wasm\";l.crossOrigin=\"\";l.href=h;document.head.appendChild(l)}})",
            listed.join(",")
        )
    })
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
    // No `<link rel="preload">` for the module: this script, the first thing in `<head>`, fetches
    // it as soon as the page starts to arrive, and Chromium fetches a preload even with JavaScript
    // off, which cost a visitor without it the whole module (515 KB) on a first visit.
    // `data-wasm` names the module for the page's later use: after a chunk has failed, whether the
    // server still has this build (`components::lazy`).
    let (nonce, script) = (leptos::nonce::use_nonce(), compile_script(&bundle.wasm));
    view! { <script nonce=nonce data-wasm=bundle.wasm.as_str() inner_html=script></script> }
}

/// The stylesheet, the preloaded JS module and the script that starts the app; on a lazy route's
/// page, that route's chunks and the split build's loader too.
#[component]
pub fn BundleLinks(options: LeptosOptions) -> impl IntoView {
    let bundle = Bundle::get(&options);
    #[cfg(feature = "ssr")]
    let path = use_context::<axum::http::request::Parts>().map(|parts| parts.uri.path().to_owned());
    #[cfg(not(feature = "ssr"))]
    let path: Option<String> = None;
    let (chunks, loader) = match (&bundle.split, path.and_then(|path| lazy_route_at(&path))) {
        (Some(split), Some(name)) => (split.chunks_of(name), Some(split.loader.clone())),
        _ => (Vec::new(), None),
    };
    let nonce = leptos::nonce::use_nonce();
    // Module preloads are left alone with JavaScript off; a chunk's preload is not, so the chunks'
    // are added by a script.
    view! {
        <link id="leptos" rel="stylesheet" href=bundle.stylesheet.as_str() />
        <link rel="modulepreload" href=bundle.js.as_str() crossorigin="" />
        {preload_script(&chunks).map(|script| view! { <script nonce=nonce.clone() inner_html=script></script> })}
        {loader.map(|loader| view! { <link rel="modulepreload" href=loader crossorigin="" /> })}
        <script type="module" nonce=nonce inner_html=start_script(&bundle.js)></script>
    }
}

/// The lazy route whose page is at `path`, by the name the split build gives its view.
fn lazy_route_at(path: &str) -> Option<&'static str> {
    let path = path.trim_end_matches('/');
    crate::LAZY_ROUTES.iter().find(|(at, _)| *at == path).map(|(_, name)| *name)
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
            Some(
                r#"{"search_route": ["split_search_route", "split_shared", "split_shared"],
                    "emoji_picker": ["split_emoji_picker"]}"#
                    .to_owned(),
            )
        });
        assert_eq!(bundle.stylesheet, "/pkg/banter.CSSHASH.css");
        assert_eq!(bundle.js, "/pkg/banter.JSHASH.js");
        assert_eq!(bundle.wasm, "/pkg/banter.WASMHASH.wasm");
        assert_eq!(asked.as_deref(), Some("__wasm_split_manifest.MHASH.json"));
        let split = bundle.split.expect("the manifest was read");
        assert_eq!(split.loader, "/pkg/__wasm_split.SHASH.js");
        assert_eq!(split.chunks_of("search_route"), ["/pkg/split_search_route.wasm", "/pkg/split_shared.wasm"]);
        assert!(split.chunks_of("search").is_empty(), "a name is matched whole, not as a prefix");
        assert_eq!(split.chunks_of("emoji_picker"), ["/pkg/split_emoji_picker.wasm"]);
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
    fn a_lazy_route_is_found_by_its_path() {
        assert_eq!(lazy_route_at("/chat/search"), Some("search_route"));
        assert_eq!(lazy_route_at("/chat/search/"), Some("search_route"));
        assert_eq!(lazy_route_at("/chat/new-group"), Some("new_group_route"));
        assert_eq!(lazy_route_at("/login"), Some("login_route"));
        assert_eq!(lazy_route_at("/register"), Some("register_route"));
        assert_eq!(lazy_route_at("/chat/12"), None);
        assert_eq!(lazy_route_at("/"), None);
        assert_eq!(lazy_route_at("/chat/searching"), None);
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
        let preload = preload_script(&["/pkg/a.X-1.wasm".to_owned(), "/pkg/b\"<x".to_owned()]).unwrap();
        assert!(preload.starts_with(r#"["/pkg/a.X-1.wasm"].forEach("#), "only plain paths: {preload}");
        assert!(preload.contains(r#"l.rel="preload";l.as="fetch";"#), "{preload}");
        assert_eq!(preload_script(&[]), None);
        let start = start_script("/pkg/banter.J.js");
        assert_eq!(
            start,
            r#"import init,{hydrate} from "/pkg/banter.J.js";init({module_or_path:window.__banterWasm}).then(()=>hydrate())"#
        );
    }
}
