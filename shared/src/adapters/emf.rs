//! Metrics as EMF lines on standard output, which Lambda sends to CloudWatch Logs.

use std::io::Write;

use crate::metrics::{Measurements, emf_line};
use crate::ports::Metrics;

/// One line per put, written whole under the lock of standard output so that a log line of
/// another task never lands inside it.
pub struct EmfLog;

impl Metrics for EmfLog {
    fn put(&self, measurements: &Measurements) {
        let line = emf_line(measurements) + "\n";
        let mut out = std::io::stdout().lock();
        // A log that cannot be written has no one to tell.
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }
}

/// Outside Lambda: nothing collects the log's metrics.
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn put(&self, _: &Measurements) {}
}
