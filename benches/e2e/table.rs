//! The one table `make bench` prints: every measurement with its target where the issue set
//! one, and whether it was met.

use std::path::Path;
use std::time::Duration;

/// Targets for Lambda, measured locally.
const COLD_START_TARGET: Duration = Duration::from_millis(50);
const MEMORY_TARGET: u64 = 40 * 1024 * 1024;
const SIZE_TARGET: u64 = 10 * 1024 * 1024;
const ZIPPED_TARGET: u64 = 4 * 1024 * 1024;

pub struct Row {
    measure: String,
    function: String,
    fleet: Option<usize>,
    what: String,
    result: String,
    target: String,
}

fn met(ok: bool, target: &str) -> String {
    format!("{target} {}", if ok { "✓" } else { "✗ missed" })
}

pub fn duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else if ns < 1_000_000_000.0 {
        format!("{:.1} ms", ns / 1_000_000.0)
    } else {
        format!("{:.2} s", ns / 1_000_000_000.0)
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl Row {
    pub fn size(function: &str, built: u64, stripped: u64) -> Self {
        Self {
            measure: "binary, stripped".into(),
            function: function.into(),
            fleet: None,
            what: format!("the bootstrap executable; {} as built", megabytes(built)),
            result: megabytes(stripped),
            target: met(stripped < SIZE_TARGET, "< 10 MiB"),
        }
    }

    pub fn zipped(function: &str, zipped: u64) -> Self {
        Self {
            measure: "artifact, zipped".into(),
            function: function.into(),
            fleet: None,
            what: "bootstrap.zip, what Lambda receives".into(),
            result: megabytes(zipped),
            target: met(zipped < ZIPPED_TARGET, "< 4 MiB"),
        }
    }

    pub fn cold_start(function: &str, median: Duration, max: Duration, samples: usize) -> Self {
        Self {
            measure: format!("cold start (median of {samples})"),
            function: function.into(),
            fleet: None,
            what: format!(
                "process start to first /invocation/next; max {}",
                duration(max)
            ),
            result: duration(median),
            target: met(median < COLD_START_TARGET, "< 50 ms"),
        }
    }

    pub fn latency(
        measure: &str,
        function: &str,
        fleet: Option<usize>,
        what: &str,
        d: Duration,
    ) -> Self {
        Self {
            measure: measure.into(),
            function: function.into(),
            fleet,
            what: what.into(),
            result: duration(d),
            target: String::new(),
        }
    }

    pub fn calls(
        measure: &str,
        function: &str,
        fleet: usize,
        what: &str,
        least: usize,
        most: usize,
        floor: Option<usize>,
    ) -> Self {
        let result = if least == most {
            least.to_string()
        } else {
            format!("{least}-{most}")
        };
        Self {
            measure: measure.into(),
            function: function.into(),
            fleet: Some(fleet),
            what: what.into(),
            result,
            target: floor.map_or(String::new(), |f| met(most <= f, &format!("≤ {f}"))),
        }
    }

    /// Whether the row has a target it missed.
    pub fn missed(&self) -> bool {
        self.target.ends_with("✗ missed")
    }

    /// One line for a terminal: the measure, what, result and target.
    pub fn line(&self) -> String {
        let fleet = self
            .fleet
            .map_or(String::new(), |f| format!(" ({} services)", count(f)));
        format!(
            "{} of {}{fleet}: {}; {} {}",
            self.measure, self.function, self.what, self.result, self.target
        )
    }

    /// AWS calls of a reconcile per service it changed, beyond Application Auto Scaling's and
    /// the batched reads.
    pub fn per_service(fleet: usize, calls: f64, target: f64) -> Self {
        Self {
            measure: "AWS calls per service changed".into(),
            function: "scheduler".into(),
            fleet: Some(fleet),
            what: "the night's reconcile, beyond Application Auto Scaling's calls and the batched reads and writes".into(),
            result: format!("{calls:.2}"),
            target: met(calls <= target, &format!("≤ {target}")),
        }
    }

    /// deckhand's night against the sequential peer's.
    pub fn ratio(fleet: usize, deckhand: Duration, peer: Duration, target: Option<f64>) -> Self {
        let ratio = deckhand.as_secs_f64() / peer.as_secs_f64().max(f64::EPSILON);
        Self {
            measure: "reconcile / sequential peer".into(),
            function: "scheduler".into(),
            fleet: Some(fleet),
            what: format!(
                "the night's reconcile, {} against {}",
                duration(deckhand),
                duration(peer)
            ),
            result: format!("{ratio:.2}"),
            target: target.map_or(String::new(), |t| met(ratio <= t, &format!("≤ {t}"))),
        }
    }

    pub fn memory(function: &str, fleet: usize, bytes: u64) -> Self {
        Self {
            measure: "peak memory (VmHWM)".into(),
            function: function.into(),
            fleet: Some(fleet),
            what: "after all of the above".into(),
            result: megabytes(bytes),
            target: met(bytes < MEMORY_TARGET, "< 40 MiB"),
        }
    }

    fn micro(id: &str, mean: Duration) -> Self {
        Self {
            measure: "micro-benchmark (criterion, mean)".into(),
            function: "shared".into(),
            fleet: None,
            what: id.into(),
            result: duration(mean),
            target: String::new(),
        }
    }
}

pub struct Table {
    build: String,
    /// Added to every AWS call by the proxy.
    latency_ms: u64,
    rows: Vec<Row>,
}

impl Table {
    pub fn new(build: &str, latency_ms: u64) -> Self {
        Self {
            build: build.into(),
            latency_ms,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Criterion's mean for every benchmark under `dir` (`GROUP/NAME/new/estimates.json`).
    pub fn micro_benchmarks(&mut self, dir: &Path) {
        let mut found = Vec::new();
        collect_estimates(dir, dir, &mut found);
        found.sort();
        if found.is_empty() {
            eprintln!("no criterion results in {}: run make bench", dir.display());
        }
        for (id, mean) in found {
            self.rows.push(Row::micro(&id, mean));
        }
    }

    pub fn markdown(&self) -> String {
        let mut out = format!(
            "deckhand benchmark, build `{}`, {} ms added to every AWS call, {} on {}\n\n| measure | function | fleet | what | result | target |\n|---|---|---:|---|---:|---|\n",
            self.build,
            self.latency_ms,
            chrono::Utc::now().format("%Y-%m-%d"),
            std::env::consts::ARCH,
        );
        for r in &self.rows {
            let fleet = r.fleet.map_or(String::new(), count);
            out.push_str(&format!(
                "| {} | {} | {fleet} | {} | {} | {} |\n",
                r.measure, r.function, r.what, r.result, r.target
            ));
        }
        out
    }
}

/// A count with a thousands separator, as the table prints fleets.
pub fn count(n: usize) -> String {
    if n >= 1000 {
        format!("{},{:03}", n / 1000, n % 1000)
    } else {
        n.to_string()
    }
}

fn collect_estimates(root: &Path, dir: &Path, found: &mut Vec<(String, Duration)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let estimates = path.join("new/estimates.json");
        if estimates.exists() {
            let mean = std::fs::read_to_string(&estimates)
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .and_then(|v| v["mean"]["point_estimate"].as_f64());
            if let (Some(mean), Ok(id)) = (mean, path.strip_prefix(root)) {
                found.push((id.display().to_string(), Duration::from_nanos(mean as u64)));
            }
        } else if path.file_name().is_some_and(|n| n != "report") {
            collect_estimates(root, &path, found);
        }
    }
}
