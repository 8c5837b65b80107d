//! `deckhand report`: what deckhand did over a period, from the history: deployments, failures,
//! rollbacks, lead times and the hours slept, and in a trial what it would have done
//! (`would-deploy`, `would-roll-back`); `--trial` lists that beside what actually happened.

use std::io::Write;

use crate::print::{print_json, progress, rfc3339};
use crate::{CliError, opted_in};
use deckhand::app::Ports;
use deckhand::config::Config;
use deckhand::domain::service::revision_name;
use deckhand::history::HistoryRecord;
use deckhand::report::Action;
use serde_json::{Value, json};

/// The figures of one service (or of all) over the period.
#[derive(Default)]
pub(crate) struct Figures {
    deployments: usize,
    failures: usize,
    rollbacks: usize,
    would_deploy: usize,
    would_roll_back: usize,
    /// Seconds from the alarm's state change to the rollback being recorded.
    alarm_to_rollback: Vec<i64>,
    task_hours_saved: f64,
}

impl Figures {
    fn add(&mut self, record: &HistoryRecord) {
        match record.action {
            Action::Deployed => self.deployments += 1,
            Action::Failed if !record.dry_run => self.failures += 1,
            Action::WouldDeploy => self.would_deploy += 1,
            Action::WouldRollBack => self.would_roll_back += 1,
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
            "wouldDeploy": self.would_deploy,
            "wouldRollBack": self.would_roll_back,
            "medianSecondsFromAlarmToRollback": self.median_alarm_to_rollback(),
            "taskHoursSaved": (self.task_hours_saved * 100.0).round() / 100.0,
        })
    }
}

/// What one service's trial shows: what deckhand would have done, and what happened.
fn trial_json(service: &str, figures: &Figures, records: &[HistoryRecord]) -> Value {
    // A would-be deployment's completion is ECS completing the deployment it stands for.
    let completed = records
        .iter()
        .filter(|r| r.action == Action::Completed)
        .count();
    let events: Vec<Value> = records
        .iter()
        .rev()
        .filter(|r| trial_event(r).is_some())
        .map(|r| {
            json!({
                "at": rfc3339(r.at),
                "event": trial_event(r),
                "from": r.from.as_deref().map(revision_name),
                "to": r.to.as_deref().map(revision_name),
                "digest": r.digest,
                "reason": r.reason,
            })
        })
        .collect();
    json!({
        "service": service,
        "wouldDeploy": figures.would_deploy,
        "wouldRollBack": figures.would_roll_back,
        "deploymentsCompleted": completed,
        "deploymentsFailed": figures.failures,
        "deployments": figures.deployments,
        "rollbacks": figures.rollbacks,
        "events": events,
    })
}

/// How a record reads in a trial: what deckhand would have done, or what happened.
fn trial_event(record: &HistoryRecord) -> Option<&'static str> {
    match (record.action, record.dry_run) {
        (Action::WouldDeploy, _) => Some("would deploy"),
        (Action::WouldRollBack, _) => Some("would roll back"),
        (Action::Completed, true) => Some("would-be deployment completed"),
        (Action::Completed, false) => Some("deployment completed"),
        (Action::Failed, false) => Some("deployment failed"),
        (Action::Deployed, _) => Some("deployed"),
        (Action::RolledBack, _) => Some("rolled back"),
        _ => None,
    }
}

pub(crate) async fn report(
    ports: &Ports,
    config: &Config,
    since: chrono::TimeDelta,
    (trial, json_output): (bool, bool),
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let from = ports.clock.now() - since;
    let services = opted_in(ports, config).await?;
    let mut total = Figures::default();
    let mut rows = Vec::new();
    let mut trials = Vec::new();
    for (i, service) in services.iter().enumerate() {
        progress(i, services.len());
        let mut figures = Figures::default();
        let mut records = Vec::new();
        for record in ports.store.history(&service.key, usize::MAX).await? {
            if record.at < from {
                // History comes newest first: the rest is older still.
                break;
            }
            figures.add(&record);
            total.add(&record);
            records.push(record);
        }
        let name = service.key.to_string();
        rows.push(figures.to_json(&name));
        trials.push(trial_json(&name, &figures, &records));
    }
    if trial {
        return print_trial(rfc3339(from), &trials, json_output, out);
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
        "{:<40} {:>11} {:>8} {:>9} {:>12} {:>15} {:>14} {:>17}",
        "service",
        "deployments",
        "failures",
        "rollbacks",
        "would-deploy",
        "would-roll-back",
        "alarm->rollback",
        "task-hours saved"
    )?;
    for row in rows.iter().chain(std::iter::once(&total)) {
        let median = row["medianSecondsFromAlarmToRollback"]
            .as_i64()
            .map_or("-".to_owned(), |s| format!("{s} s"));
        writeln!(
            out,
            "{:<40} {:>11} {:>8} {:>9} {:>12} {:>15} {:>14} {:>17}",
            row["service"].as_str().unwrap_or("?"),
            row["deployments"].to_string(),
            row["failures"].to_string(),
            row["rollbacks"].to_string(),
            row["wouldDeploy"].to_string(),
            row["wouldRollBack"].to_string(),
            median,
            row["taskHoursSaved"].to_string()
        )?;
    }
    Ok(())
}

/// One screen per trial: for each service, what deckhand would have done beside what happened
/// (the deployments ECS completed or failed, the pipeline's that it followed included), oldest
/// first.
fn print_trial(
    since: String,
    trials: &[Value],
    json_output: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if json_output {
        return print_json(out, &json!({"since": since, "services": trials}));
    }
    writeln!(out, "since {since}")?;
    for t in trials {
        writeln!(
            out,
            "{}: would deploy {}, would roll back {}; ECS deployments: {} completed, {} failed",
            t["service"].as_str().unwrap_or("?"),
            t["wouldDeploy"],
            t["wouldRollBack"],
            t["deploymentsCompleted"],
            t["deploymentsFailed"]
        )?;
        for e in t["events"].as_array().into_iter().flatten() {
            let revision = match (e["from"].as_str(), e["to"].as_str()) {
                (Some(from), Some(to)) if from != to => format!("{from} -> {to}"),
                (_, Some(to)) => to.to_owned(),
                _ => String::new(),
            };
            writeln!(
                out,
                "  {}  {:<30} {:<24} {}",
                e["at"].as_str().unwrap_or(""),
                e["event"].as_str().unwrap_or(""),
                revision,
                e["reason"].as_str().unwrap_or("")
            )?;
        }
    }
    Ok(())
}
