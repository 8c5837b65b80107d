//! The JSON summary every invocation returns. Outcome and action words are stable.

use serde::{Deserialize, Serialize};

/// What happened to one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A new revision was registered and the service moved onto it.
    Deployed,
    /// Dry run: the service would have been deployed.
    WouldDeploy,
    /// An alarm rolled the service back to its last known-good revision.
    RolledBack,
    /// Dry run: an alarm would have rolled the service back.
    WouldRollBack,
    /// ECS reported deckhand's deployment completed.
    Completed,
    /// ECS reported deckhand's deployment failed; its digest is quarantined.
    Failed,
    /// A pair's traffic moved a step to its new side, or the move ended (the old side scaled
    /// down or kept).
    Shifted,
    /// The scan gate held a digest back: its scan found findings at or above the gate.
    Quarantined,
    /// An intermediate state was recorded (ECS deployment in progress).
    Recorded,
    /// The scan gate holds the push until its digest's scan decides; or a rollback waits for
    /// a CodeDeploy deployment deckhand did not start, and the alarm is delivered again.
    Waiting,
    /// The push is held: the service's CodeDeploy deployment group runs another deployment,
    /// and the push deploys once it is free.
    Held,
    /// A rollback waits for ECR to restore archived images its target runs; the reconcile
    /// finishes it.
    Restoring,
    /// Put to sleep: its count and autoscaling capacity saved, then set to the asleep count.
    Asleep,
    /// Woken: what was saved restored exactly.
    Awake,
    /// Dry run: it would have been put to sleep.
    WouldSleep,
    /// Dry run: it would have been woken.
    WouldWake,
    /// The service's deckhand tags do not parse; the service was left alone.
    Invalid,
    /// A push the service's policy accepts that was not deployed (quarantined, older, already
    /// running).
    Skipped,
    /// Already handled: a repeated delivery of the same event.
    Duplicate,
    /// Already as its schedule wants it.
    Unchanged,
    /// An operator froze automatic deploys.
    Paused,
    /// An operator resumed automatic deploys.
    Resumed,
    /// An operator lifted a quarantine.
    Released,
    /// An operator let a deployment waiting at an ECS pause hook go on.
    Approved,
    /// An operator rolled back a deployment waiting at an ECS pause hook.
    Rejected,
    /// The known-good revision changed: an operator named one, or a reconcile settled a
    /// deployment that ran its guard window without an alarm.
    KnownGood,
    /// Older revisions of the family were deregistered (`deckhand:keep-revisions`).
    Deregistered,
    /// The event does not concern the service (tag outside the policy, not deckhand's deployment).
    Ignored,
    /// Acting failed; the invocation reports an error so the event is retried.
    Error,
}

/// What an invocation concluded: the most significant action among the services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Error,
    RolledBack,
    WouldRollBack,
    Deployed,
    WouldDeploy,
    Failed,
    Quarantined,
    Completed,
    Shifted,
    Recorded,
    Waiting,
    Held,
    Restoring,
    Asleep,
    Awake,
    WouldSleep,
    WouldWake,
    Invalid,
    Skipped,
    Duplicate,
    Paused,
    Resumed,
    Released,
    Approved,
    Rejected,
    KnownGood,
    Deregistered,
    Unchanged,
    Ignored,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceReport {
    pub service: String,
    pub action: Action,
    /// `family:revision` before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub reason: String,
}

impl ServiceReport {
    pub fn new(service: impl ToString, action: Action, reason: impl Into<String>) -> Self {
        Self {
            service: service.to_string(),
            action,
            from: None,
            to: None,
            digest: None,
            reason: reason.into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceReport>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// What could not be looked at although the rest was handled, such as a source of the
    /// alarm-to-service mapping that failed: each names the source and the error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// What a reconcile's check of the repository index found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexCheck>,
}

/// A reconcile's check of the repository index against the fleet it read: how many services
/// it checked, how many entries were behind what the service runs (written again), and how
/// many services it listed that are gone or no longer opted in (taken out).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexCheck {
    pub checked: usize,
    pub repaired: usize,
    pub removed: usize,
}

impl Summary {
    pub fn ignored(reason: impl Into<String>) -> Self {
        Self::whole(Outcome::Ignored, reason)
    }

