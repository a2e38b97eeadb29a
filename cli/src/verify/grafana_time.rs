//! Grafana's interval arithmetic, as its frontend and its Prometheus
//! backend compute it: `verify dashboards` asks for each panel what a
//! browser would (the panel's width in points, the interval those points
//! give), and the local stack's fake Grafana turns that into the step and
//! the `$__interval`/`$__rate_interval` Grafana would send Prometheus.
//!
//! Sources: grafana-plugin-sdk-go `backend/gtime` (RoundInterval,
//! FormatInterval, ParseIntervalStringToTimeDuration), grafana
//! `pkg/promlib/intervalv2` (Calculate, CalculateSafeInterval) and
//! `pkg/promlib/models/query.go` (calculatePrometheusInterval,
//! calculateRateInterval, InterpolateVariables, AlignTimeRange).

use std::time::Duration;

/// Grafana's `gtime.RoundInterval`: a lower, rounder interval.
pub fn round_interval(interval: Duration) -> Duration {
    let ms = interval.as_millis() as u64;
    // (upper bound inclusive, result), both in milliseconds.
    const TABLE: [(u64, u64); 27] = [
        (10, 1),
        (15, 10),
        (35, 20),
        (75, 50),
        (150, 100),
        (350, 200),
        (750, 500),
        (1_500, 1_000),
        (3_500, 2_000),
        (7_500, 5_000),
        (12_500, 10_000),
        (17_500, 15_000),
        (25_000, 20_000),
        (45_000, 30_000),
        (90_000, 60_000),
        (210_000, 120_000),
        (450_000, 300_000),
        (750_000, 600_000),
        (1_050_000, 900_000),
        (1_500_000, 1_200_000),
        (2_700_000, 1_800_000),
        (5_400_000, 3_600_000),
        (9_000_000, 7_200_000),
        (16_200_000, 10_800_000),
        (32_400_000, 21_600_000),
        (86_400_000, 43_200_000),
        (172_800_000, 86_400_000),
    ];
    let rounded = TABLE
        .iter()
        .find(|(bound, _)| ms <= *bound)
        .map(|(_, r)| *r)
        .unwrap_or(if ms <= 604_800_000 {
            86_400_000
        } else if ms <= 1_814_400_000 {
            604_800_000
        } else if ms < 3_628_800_000 {
            2_592_000_000
        } else {
            31_536_000_000
        });
    Duration::from_millis(rounded)
}

/// Grafana's `gtime.FormatInterval`: the largest whole unit.
pub fn format_interval(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    let (year, day, hour, minute, second) =
        (365 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1_000);
    if ms >= year {
        format!("{}y", ms / year)
    } else if ms >= day {
        format!("{}d", ms / day)
    } else if ms >= hour {
        format!("{}h", ms / hour)
    } else if ms >= minute {
        format!("{}m", ms / minute)
    } else if ms >= second {
        format!("{}s", ms / second)
    } else if ms >= 1 {
        format!("{ms}ms")
    } else {
        "1ms".into()
    }
}

/// Go's `time.Duration.String()` for whole milliseconds (`1m30s`,
/// `2m0s`, `500ms`): what Grafana writes for `$__rate_interval`.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let seconds = if rest.is_multiple_of(1_000) {
        format!("{}s", rest / 1_000)
    } else {
        let s = format!("{}.{:03}", rest / 1_000, rest % 1_000);
        format!("{}s", s.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

/// Grafana's `ParseIntervalStringToTimeDuration`: `30s`, `1m`, `2h`,
/// `1d`, `<10s` (a minimum), or a bare number of seconds.
pub fn parse_interval(text: &str) -> Option<Duration> {
    let text = text.trim().trim_start_matches(['<', '>']);
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u64>().ok().map(Duration::from_secs);
    }
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let ms = match unit {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        "w" => 7.0 * 86_400_000.0,
        "y" => 365.25 * 86_400_000.0,
        _ => return humantime::parse_duration(text).ok(),
    };
    Some(Duration::from_millis((number * ms) as u64))
}

/// The frontend's interval for a panel: the range over the points the
/// panel can draw, rounded, and never below `low_limit` (the panel's min
/// interval, else the datasource's scrape interval).
pub fn frontend_interval(
    range: Duration,
    max_data_points: u64,
    low_limit: Option<Duration>,
) -> Duration {
    let raw = range / max_data_points.max(1) as u32;
    let interval = round_interval(raw);
    match low_limit {
        Some(low) if low > interval => low,
        _ => interval,
    }
}

/// Grafana's macros in a Prometheus query.
pub const MACROS: [&str; 7] = [
    "__interval",
    "__interval_ms",
    "__rate_interval",
    "__rate_interval_ms",
    "__range",
    "__range_s",
    "__range_ms",
];

/// What the Prometheus backend of Grafana asks Prometheus for one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub step: Duration,
    pub expr: String,
}

