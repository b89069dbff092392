//! A small hand-written Prometheus registry: counters of appends and a request-latency
//! histogram per route. Gauges that live elsewhere (log high-water marks, checkpoints, dead
//! letters) are read when `/metrics` is scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    pub appended: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
    /// `(method, route)` → latency histogram.
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    /// `(method, route, status)` → count.
    responses: Mutex<BTreeMap<(String, String, u16), u64>>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Ok(mut latency) = self.latency.lock() {
            let h = latency
                .entry((method.to_string(), route.to_string()))
                .or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
        if let Ok(mut responses) = self.responses.lock() {
            *responses
                .entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
    }

    pub fn add(&self, appended: u64, duplicates: u64, rejected: u64) {
        self.appended.fetch_add(appended, Ordering::Relaxed);
        self.duplicates.fetch_add(duplicates, Ordering::Relaxed);
        self.rejected.fetch_add(rejected, Ordering::Relaxed);
    }

    /// The Prometheus text of the API's own series.
    pub fn render(&self, out: &mut String) {
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            out,
            "clientlog_api_events_appended_total",
            "Events appended through the API.",
            self.appended.load(Ordering::Relaxed),
        );
        counter(
            out,
            "clientlog_api_events_duplicate_total",
            "Events the API found already in the log.",
            self.duplicates.load(Ordering::Relaxed),
        );
        counter(
            out,
            "clientlog_api_events_rejected_total",
            "Events the API rejected as invalid.",
            self.rejected.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP clientlog_http_requests_total Answered requests.\n\
             # TYPE clientlog_http_requests_total counter"
        );
        if let Ok(responses) = self.responses.lock() {
            for ((method, route, status), n) in responses.iter() {
                let _ = writeln!(
                    out,
                    "clientlog_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP clientlog_http_request_duration_seconds Request latency.\n\
             # TYPE clientlog_http_request_duration_seconds histogram"
        );
        if let Ok(latency) = self.latency.lock() {
            for ((method, route), h) in latency.iter() {
                let labels = format!("method=\"{method}\",route=\"{route}\"");
                for (bound, n) in BUCKETS.iter().zip(h.counts) {
                    let _ = writeln!(
                        out,
                        "clientlog_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                    );
                }
                let _ = writeln!(
                    out,
                    "clientlog_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n\
                     clientlog_http_request_duration_seconds_sum{{{labels}}} {}\n\
                     clientlog_http_request_duration_seconds_count{{{labels}}} {}",
                    h.count, h.sum, h.count
                );
            }
        }
    }
}