    /// One outcome for the whole event, before any service was looked at.
    pub fn whole(outcome: Outcome, reason: impl Into<String>) -> Self {
        Self {
            outcome,
            reason: Some(reason.into()),
            services: Vec::new(),
            dry_run: false,
            problems: Vec::new(),
            index: None,
        }
    }

    /// Sums up per-service reports; `reason` explains an outcome that no report carries alone.
    pub fn of(
        mut services: Vec<ServiceReport>,
        reason_if_ignored: impl FnOnce() -> String,
    ) -> Self {
        services.sort_by(|a, b| a.service.cmp(&b.service));
        let outcome = services
            .iter()
            .map(|s| outcome_of(s.action))
            .min_by_key(|o| *o as u8)
            .unwrap_or(Outcome::Ignored);
        let reason = (outcome == Outcome::Ignored).then(reason_if_ignored);
        Self {
            outcome,
            reason,
            services,
            dry_run: false,
            problems: Vec::new(),
            index: None,
        }
    }

    /// This summary with more service reports, its outcome recomputed.
    pub fn with(self, more: Vec<ServiceReport>) -> Self {
        if more.is_empty() {
            return self;
        }
        let reason = self.reason.clone();
        let mut services = self.services;
        services.extend(more);
        let mut merged = Self::of(services, || reason.unwrap_or_default());
        merged.dry_run = self.dry_run;
        merged.problems = self.problems;
        merged.index = self.index;
        merged
    }

    pub fn failed_services(&self) -> impl Iterator<Item = &ServiceReport> {
        self.services.iter().filter(|s| s.action == Action::Error)
    }

