//! The fleet report on the terminal: one row per cluster (and the hub's),
//! or one document with `-o json`.

use super::{Printer, table};
use crate::fleet::FleetReport;

pub fn print_report(printer: &Printer, report: &FleetReport<'_>) {
    let (runs, hub) = (report.clusters, report.hub);
    if printer.is_json() {
        printer.json(report);
    } else {
        let result = |ok: bool, code: i32| {
            if ok {
                "ok".to_string()
            } else {
                format!("exit {code}")
            }
        };
        let mut rows: Vec<Vec<String>> = runs
            .iter()
            .map(|r| {
                vec![
                    r.cluster.clone(),
                    r.context.clone(),
                    result(r.ok, r.exit_code),
                    format!("{:.1}s", r.duration_ms as f64 / 1000.0),
                    r.summary.clone(),
                ]
            })
            .collect();
        // The hub's own row: the central stores, seen from here.
        if let Some(h) = hub {
            rows.push(vec![
                format!("hub ({})", h.cluster),
                "central stores".into(),
                result(h.ok, h.exit_code),
                format!("{:.1}s", h.duration_ms as f64 / 1000.0),
                h.summary(),
            ]);
        }
        printer.out(&table::render(
            &["cluster", "context", "result", "time", "summary"],
            rows,
        ));
    }
}
