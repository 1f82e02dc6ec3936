//! A small metrics registry with Prometheus text output.
//!
//! Counters and histograms are atomics. A label set is registered once (a
//! write lock, the first time it is seen); after that, recording is a read
//! lock that never waits on other readers plus one atomic add, so the hot
//! path does not contend. Written in-house rather than with the `metrics`
//! crates, whose exporter pulls second copies of `rand`, `hashbrown` and
//! `thiserror` into the build.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Histogram bucket upper bounds, in seconds.
pub const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

type Labels = Vec<(&'static str, String)>;
/// The series sharing one label hash (almost always one).
type Series<T> = Vec<(Labels, Arc<T>)>;

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// Series of one metric, found by a hash of the borrowed labels so that
/// recording allocates nothing once a label set has been seen.
#[derive(Default)]
struct Family<T> {
    help: &'static str,
    series: RwLock<HashMap<u64, Series<T>>>,
}

fn same(stored: &Labels, labels: &[(&'static str, &str)]) -> bool {
    stored.len() == labels.len()
        && stored
            .iter()
            .zip(labels)
            .all(|((k1, v1), (k2, v2))| k1 == k2 && v1 == v2)
}

impl<T: Default> Family<T> {
    fn get(&self, labels: &[(&'static str, &str)]) -> Arc<T> {
        let mut h = DefaultHasher::new();
        labels.hash(&mut h);
        let key = h.finish();
        if let Ok(s) = self.series.read() {
            if let Some((_, t)) = s
                .get(&key)
                .and_then(|b| b.iter().find(|(l, _)| same(l, labels)))
            {
                return t.clone();
            }
        }
        let Ok(mut s) = self.series.write() else {
            return Arc::new(T::default());
        };
        let bucket = s.entry(key).or_default();
        if let Some((_, t)) = bucket.iter().find(|(l, _)| same(l, labels)) {
            return t.clone();
        }
        let t = Arc::new(T::default());
        bucket.push((
            labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
            t.clone(),
        ));
        t
    }

    /// All series, sorted by labels (for stable output).
    fn sorted(&self) -> Series<T> {
        let mut all: Series<T> = self
            .series
            .read()
            .map(|s| s.values().flatten().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// The registry.
#[derive(Default)]
pub struct Metrics {
    counters: RwLock<BTreeMap<&'static str, Arc<Family<AtomicU64>>>>,
    histograms: RwLock<BTreeMap<&'static str, Arc<Family<Histogram>>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn family<T: Default>(
    map: &RwLock<BTreeMap<&'static str, Arc<Family<T>>>>,
    name: &'static str,
    help: &'static str,
) -> Arc<Family<T>> {
    if let Ok(m) = map.read() {
        if let Some(f) = m.get(name) {
            return f.clone();
        }
    }
    match map.write() {
        Ok(mut m) => m
            .entry(name)
            .or_insert_with(|| {
                Arc::new(Family {
                    help,
                    series: RwLock::default(),
                })
            })
            .clone(),
        Err(_) => Arc::new(Family::default()),
    }
}

impl Metrics {
    /// Times a store call made while serving (`tollgate_store_duration_seconds`).
    pub fn store_timing(&self, op: &'static str, started: std::time::Instant) {
        self.observe(
            "tollgate_store_duration_seconds",
            "Latency of store calls made while serving requests",
            &[("op", op)],
            started.elapsed(),
        );
    }

    /// Counts a cache lookup (`tollgate_cache_lookups_total`).
    pub fn cache_event(&self, cache: &'static str, result: &'static str) {
        self.count(
            "tollgate_cache_lookups_total",
            "In-memory cache lookups by cache and result (hit ratio = hit / all)",
            &[("cache", cache), ("result", result)],
            1,
        );
    }

    /// Adds `n` to counter `name` with `labels`.
    pub fn count(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        n: u64,
    ) {
        family(&self.counters, name, help)
            .get(labels)
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Records one observation of `d` in histogram `name` with `labels`.
    pub fn observe(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        d: Duration,
    ) {
        let h = family(&self.histograms, name, help).get(labels);
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            h.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_nanos.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Renders everything in the Prometheus text format (version 0.0.4),
    /// followed by the `gauges` the caller computed.
    pub fn render(&self, gauges: &[(&str, &str, Labels, u64)]) -> String {
        let mut out = String::new();
        if let Ok(m) = self.counters.read() {
            for (name, fam) in m.iter() {
                let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} counter", fam.help);
                for (labels, v) in fam.sorted() {
                    let _ = writeln!(
                        out,
                        "{name}{} {}",
                        fmt_labels(&labels, None),
                        v.load(Ordering::Relaxed)
                    );
                }
            }
        }
        if let Ok(m) = self.histograms.read() {
            for (name, fam) in m.iter() {
                let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} histogram", fam.help);
                for (labels, h) in &fam.sorted() {
                    let mut cumulative = 0;
                    for (i, b) in BUCKETS.iter().enumerate() {
                        cumulative += h.buckets[i].load(Ordering::Relaxed);
                        let le = b.to_string();
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {cumulative}",
                            fmt_labels(labels, Some(&le))
                        );
                    }
                    let count = h.count.load(Ordering::Relaxed);
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {count}",
                        fmt_labels(labels, Some("+Inf"))
                    );
                    #[allow(clippy::cast_precision_loss)]
                    let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
                    let _ = writeln!(out, "{name}_sum{} {sum}", fmt_labels(labels, None));
                    let _ = writeln!(out, "{name}_count{} {count}", fmt_labels(labels, None));
                }
            }
        }
        let mut last = "";
        for (name, help, labels, v) in gauges {
            if *name != last {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
                last = name;
            }
            let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels, None));
        }
        out
    }
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.count("t_total", "things", &[("env", "a\"b")], 2);
        m.count("t_total", "things", &[("env", "a\"b")], 1);
        m.observe(
            "d_seconds",
            "durations",
            &[("op", "x")],
            Duration::from_micros(300),
        );
        m.observe(
            "d_seconds",
            "durations",
            &[("op", "x")],
            Duration::from_secs(9),
        );
        let text = m.render(&[("g", "gauge", vec![("state", "active".into())], 1)]);
        assert!(
            text.contains("# TYPE t_total counter\nt_total{env=\"a\\\"b\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("d_seconds_bucket{op=\"x\",le=\"0.00025\"} 0\n"));
        assert!(text.contains("d_seconds_bucket{op=\"x\",le=\"0.0005\"} 1\n"));
        assert!(text.contains("d_seconds_bucket{op=\"x\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("d_seconds_count{op=\"x\"} 2\n"));
        assert!(text.contains("# TYPE g gauge\ng{state=\"active\"} 1\n"));
    }
}
