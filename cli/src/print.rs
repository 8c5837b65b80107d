//! How the command line prints what the use cases return: summaries, service reports, history
//! and redriven events.

use std::io::Write;

use crate::CliError;
use chrono::{DateTime, SecondsFormat, Utc};
use deckhand::domain::service::revision_name;
use deckhand::history::HistoryRecord;
use deckhand::report::{ServiceReport, Summary};

/// The action's word in the summary and the history (`deployed`, `rolled-back`, ...).
pub(crate) fn action_word(action: deckhand::report::Action) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(crate) fn print_history(
    records: &[HistoryRecord],
    json_output: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if json_output {
        return print_json(out, records);
    }
    for r in records {
        let revisions = match (&r.from, &r.to) {
            (Some(from), Some(to)) => {
                format!(" [{} -> {}]", revision_name(from), revision_name(to))
            }
            _ => String::new(),
        };
        writeln!(
            out,
            "{}  {:<15} {}{revisions}",
            rfc3339(r.at),
            action_word(r.action),
            r.reason
        )?;
    }
    Ok(())
}

pub(crate) fn print_reports(
    reports: &[ServiceReport],
    json_output: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if json_output {
        return print_json(out, reports);
    }
    for r in reports {
        writeln!(
            out,
            "{}  {}: {}",
            r.service,
            action_word(r.action),
            r.reason
        )?;
    }
    Ok(())
}

pub(crate) fn print_summary(
    summary: &Summary,
    json_output: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if json_output {
        return print_json(out, summary);
    }
    if let Some(reason) = &summary.reason {
        writeln!(out, "{reason}")?;
    }
    print_reports(&summary.services, false, out)
}

pub(crate) fn print_redriven(
    done: &[crate::redrive::Redriven],
    json_output: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if json_output {
        return print_json(out, done);
    }
    if done.is_empty() {
        writeln!(out, "the failure queue is empty")?;
        return Ok(());
    }
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in done {
        *counts.entry(r.disposition.word()).or_default() += 1;
        match (&r.function, &r.event) {
            (Some(function), Some(event)) => writeln!(
                out,
                "{:<13} {event} -> {}: {} [{}]",
                r.disposition.word(),
                crate::redrive::function_name(function),
                r.detail,
                r.origin.as_deref().unwrap_or("-"),
            )?,
            _ => writeln!(
                out,
                "{:<13} message {}: {}",
                r.disposition.word(),
                r.message_id,
                r.detail
            )?,
        }
    }
    let counts: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
    writeln!(out, "{}", counts.join(", "))?;
    Ok(())
}

/// A progress line on standard error for long listings, so that the output stays clean.
pub(crate) fn progress(done: usize, total: usize) {
    if total >= 50 && done.is_multiple_of(25) {
        eprint!("\rreading {done}/{total} services...");
        if done + 25 >= total {
            eprintln!();
        }
    }
}

pub(crate) fn print_json<T: serde::Serialize + ?Sized>(
    out: &mut dyn Write,
    value: &T,
) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    writeln!(out, "{text}")?;
    Ok(())
}
