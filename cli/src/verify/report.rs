//! The verify report as JUnit XML (its table is `ui::verify`, its JSON
//! DESIGN.md's shape).

use super::{Report, Status};

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => String::new(),
            c => c.to_string(),
        })
        .collect()
}

/// One testsuite `telltale-verify`, one testcase per check.
pub fn junit(report: &Report) -> String {
    let failures = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .count();
    let skipped = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Skip)
        .count();
    let seconds: f64 = report
        .checks
        .iter()
        .map(|c| c.duration_ms as f64 / 1000.0)
        .sum();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"telltale verify\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">\n\
<testsuite name=\"telltale-verify\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{seconds:.3}\">\n",
        report.checks.len(),
        report.checks.len()
    );
    for c in &report.checks {
        out.push_str(&format!(
            "  <testcase classname=\"telltale.verify\" name=\"{}\" time=\"{:.3}\">\n",
            c.id.name(),
            c.duration_ms as f64 / 1000.0
        ));
        let evidence = escape(&c.evidence.join("\n"));
        match c.status {
            Status::Fail => out.push_str(&format!(
                "    <failure message=\"{}\">{evidence}</failure>\n",
                escape(&c.summary)
            )),
            Status::Skip => out.push_str(&format!(
                "    <skipped message=\"{}\"/>\n",
                escape(&c.summary)
            )),
            Status::Pass => out.push_str(&format!("    <system-out>{evidence}</system-out>\n")),
        }
        out.push_str("  </testcase>\n");
    }
    out.push_str("</testsuite>\n</testsuites>\n");
    out
}
