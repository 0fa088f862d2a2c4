//! `tti`: time to interactive in Chromium. The conversation of the `ssr` scenario (50 messages shown,
//! 20 contacts) opened in Debian's Chromium, driven by Playwright (`end2end/tti.mjs`), on loopback
//! and under Chromium's "Fast 3G" emulation: first contentful paint, the moment the composer first
//! takes typed text (the server's page has it before the WASM arrives; what is typed then must
//! still be there once the app has hydrated), and the moment the page has hydrated and the
//! composer takes input, from navigation start, for a first visit (empty cache) and a repeat visit
//! (static files from the cache).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::Ctx;
use crate::client::{self, err};
use crate::report::{Better, ScenarioReport, Table};

#[derive(clap::Args, Debug, Clone)]
pub struct TtiArgs {
    /// Page loads per network profile (each a first visit and a repeat visit).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Messages in the conversation (the page shows the newest 50).
    #[arg(long, default_value_t = 60)]
    pub messages: usize,
    /// Conversations in the reader's contact list.
    #[arg(long, default_value_t = 20)]
    pub contacts: usize,
    /// The Playwright script that drives Chromium (run with `node`, from the repository root).
    #[arg(long, default_value = "end2end/tti.mjs")]
    pub script: PathBuf,
}

impl TtiArgs {
    pub fn smoke() -> Self {
        Self { runs: 1, messages: 10, contacts: 2, ..crate::default_args() }
    }
}

