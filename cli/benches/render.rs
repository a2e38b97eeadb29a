//! Render benchmark (not a timed test): loading the built-in catalogue and
//! rendering the production profile, as `telltale plan --profile production`
//! does minus writing files. Prints the median and the peak resident memory.
//!
//!     cargo bench -p telltale --bench render

use std::time::{Duration, Instant};

use telltale::catalog::Catalog;
use telltale::render::{Request, render};

fn main() {
    let request = Request {
        profile: Some("production".into()),
        ..Request::default()
    };
    // Warm up once, so page faults of the first run do not skew the median.
    let catalog = Catalog::load(&[]).expect("catalogue");
    render(&catalog, &request).expect("render");

    let runs = 50;
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let catalog = Catalog::load(&[]).expect("catalogue");
        let bundle = render(&catalog, &request).expect("render");
        std::hint::black_box(&bundle);
        times.push(start.elapsed());
    }
    times.sort();
    let median = times[runs / 2];
    let peak_kb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    println!(
        "render production: median {:.1} ms over {runs} runs (min {:.1}, max {:.1}); peak RSS {:.1} MB",
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[runs - 1].as_secs_f64() * 1e3,
        peak_kb as f64 / 1024.0
    );
}