/// One query as Grafana's Prometheus backend turns it into a step and an
/// expression: `min_step` is the query's `interval` field ("" or a
/// duration or a macro), `interval_ms` the frontend's interval,
/// `scrape` the datasource's `timeInterval`.
pub fn backend(
    expr: &str,
    range: Duration,
    min_step: &str,
    interval_ms: u64,
    max_data_points: u64,
    interval_factor: u64,
    scrape: &str,
) -> Backend {
    let is_macro = |s: &str| {
        let name = s.trim_start_matches('$').trim_matches(['{', '}']);
        s.starts_with('$') && MACROS.contains(&name)
    };
    let is_rate = |s: &str| s == "$__rate_interval" || s == "${__rate_interval}";
    let query_interval = if is_macro(min_step) { "" } else { min_step };
    let query_interval = if query_interval == "0s" {
        ""
    } else {
        query_interval
    };
    // gtime.GetIntervalFrom
    let min_interval = if query_interval.is_empty() && interval_ms != 0 {
        Duration::from_millis(interval_ms)
    } else if query_interval.is_empty() {
        parse_interval(scrape).unwrap_or(Duration::from_secs(15))
    } else {
        parse_interval(query_interval).unwrap_or(Duration::from_secs(15))
    };
    // intervalv2 Calculate and CalculateSafeInterval
    let resolution = if max_data_points == 0 {
        1_500
    } else {
        max_data_points
    };
    let raw = range / resolution as u32;
    let calculated = if raw < min_interval {
        min_interval
    } else {
        round_interval(raw)
    };
    let safe = round_interval(range / 11_000);
    let adjusted = calculated.max(safe);
    let step = if is_rate(min_step) {
        rate_interval(adjusted, scrape)
    } else {
        adjusted * interval_factor.max(1) as u32
    };
    // InterpolateVariables
    let query_interval = Duration::from_millis(interval_ms);
    let rate = if is_rate(min_step) {
        step
    } else {
        let requested = if min_step == "$__interval" || min_step == "${__interval}" {
            go_duration(step)
        } else if min_step.is_empty() {
            scrape.to_string()
        } else {
            min_step.to_string()
        };
        rate_interval(query_interval, &requested)
    };
    let range_ms = range.as_millis() as u64;
    let range_s = (range_ms as f64 / 1000.0).round() as u64;
    let step_ms = step.as_millis() as u64;
    let mut e = expr.to_string();
    for (from, to) in [
        ("$__interval_ms", step_ms.to_string()),
        ("$__interval", format_interval(step)),
        ("$__range_ms", range_ms.to_string()),
        ("$__range_s", range_s.to_string()),
        ("$__range", format!("{range_s}s")),
        ("$__rate_interval_ms", (rate.as_millis() as u64).to_string()),
        ("$__rate_interval", go_duration(rate)),
        ("${__interval_ms}", step_ms.to_string()),
        ("${__interval}", format_interval(step)),
        ("${__range_ms}", range_ms.to_string()),
        ("${__range_s}", range_s.to_string()),
        ("${__range}", format!("{range_s}s")),
        (
            "${__rate_interval_ms}",
            (rate.as_millis() as u64).to_string(),
        ),
        ("${__rate_interval}", go_duration(rate)),
    ] {
        e = e.replace(from, &to);
    }
    Backend { step, expr: e }
}