#[derive(Debug, Deserialize)]
struct Output {
    chromium: String,
    results: Vec<Load>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Load {
    profile: String,
    visit: String,
    interactive: f64,
    /// The composer's first input event (a letter typed once the page had painted).
    input: f64,
    /// Whether that letter came before the app had hydrated.
    input_before_hydration: bool,
    /// Whether the letter was still in the composer once the app had hydrated.
    input_kept: bool,
    fcp: Option<f64>,
    first_byte: f64,
    html_loaded: f64,
    dom_content_loaded: f64,
    wasm_bytes: u64,
    wire_bytes: u64,
    requests: u64,
    composer_focused: bool,
    composer_typed: bool,
}

pub async fn run(ctx: &Ctx, args: &TtiArgs, r: &mut ScenarioReport) -> Result<(), client::Error> {
    let script = args.script.clone();
    if !script.is_file() {
        return Err(err(format!("{} is missing (run from the repository root)", script.display())));
    }
    let modules = script.parent().unwrap_or(Path::new(".")).join("node_modules/@playwright/test");
    if !modules.is_dir() {
        return Err(err(format!(
            "{} is missing: run `npm ci` in {} (scripts/test.sh does), and install Debian's chromium",
            modules.display(),
            script.parent().unwrap_or(Path::new(".")).display()
        )));
    }
    let http = client::http_client();
    let (reader, peer) = crate::ssr::seed_conversation(ctx, &http, args.messages, args.contacts, r).await?;
    let (name, value) =
        reader.cookie.split_once('=').ok_or_else(|| err(format!("unexpected session cookie {:?}", reader.cookie)))?;
    let config = serde_json::json!({
        "url": format!("{}/chat/{}", ctx.base_url, peer.id),
        "cookie": { "name": name, "value": value },
        "runs": args.runs,
        "profiles": ["loopback", "fast3g"],
    });
    // Chromium runs outside the generator's runtime: a blocking child on a blocking thread.
    let out = tokio::task::spawn_blocking(move || Command::new("node").arg(&script).arg(config.to_string()).output())
        .await?
        .map_err(|e| err(format!("could not run node: {e}")))?;
    if !out.status.success() {
        return Err(err(format!(
            "node {} failed ({}): {}",
            args.script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let output: Output = serde_json::from_slice(&out.stdout).map_err(|e| {
        err(format!("could not read the script's answer ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    })?;
    r.figure("browser", format!("Chromium {}", output.chromium));
    report(&output.results, r);
    Ok(())
}

/// The table (one row per profile and visit: medians and worst of the runs) and the metrics.
fn report(loads: &[Load], r: &mut ScenarioReport) {
    let mut table = Table::new(
        &[
            "network",
            "visit",
            "loads",
            "HTML first / last byte (median)",
            "first contentful paint (median / worst)",
            "composer takes input (median / worst)",
            "typed before hydration",
            "DOMContentLoaded (median)",
            "interactive (median / worst)",
            "WASM on the wire",
            "all bytes on the wire",
            "requests",
        ],
        false,
    );
    for profile in ["loopback", "fast3g"] {
        for visit in ["first", "repeat"] {
            let these: Vec<&Load> = loads.iter().filter(|l| l.profile == profile && l.visit == visit).collect();
            if these.is_empty() {
                continue;
            }
            if let Some(bad) = these.iter().find(|l| !l.composer_focused || !l.composer_typed) {
                r.fail(format!(
                    "{profile}, {visit} visit: the hydrated composer {} ",
                    if bad.composer_focused { "did not take typed text" } else { "did not hold the focus" }
                ));
            }
            if these.iter().any(|l| !l.input_kept) {
                r.fail(format!(
                    "{profile}, {visit} visit: what was typed before the app had loaded was lost at hydration"
                ));
            }
            // The composer takes input from whichever comes first: the letter typed once the page
            // had painted, or the hydrated app (which the check above typed into). On loopback the
            // letter often waits for the main thread, busy hydrating, and Playwright's round trips.
            let input = sorted(these.iter().map(|l| l.input.min(l.interactive)));
            let early = these.iter().filter(|l| l.input_before_hydration).count();
            let interactive = sorted(these.iter().map(|l| l.interactive));
            let fcp = sorted(these.iter().filter_map(|l| l.fcp));
            let dcl = sorted(these.iter().map(|l| l.dom_content_loaded));
            let first_byte = sorted(these.iter().map(|l| l.first_byte));
            let html_loaded = sorted(these.iter().map(|l| l.html_loaded));
            let label = if profile == "fast3g" { "Fast 3G" } else { "loopback" };
            table.rows.push(vec![
                label.into(),
                visit.into(),
                these.len().to_string(),
                format!("{} / {}", ms(median(&first_byte)), ms(median(&html_loaded))),
                format!("{} / {}", ms(median(&fcp)), ms(fcp.last().copied())),
                format!("{} / {}", ms(median(&input)), ms(input.last().copied())),
                format!("{early} of {}", these.len()),
                ms(median(&dcl)),
                format!("{} / {}", ms(median(&interactive)), ms(interactive.last().copied())),
                crate::stats::bytes(these[0].wasm_bytes),
                crate::stats::bytes(these[0].wire_bytes),
                these[0].requests.to_string(),
            ]);
            let what = |m: &str| format!("{m}, {label}, {visit} visit (median)");
            if let Some(v) = median(&interactive) {
                r.metric(&what("time to interactive"), v, "ms", Better::Lower);
            }
            if let Some(v) = median(&fcp) {
                r.metric(&what("first contentful paint"), v, "ms", Better::Lower);
            }
            if let Some(v) = median(&input) {
                r.metric(&what("composer takes input"), v, "ms", Better::Lower);
            }
        }
    }
    r.table = Some(table);
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v
}

fn median(sorted: &[f64]) -> Option<f64> {
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.0} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(profile: &str, visit: &str, interactive: f64) -> Load {
        Load {
            profile: profile.into(),
            visit: visit.into(),
            interactive,
            input: interactive / 1.5,
            input_before_hydration: true,
            input_kept: true,
            fcp: Some(interactive / 2.0),
            first_byte: interactive / 10.0,
            html_loaded: interactive / 5.0,
            dom_content_loaded: interactive / 3.0,
            wasm_bytes: 600_000,
            wire_bytes: 700_000,
            requests: 5,
            composer_focused: true,
            composer_typed: true,
        }
    }

    #[test]
    fn medians_per_profile_and_visit() {
        let loads = [
            load("loopback", "first", 300.0),
            load("loopback", "first", 100.0),
            load("loopback", "first", 200.0),
            load("fast3g", "first", 4000.0),
            load("fast3g", "first", 5000.0),
        ];
        let mut r = ScenarioReport::new("tti");
        report(&loads, &mut r);
        assert!(r.ok());
        let metric = |name: &str| r.metrics.iter().find(|m| m.name == name).map(|m| m.value);
        assert_eq!(metric("time to interactive, loopback, first visit (median)"), Some(200.0));
        assert_eq!(metric("first contentful paint, loopback, first visit (median)"), Some(100.0));
        assert_eq!(metric("time to interactive, Fast 3G, first visit (median)"), Some(4500.0));
        assert_eq!(metric("composer takes input, Fast 3G, first visit (median)"), Some(3000.0));
        assert_eq!(r.table.as_ref().map(|t| t.rows.len()), Some(2));
    }

    #[test]
    fn the_composer_takes_input_when_the_app_has_hydrated_if_no_earlier_letter_got_there() {
        let mut late = load("loopback", "first", 300.0);
        late.input = 450.0;
        late.input_before_hydration = false;
        let mut r = ScenarioReport::new("tti");
        report(&[late], &mut r);
        assert!(r.ok());
        let input = r.metrics.iter().find(|m| m.name == "composer takes input, loopback, first visit (median)");
        assert_eq!(input.map(|m| m.value), Some(300.0));
    }

    #[test]
    fn a_composer_that_does_not_take_input_or_loses_early_text_fails_the_run() {
        let mut untyped = load("loopback", "repeat", 100.0);
        untyped.composer_typed = false;
        let mut lost = load("fast3g", "first", 4000.0);
        lost.input_kept = false;
        for broken in [untyped, lost] {
            let mut r = ScenarioReport::new("tti");
            report(&[broken], &mut r);
            assert!(!r.ok());
        }
    }
}
