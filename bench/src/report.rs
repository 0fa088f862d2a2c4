//! What a scenario found: key figures, an optional table of steps, and failures; rendered as a plain-text
//! table for stdout and as Markdown for `target/bench/report-*.md`.

use std::fmt::Write as _;
use std::time::Duration;

#[derive(Debug, Default, Clone)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The columns a table of latencies ends with; `Summary::latency_cells` fills them.
pub const LATENCY_HEADERS: [&str; 4] = ["p50", "p95", "p99", "max"];

impl Table {
    /// An empty table with these columns, then the latency columns when `latencies` is set.
    pub fn new(headers: &[&str], latencies: bool) -> Self {
        let extra: &[&str] = if latencies { &LATENCY_HEADERS } else { &[] };
        Self { headers: headers.iter().chain(extra).map(|h| h.to_string()).collect(), rows: vec![] }
    }
}

/// Which way a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// A figure as a number, for comparing two servers.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub better: Better,
}

impl Metric {
    fn shown(&self) -> String {
        let v = self.value;
        let number = if v >= 100.0 {
            group_thousands(v.round() as u64)
        } else if v >= 10.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        };
        if self.unit.is_empty() { number } else { format!("{number} {}", self.unit) }
    }
}

/// 1234567 → "1,234,567".
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[derive(Debug, Default, Clone)]
pub struct ScenarioReport {
    pub name: String,
    /// (figure, value), in display order.
    pub figures: Vec<(String, String)>,
    pub table: Option<Table>,
    /// Anything that makes the run fail: errors, lost or duplicated messages, a scenario that could not run.
    pub failures: Vec<String>,
    pub notes: Vec<String>,
    /// The figures two servers are compared on.
    pub metrics: Vec<Metric>,
    pub wall: Duration,
    pub cpu: Duration,
    /// CPU the server process(es) used during the scenario, when their pids are known.
    pub server_cpu: Option<Duration>,
}

impl ScenarioReport {
    pub fn new(name: &str) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    pub fn figure(&mut self, name: &str, value: impl ToString) {
        self.figures.push((name.into(), value.to_string()));
    }

    /// Records a comparable number (it is also shown with the figures of a comparison).
    pub fn metric(&mut self, name: &str, value: f64, unit: &'static str, better: Better) {
        self.metrics.push(Metric { name: name.into(), value, unit, better });
    }

    pub fn fail(&mut self, why: impl Into<String>) {
        self.failures.push(why.into());
    }

    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    fn cpu_rows(&self) -> Vec<Vec<String>> {
        let wall = self.wall.as_secs_f64();
        let line = |cpu: Duration| {
            let share = if wall > 0.0 { cpu.as_secs_f64() / wall * 100.0 } else { 0.0 };
            format!("{:.2} s CPU over {:.2} s wall ({share:.0} % of one core)", cpu.as_secs_f64(), wall)
        };
        let mut rows = vec![vec!["generator CPU".into(), line(self.cpu)]];
        if let Some(cpu) = self.server_cpu {
            rows.push(vec!["server CPU".into(), line(cpu)]);
        }
        rows
    }
}

fn pad_table(headers: &[String], rows: &[Vec<String>], out: &mut String) {
    let cols = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let line = |cells: &[String], out: &mut String| {
        let parts: Vec<String> = (0..cols)
            .map(|i| {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                format!("{c:<w$}", w = width[i])
            })
            .collect();
        let _ = writeln!(out, "  {}", parts.join("  ").trim_end());
    };
    line(headers, out);
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    line(&rule, out);
    for row in rows {
        line(row, out);
    }
}

/// A table as padded plain text.
pub fn render_table_text(table: &Table) -> String {
    let mut out = String::new();
    pad_table(&table.headers, &table.rows, &mut out);
    out
}

/// A table as Markdown.
pub fn render_table_markdown(table: &Table) -> String {
    let mut out = String::new();
    md_table(&table.headers, &table.rows, &mut out);
    out
}

/// Plain text for the terminal.
pub fn render_text(reports: &[ScenarioReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let status = if r.ok() { "ok" } else { "FAILED" };
        let _ = writeln!(out, "== {} [{status}]", r.name);
        let mut rows: Vec<Vec<String>> = r.figures.iter().map(|(k, v)| vec![k.clone(), v.clone()]).collect();
        rows.extend(r.cpu_rows());
        pad_table(&["figure".into(), "value".into()], &rows, &mut out);
        if let Some(t) = &r.table {
            out.push('\n');
            pad_table(&t.headers, &t.rows, &mut out);
        }
        for n in &r.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        for f in &r.failures {
            let _ = writeln!(out, "  FAILURE: {f}");
        }
        out.push('\n');
    }
    out
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

fn md_table(headers: &[String], rows: &[Vec<String>], out: &mut String) {
    let _ = writeln!(out, "| {} |", headers.iter().map(|h| md_escape(h)).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(headers.len()));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.iter().map(|c| md_escape(c)).collect::<Vec<_>>().join(" | "));
    }
}

