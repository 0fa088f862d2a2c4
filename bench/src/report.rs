//! What a scenario found: key figures, an optional table of steps, and failures; rendered as a plain-text
//! table for stdout and as Markdown for `target/bench/report-*.md`.

use std::fmt::Write as _;
use std::time::Duration;

#[derive(Debug, Default, Clone)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
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
    pub wall: Duration,
    pub cpu: Duration,
}

impl ScenarioReport {
    pub fn new(name: &str) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    pub fn figure(&mut self, name: &str, value: impl ToString) {
        self.figures.push((name.into(), value.to_string()));
    }

    pub fn fail(&mut self, why: impl Into<String>) {
        self.failures.push(why.into());
    }

    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    fn cpu_line(&self) -> String {
        let wall = self.wall.as_secs_f64();
        let share = if wall > 0.0 { self.cpu.as_secs_f64() / wall * 100.0 } else { 0.0 };
        format!("{:.2} s CPU over {:.2} s wall ({share:.0} % of one core)", self.cpu.as_secs_f64(), wall)
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

/// Plain text for the terminal.
pub fn render_text(reports: &[ScenarioReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let status = if r.ok() { "ok" } else { "FAILED" };
        let _ = writeln!(out, "== {} [{status}]", r.name);
        let rows: Vec<Vec<String>> = r.figures.iter().map(|(k, v)| vec![k.clone(), v.clone()]).collect();
        let mut rows = rows;
        rows.push(vec!["generator CPU".into(), r.cpu_line()]);
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

/// Markdown for `target/bench/report-*.md`.
pub fn render_markdown(title: &str, context: &[(String, String)], reports: &[ScenarioReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Banter load report: {title}\n");
    for (k, v) in context {
        let _ = writeln!(out, "- {}: {}", k, v);
    }
    let overall = if reports.iter().all(ScenarioReport::ok) { "all scenarios passed" } else { "FAILED" };
    let _ = writeln!(out, "- result: {overall}\n");
    for r in reports {
        let _ = writeln!(out, "## {}{}\n", r.name, if r.ok() { "" } else { " (FAILED)" });
        let mut rows: Vec<Vec<String>> = r.figures.iter().map(|(k, v)| vec![k.clone(), v.clone()]).collect();
        rows.push(vec!["generator CPU".into(), r.cpu_line()]);
        md_table(&["figure".into(), "value".into()], &rows, &mut out);
        if let Some(t) = &r.table {
            out.push('\n');
            md_table(&t.headers, &t.rows, &mut out);
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
    out
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
        let md = render_markdown("chat", &[("server".into(), "spawned".into())], &[sample()]);
        assert!(md.starts_with("# Banter load report: chat\n"));
        assert!(md.contains("- result: all scenarios passed"));
        assert!(md.contains("| figure | value |\n|---|---|\n| latency p99 | 12.0 ms |"));
        assert!(md.contains("| 10/s | a\\|b |"));
    }
}
