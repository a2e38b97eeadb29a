//! The verify report as a table: a row per check, then the evidence of
//! each failed check (of every check with `-v`).

use super::table;
use crate::verify::{Report, Status};

pub fn text(report: &Report, verbose: bool) -> String {
    let rows = report
        .checks
        .iter()
        .map(|c| {
            let mark = match c.status {
                Status::Pass => "✓",
                Status::Fail => "✗",
                Status::Skip => "-",
            };
            vec![
                format!("{mark} {}", c.id.name()),
                format!("{:.1}s", c.duration_ms as f64 / 1000.0),
                c.summary.clone(),
            ]
        })
        .collect();
    let mut out = table::render(&["check", "time", "summary"], rows);
    for c in &report.checks {
        if (c.status == Status::Fail || verbose) && !c.evidence.is_empty() {
            out.push_str(&format!("\n\n{}:", c.id.name()));
            for line in &c.evidence {
                out.push_str(&format!("\n  {line}"));
            }
        }
    }
    out
}