/// One query as Grafana's Loki backend (pkg/tsdb/loki) fills it in: the
/// step is the frontend's interval (never finer than the range over 11,000
/// points), `$__interval` that interval, `$__range` the range in seconds,
/// `$__auto` the step.
pub fn loki_backend(expr: &str, range: Duration, interval_ms: u64) -> Backend {
    let interval = Duration::from_millis(interval_ms.max(1));
    let safe = range / 11_000;
    let step = interval.max(safe);
    let range_ms = range.as_millis() as u64;
    let range_s = (range_ms as f64 / 1000.0).round() as u64;
    let mut e = expr.to_string();
    for (from, to) in [
        ("$__interval_ms", interval_ms.to_string()),
        ("$__interval", format_interval(interval)),
        ("$__range_ms", range_ms.to_string()),
        ("$__range_s", range_s.to_string()),
        ("$__range", format!("{range_s}s")),
        ("$__auto", format_interval(step)),
        ("${__interval_ms}", interval_ms.to_string()),
        ("${__interval}", format_interval(interval)),
        ("${__range_ms}", range_ms.to_string()),
        ("${__range_s}", range_s.to_string()),
        ("${__range}", format!("{range_s}s")),
        ("${__auto}", format_interval(step)),
    ] {
        e = e.replace(from, &to);
    }
    Backend { step, expr: e }
}

/// `calculateRateInterval`: max(interval + scrape, 4 × scrape).
fn rate_interval(interval: Duration, scrape: &str) -> Duration {
    let scrape = if scrape.is_empty() { "15s" } else { scrape };
    let Some(scrape) = parse_interval(scrape) else {
        return Duration::ZERO;
    };
    (interval + scrape).max(scrape * 4)
}

/// `AlignTimeRange`: rounds an epoch time (ms) down to a multiple of step.
pub fn align(epoch_ms: i64, step: Duration) -> i64 {
    let step = step.as_millis().max(1) as i64;
    epoch_ms.div_euclid(step) * step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_round_and_print_like_grafana() {
        assert_eq!(
            round_interval(Duration::from_secs(43)),
            Duration::from_secs(30)
        );
        assert_eq!(
            round_interval(Duration::from_secs(180)),
            Duration::from_secs(120)
        );
        assert_eq!(format_interval(Duration::from_secs(120)), "2m");
        assert_eq!(go_duration(Duration::from_secs(150)), "2m30s");
        assert_eq!(go_duration(Duration::from_secs(120)), "2m0s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(parse_interval("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_interval("<1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_interval("15"), Some(Duration::from_secs(15)));
    }

    #[test]
    fn a_12h_panel_of_240_points_gets_grafanas_step_and_rate_interval() {
        let range = Duration::from_secs(12 * 3600);
        // The frontend: 12h / 240 px = 180s → 2m (above the 30s scrape).
        let interval = frontend_interval(range, 240, Some(Duration::from_secs(30)));
        assert_eq!(interval, Duration::from_secs(120));
        let b = backend(
            "rate(x[$__rate_interval]) and y[$__range] offset $__interval",
            range,
            "",
            interval.as_millis() as u64,
            240,
            0,
            "30s",
        );
        // 12h/240 = 180s rounds to 2m; the rate interval is 2m + 30s.
        assert_eq!(b.step, Duration::from_secs(120));
        assert_eq!(b.expr, "rate(x[2m30s]) and y[43200s] offset 2m");
    }

    #[test]
    fn a_rate_interval_min_step_is_the_step() {
        let b = backend(
            "x",
            Duration::from_secs(3600),
            "$__rate_interval",
            15_000,
            1_000,
            0,
            "15s",
        );
        // 3600/1000 = 3.6 s < 15 s: min 15 s; rate = max(15+15, 60) = 60 s.
        assert_eq!(b.step, Duration::from_secs(60));
    }
}