/// Rows comparing two runs metric by metric: `[scenario, metric, ours, theirs, ratio]`, where the
/// ratio says how many times better ours is (below 1: worse).
pub fn comparison_rows(ours: &[ScenarioReport], theirs: &[ScenarioReport]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for a in ours {
        let Some(b) = theirs.iter().find(|b| b.name == a.name) else { continue };
        for m in &a.metrics {
            let Some(o) = b.metrics.iter().find(|o| o.name == m.name) else { continue };
            let ratio = match m.better {
                Better::Higher if o.value > 0.0 => format!("{:.2}×", m.value / o.value),
                Better::Lower if m.value > 0.0 => format!("{:.2}×", o.value / m.value),
                _ => "—".into(),
            };
            rows.push(vec![a.name.clone(), m.name.clone(), m.shown(), o.shown(), ratio]);
        }
    }
    rows
}

/// The comparison as text (stdout) and Markdown.
pub fn render_comparison(ours: &str, theirs: &str, rows: &[Vec<String>], markdown: bool) -> String {
    let headers = ["scenario", "metric", ours, theirs, &format!("{ours} better by")].map(String::from).to_vec();
    let mut out = String::new();
    if markdown {
        md_table(&headers, rows, &mut out);
    } else {
        let _ = writeln!(out, "== {ours} vs {theirs}");
        pad_table(&headers, rows, &mut out);
    }
    out
}

/// Markdown for `target/bench/report-*.md`: the context, then each run (a heading per run when
/// there are several), then any comparison.
pub fn render_markdown(
    title: &str,
    context: &[(String, String)],
    runs: &[(String, Vec<ScenarioReport>)],
    comparison: Option<&str>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Banter load report: {title}\n");
    for (k, v) in context {
        let _ = writeln!(out, "- {}: {}", k, v);
    }
    let all_ok = runs.iter().all(|(_, reports)| reports.iter().all(ScenarioReport::ok));
    let _ = writeln!(out, "- result: {}\n", if all_ok { "all scenarios passed" } else { "FAILED" });
    if let Some(comparison) = comparison {
        let _ = writeln!(out, "## Side by side\n\n{comparison}");
    }
    for (run, reports) in runs {
        if runs.len() > 1 {
            let _ = writeln!(out, "# {run}\n");
        }
        render_run(reports, &mut out);
    }
    out
}

fn render_run(reports: &[ScenarioReport], out: &mut String) {
    for r in reports {
        let _ = writeln!(out, "## {}{}\n", r.name, if r.ok() { "" } else { " (FAILED)" });
        let mut rows: Vec<Vec<String>> = r.figures.iter().map(|(k, v)| vec![k.clone(), v.clone()]).collect();
        rows.extend(r.cpu_rows());
        md_table(&["figure".into(), "value".into()], &rows, out);
        if let Some(t) = &r.table {
            out.push('\n');
            md_table(&t.headers, &t.rows, out);
        }
        if !r.notes.is_empty() || !r.failures.is_empty() {
            out.push('\n');
        }
        for n in &r.notes {
            let _ = writeln!(out, "- note: {}", n);
        }
        for f in &r.failures {
            let _ = writeln!(out, "- **failure**: {}", f);
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ScenarioReport {
        let mut r = ScenarioReport::new("chat");
        r.figure("latency p99", "12.0 ms");
        r.table =
            Some(Table { headers: vec!["rate".into(), "p99".into()], rows: vec![vec!["10/s".into(), "a|b".into()]] });
        r.wall = Duration::from_secs(2);
        r.cpu = Duration::from_secs(1);
        r
    }

    #[test]
    fn text_aligns_and_flags_failures() {
        let mut r = sample();
        let text = render_text(std::slice::from_ref(&r));
        assert!(text.contains("== chat [ok]"));
        assert!(text.contains("latency p99    12.0 ms"));
        assert!(text.contains("(50 % of one core)"));
        r.fail("3 messages lost");
        let text = render_text(&[r]);
        assert!(text.contains("[FAILED]"));
        assert!(text.contains("FAILURE: 3 messages lost"));
    }

    #[test]
    fn markdown_tables_escape_pipes() {
        let md =
            render_markdown("chat", &[("server".into(), "spawned".into())], &[("Banter".into(), vec![sample()])], None);
        assert!(md.starts_with("# Banter load report: chat\n"));
        assert!(md.contains("- result: all scenarios passed"));
        assert!(md.contains("| figure | value |\n|---|---|\n| latency p99 | 12.0 ms |"));
        assert!(md.contains("| 10/s | a\\|b |"));
    }

    #[test]
    fn comparisons_say_how_many_times_better_either_way() {
        let mut ours = ScenarioReport::new("chat");
        ours.metric("p99", 2.0, "ms", Better::Lower);
        ours.metric("sends/s", 3000.0, "msg/s", Better::Higher);
        ours.metric("only ours", 1.0, "", Better::Higher);
        let mut theirs = ScenarioReport::new("chat");
        theirs.metric("p99", 8.0, "ms", Better::Lower);
        theirs.metric("sends/s", 6000.0, "msg/s", Better::Higher);
        let rows = comparison_rows(&[ours], &[theirs]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], ["chat", "p99", "2.00 ms", "8.00 ms", "4.00×"]);
        assert_eq!(rows[1], ["chat", "sends/s", "3,000 msg/s", "6,000 msg/s", "0.50×"]);
        let md = render_comparison("Banter", "sockudo", &rows, true);
        assert!(md.starts_with("| scenario | metric | Banter | sockudo | Banter better by |"), "{md}");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }
}
