//! `--check FILE`: holds a run's figures to the budgets in a TOML file (`bench/budgets.toml`).
//!
//! Each budget names a scenario and one of its metrics, and a limit: `max` (lower is better) or
//! `min` (higher is better). A figure past its limit breaks the budget, and so does a metric that a
//! scenario which ran no longer reports (a renamed figure must not pass silently). `goal` is where
//! the figure is meant to get to: reported, not enforced, until the limit is moved to it.
//!
//! Size budgets (`size = true`) are checked on every run, smoke runs included: bytes do not depend
//! on the machine. The others only on full-size runs, whose figures mean something.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use crate::report::{ScenarioReport, Table, group_thousands};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetFile {
    budget: Vec<Budget>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub scenario: String,
    pub metric: String,
    pub max: Option<f64>,
    pub min: Option<f64>,
    pub goal: Option<f64>,
    #[serde(default)]
    pub size: bool,
}

impl Budget {
    fn limit(&self) -> String {
        match (self.max, self.min) {
            (Some(max), _) => format!("≤ {}", number(max)),
            (None, Some(min)) => format!("≥ {}", number(min)),
            (None, None) => "none".into(),
        }
    }

    fn within(&self, value: f64, limit: Option<f64>, lower_is_better: bool) -> Option<bool> {
        limit.map(|limit| if lower_is_better { value <= limit } else { value >= limit })
    }
}

/// One budget against the run.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub budget: Budget,
    pub figure: Option<f64>,
    pub broken: bool,
    pub goal_met: Option<bool>,
}

/// Reads and checks a budget file: every budget has exactly one of `max`/`min`.
pub fn load(path: &Path) -> Result<Vec<Budget>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: BudgetFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for b in &file.budget {
        if b.max.is_some() == b.min.is_some() {
            return Err(format!(
                "{}: budget {:?} / {:?} needs exactly one of max or min",
                path.display(),
                b.scenario,
                b.metric
            ));
        }
    }
    Ok(file.budget)
}

/// The budgets that apply to this run (their scenario ran; sizes always, the rest on full runs),
/// each with the run's figure.
pub fn check(budgets: &[Budget], reports: &[ScenarioReport], smoke: bool) -> Vec<Verdict> {
    budgets
        .iter()
        .filter(|b| b.size || !smoke)
        .filter_map(|b| {
            let report = reports.iter().find(|r| r.name == b.scenario)?;
            let figure = report.metrics.iter().find(|m| m.name == b.metric).map(|m| m.value);
            let lower_is_better = b.max.is_some();
            let broken = match figure {
                Some(value) => b.within(value, b.max.or(b.min), lower_is_better) == Some(false),
                None => true,
            };
            let goal_met = figure.and_then(|value| b.within(value, b.goal, lower_is_better));
            Some(Verdict { budget: b.clone(), figure, broken, goal_met })
        })
        .collect()
}

fn number(v: f64) -> String {
    if v >= 100.0 { group_thousands(v.round() as u64) } else { format!("{v:.2}") }
}

/// The verdicts as a table (plain or Markdown), then one line: how many held.
pub fn render(verdicts: &[Verdict], markdown: bool) -> String {
    let mut table = Table::new(&["scenario", "metric", "figure", "limit", "goal", "verdict"], false);
    for v in verdicts {
        let b = &v.budget;
        let verdict = match (v.broken, v.goal_met) {
            (true, _) if v.figure.is_none() => "BROKEN: no such figure",
            (true, _) => "BROKEN",
            (false, Some(true)) => "ok, goal met",
            (false, Some(false)) => "ok, goal not yet met",
            (false, None) => "ok",
        };
        table.rows.push(vec![
            b.scenario.clone(),
            b.metric.clone(),
            v.figure.map(number).unwrap_or_else(|| "-".into()),
            b.limit(),
            b.goal.map(number).unwrap_or_else(|| "-".into()),
            verdict.into(),
        ]);
    }
    let broken = verdicts.iter().filter(|v| v.broken).count();
    let mut out = String::new();
    if markdown {
        out.push_str("\n## Budgets\n\n");
        out.push_str(&crate::report::render_table_markdown(&table));
    } else {
        out.push_str("\nbudgets\n");
        out.push_str(&crate::report::render_table_text(&table));
    }
    let _ = writeln!(
        out,
        "\n{} of {} budgets held{}",
        verdicts.len() - broken,
        verdicts.len(),
        if broken > 0 { ": FAILED" } else { "" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Better;

    fn budgets() -> Vec<Budget> {
        toml::from_str::<BudgetFile>(
            r#"
            [[budget]]
            scenario = "bundle"
            metric = "wasm brotli"
            max = 700000
            goal = 200000
            size = true

            [[budget]]
            scenario = "ssr"
            metric = "page loads per second at 10 connections"
            min = 500
            goal = 3000
            "#,
        )
        .unwrap()
        .budget
    }

    fn bundle(wasm_brotli: f64) -> ScenarioReport {
        let mut r = ScenarioReport::new("bundle");
        r.metric("wasm brotli", wasm_brotli, "B", Better::Lower);
        r
    }

    #[test]
    fn a_figure_past_its_limit_breaks_the_budget_and_the_goal_is_only_reported() {
        let held = check(&budgets(), &[bundle(650_000.0)], true);
        assert_eq!(held.len(), 1, "a smoke run checks sizes only");
        assert!(!held[0].broken);
        assert_eq!(held[0].goal_met, Some(false));
        assert!(render(&held, false).contains("1 of 1 budgets held\n"));

        let broken = check(&budgets(), &[bundle(700_001.0)], true);
        assert!(broken[0].broken);
        assert!(render(&broken, false).contains("0 of 1 budgets held: FAILED"));

        let met = check(&budgets(), &[bundle(150_000.0)], false);
        assert_eq!(met[0].goal_met, Some(true));
    }

    #[test]
    fn higher_is_better_budgets_and_missing_figures() {
        let mut ssr = ScenarioReport::new("ssr");
        ssr.metric("page loads per second at 10 connections", 499.0, "/s", Better::Higher);
        let verdicts = check(&budgets(), &[ssr], false);
        assert_eq!(verdicts.len(), 1, "bundle did not run: its budget does not apply");
        assert!(verdicts[0].broken);

        let renamed = check(&budgets(), &[ScenarioReport::new("bundle")], true);
        assert!(renamed[0].broken, "a scenario that ran without the figure breaks the budget");
        assert!(render(&renamed, false).contains("no such figure"));
    }

    #[test]
    fn the_repository_budget_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("budgets.toml");
        let budgets = load(&path).unwrap();
        assert!(budgets.iter().any(|b| b.size && b.metric == "wasm brotli"));
        assert!(load(Path::new("no-such-file.toml")).is_err());
    }
}
