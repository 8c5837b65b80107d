//! `deckhand report`: what deckhand did over a period, from the history: deployments, failures,
//! rollbacks, lead times and the hours slept.

use std::io::Write;

use crate::print::{print_json, progress, rfc3339};
use crate::{CliError, opted_in};
use deckhand::app::Ports;
use deckhand::config::Config;
use deckhand::history::HistoryRecord;
use deckhand::report::Action;
use serde_json::{Value, json};

/// The figures of one service (or of all) over the period.
#[derive(Default)]
pub(crate) struct Figures {
    deployments: usize,
    failures: usize,
    rollbacks: usize,
    /// Seconds from the alarm's state change to the rollback being recorded.
    alarm_to_rollback: Vec<i64>,
    task_hours_saved: f64,
}

impl Figures {
    fn add(&mut self, record: &HistoryRecord) {
        match record.action {
            Action::Deployed => self.deployments += 1,
            Action::Failed => self.failures += 1,
            Action::RolledBack => {
                self.rollbacks += 1;
                if let Some(alarm_at) = record.alarm_at {
                    self.alarm_to_rollback
                        .push((record.at - alarm_at).num_seconds().max(0));
                }
            }
            Action::Awake => {
                self.task_hours_saved += record
                    .scale
                    .as_ref()
                    .and_then(|s| s.task_hours_saved)
                    .unwrap_or(0.0);
            }
            _ => {}
        }
    }

    fn median_alarm_to_rollback(&self) -> Option<i64> {
        let mut seconds = self.alarm_to_rollback.clone();
        seconds.sort_unstable();
        match seconds.len() {
            0 => None,
            n if n % 2 == 1 => Some(seconds[n / 2]),
            n => Some((seconds[n / 2 - 1] + seconds[n / 2]) / 2),
        }
    }

    fn to_json(&self, service: &str) -> Value {
        json!({
            "service": service,
            "deployments": self.deployments,
            "failures": self.failures,
            "rollbacks": self.rollbacks,
            "medianSecondsFromAlarmToRollback": self.median_alarm_to_rollback(),
            "taskHoursSaved": (self.task_hours_saved * 100.0).round() / 100.0,
        })
    }
}

pub(crate) async fn report(
    ports: &Ports,
    config: &Config,
    since: chrono::TimeDelta,
    json_output: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let from = ports.clock.now() - since;
    let services = opted_in(ports, config).await?;
    let mut total = Figures::default();
    let mut rows = Vec::new();
    for (i, service) in services.iter().enumerate() {
        progress(i, services.len());
        let mut figures = Figures::default();
        for record in ports.store.history(&service.key, usize::MAX).await? {
            if record.at < from {
                // History comes newest first: the rest is older still.
                break;
            }
            figures.add(&record);
            total.add(&record);
        }
        rows.push(figures.to_json(&service.key.to_string()));
    }
    let total = total.to_json("total");
    if json_output {
        return print_json(
            out,
            &json!({"since": rfc3339(from), "services": rows, "total": total}),
        );
    }
    writeln!(out, "since {}", rfc3339(from))?;
    writeln!(
        out,
        "{:<40} {:>11} {:>8} {:>9} {:>14} {:>17}",
        "service", "deployments", "failures", "rollbacks", "alarm->rollback", "task-hours saved"
    )?;
    for row in rows.iter().chain(std::iter::once(&total)) {
        let median = row["medianSecondsFromAlarmToRollback"]
            .as_i64()
            .map_or("-".to_owned(), |s| format!("{s} s"));
        writeln!(
            out,
            "{:<40} {:>11} {:>8} {:>9} {:>14} {:>17}",
            row["service"].as_str().unwrap_or("?"),
            row["deployments"].to_string(),
            row["failures"].to_string(),
            row["rollbacks"].to_string(),
            median,
            row["taskHoursSaved"].to_string()
        )?;
    }
    Ok(())
}