    /// One line naming the services that failed and why: the first few, each reason cut
    /// short, so that a fleet's failure stays a readable error message (the summary and the
    /// history keep every one).
    pub fn failure_message(&self) -> String {
        let failed: Vec<&ServiceReport> = self.failed_services().collect();
        let mut named: Vec<String> = failed
            .iter()
            .take(FAILURES_NAMED)
            .map(|s| {
                format!(
                    "{}: {}",
                    s.service,
                    shortened(&s.reason, FAILURE_REASON_CHARS)
                )
            })
            .collect();
        if failed.len() > FAILURES_NAMED {
            named.push(format!("and {} more", failed.len() - FAILURES_NAMED));
        }
        format!("{} service(s) failed: {}", failed.len(), named.join("; "))
    }
}

/// How many failed services an error message names, and how much of each reason it keeps.
const FAILURES_NAMED: usize = 10;
const FAILURE_REASON_CHARS: usize = 200;

fn shortened(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

fn outcome_of(action: Action) -> Outcome {
    match action {
        Action::Deployed => Outcome::Deployed,
        Action::WouldDeploy => Outcome::WouldDeploy,
        Action::RolledBack => Outcome::RolledBack,
        Action::WouldRollBack => Outcome::WouldRollBack,
        Action::Completed => Outcome::Completed,
        Action::Shifted => Outcome::Shifted,
        Action::Failed => Outcome::Failed,
        Action::Quarantined => Outcome::Quarantined,
        Action::Waiting => Outcome::Waiting,
        Action::Held => Outcome::Held,
        Action::Restoring => Outcome::Restoring,
        Action::Recorded => Outcome::Recorded,
        Action::Asleep => Outcome::Asleep,
        Action::Awake => Outcome::Awake,
        Action::WouldSleep => Outcome::WouldSleep,
        Action::WouldWake => Outcome::WouldWake,
        Action::Unchanged => Outcome::Unchanged,
        Action::Paused => Outcome::Paused,
        Action::Resumed => Outcome::Resumed,
        Action::Released => Outcome::Released,
        Action::Approved => Outcome::Approved,
        Action::Rejected => Outcome::Rejected,
        Action::KnownGood => Outcome::KnownGood,
        Action::Deregistered => Outcome::Deregistered,
        Action::Invalid => Outcome::Invalid,
        Action::Skipped => Outcome::Skipped,
        Action::Duplicate => Outcome::Duplicate,
        Action::Ignored => Outcome::Ignored,
        Action::Error => Outcome::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every outcome, most significant first. The match fails to compile when an outcome is
    /// added, so that it is added here, and so to the table in docs/cli.md.
    fn all_outcomes() -> Vec<Outcome> {
        use Outcome::*;
        let all = vec![
            Error,
            RolledBack,
            WouldRollBack,
            Deployed,
            WouldDeploy,
            Failed,
            Quarantined,
            Completed,
            Shifted,
            Recorded,
            Waiting,
            Held,
            Restoring,
            Asleep,
            Awake,
            WouldSleep,
            WouldWake,
            Invalid,
            Skipped,
            Duplicate,
            Paused,
            Resumed,
            Released,
            Approved,
            Rejected,
            KnownGood,
            Deregistered,
            Unchanged,
            Ignored,
        ];
        for o in &all {
            match o {
                Error | RolledBack | WouldRollBack | Deployed | WouldDeploy | Failed
                | Quarantined | Completed | Shifted | Recorded | Waiting | Held | Restoring
                | Asleep | Awake | WouldSleep | WouldWake | Invalid | Skipped | Duplicate
                | Paused | Resumed | Released | Approved | Rejected | KnownGood | Deregistered
                | Unchanged | Ignored => {}
            }
        }
        all
    }

    /// docs/cli.md's table of actions (The summary) lists every outcome word, in the order of significance.
    #[test]
    fn the_docs_list_every_outcome_in_its_order() {
        let page = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md"),
        )
        .unwrap();
        let section = page
            .split("## The summary")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .unwrap();
        let listed: Vec<String> = section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split('`').next())
            .map(str::to_owned)
            .collect();
        // The rank `Summary::of` uses is the declaration order.
        let mut ordered = all_outcomes();
        ordered.sort_by_key(|o| *o as u8);
        assert_eq!(
            ordered,
            all_outcomes(),
            "the list above is in the ranking's order"
        );
        let words: Vec<String> = all_outcomes()
            .iter()
            .map(|o| {
                serde_json::to_value(o)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(listed, words);
    }

    fn report(service: &str, action: Action) -> ServiceReport {
        ServiceReport {
            service: service.into(),
            action,
            from: None,
            to: None,
            digest: None,
            reason: "r".into(),
        }
    }

    #[test]
    fn the_most_significant_action_is_the_outcome() {
        let s = Summary::of(
            vec![
                report("b/x", Action::Ignored),
                report("a/x", Action::Deployed),
                report("c/x", Action::Invalid),
            ],
            || "unused".into(),
        );
        assert_eq!(s.outcome, Outcome::Deployed);
        assert_eq!(s.reason, None);
        assert_eq!(s.services[0].service, "a/x");
        assert_eq!(
            Summary::of(
                vec![
                    report("a/x", Action::Error),
                    report("b/x", Action::Deployed)
                ],
                String::new
            )
            .outcome,
            Outcome::Error
        );
    }

    #[test]
    fn all_ignored_carries_a_reason() {
        let s = Summary::of(vec![report("a/x", Action::Ignored)], || {
            "tag x matches no policy".into()
        });
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["outcome"], "ignored");
        assert_eq!(json["reason"], "tag x matches no policy");
        let empty = Summary::of(Vec::new(), || "nothing".into());
        assert_eq!(
            serde_json::to_value(&empty).unwrap(),
            serde_json::json!({"outcome": "ignored", "reason": "nothing"})
        );
    }

    #[test]
    fn a_fleet_failing_gives_a_bounded_message() {
        let long = "é".repeat(5_000);
        let failed: Vec<ServiceReport> = (0..1_000)
            .map(|i| ServiceReport {
                reason: long.clone(),
                ..report(&format!("c/s{i:04}"), Action::Error)
            })
            .collect();
        let message = Summary::of(failed, String::new).failure_message();
        assert!(
            message.starts_with("1000 service(s) failed: c/s0000: éé"),
            "{message}"
        );
        assert!(message.ends_with("; and 990 more"), "{message}");
        assert!(
            message.chars().count() < 3_000,
            "{} chars",
            message.chars().count()
        );
        let one = Summary::of(vec![report("a/x", Action::Error)], String::new);
        assert_eq!(one.failure_message(), "1 service(s) failed: a/x: r");
    }
}
