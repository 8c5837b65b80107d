//! Revision retention (`deckhand:keep-revisions`): which of a family's ACTIVE revisions to
//! deregister once a deployment completes. A deregistered (INACTIVE) revision keeps its tasks
//! running, but no service can be moved onto it again: so nothing a service runs, is moving
//! between, or may roll back to is ever chosen.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::fleet::ServiceView;
use super::service::revision_name;
use super::state::ServiceState;

/// The family and revision number of a task definition ARN or `family:revision`.
pub fn family_and_number(task_definition: &str) -> Option<(&str, u32)> {
    let (family, number) = revision_name(task_definition).rsplit_once(':')?;
    Some((family, number.parse().ok()?))
}

/// The revisions (`family:revision`) a service may still need: what it runs and what its ECS
/// deployments move between; its known-good revision, settled or about to be; the revision of
/// the deployment someone else made, proving itself; both ends of deckhand's latest deployment
/// and of its rollback; a revision registered and not yet used.
pub fn needed_by(
    state: &ServiceState,
    service: Option<&ServiceView>,
    now: DateTime<Utc>,
) -> BTreeSet<String> {
    let mut needed: Vec<&str> = Vec::new();
    if let Some(service) = service {
        // The PRIMARY deployment runs the service's task definition; the others are the
        // revisions ECS is still draining or rolling back to.
        needed.push(&service.task_definition);
        needed.extend(
            service
                .deployments
                .iter()
                .filter(|d| d.status != "PRIMARY")
                .map(|d| d.task_definition.as_str()),
        );
    }
    needed.extend(state.known_good.as_deref());
    needed.extend(state.known_good_at(now));
    needed.extend(state.seen.as_ref().map(|s| s.task_definition.as_str()));
    if let Some(d) = &state.deployment {
        needed.push(&d.from);
        needed.push(&d.to);
        needed.extend(d.rollback.as_ref().map(|r| r.to.as_str()));
    }
    needed.extend(
        state
            .registered
            .as_ref()
            .map(|r| r.task_definition.as_str()),
    );
    needed
        .into_iter()
        .map(|arn| revision_name(arn).to_owned())
        .collect()
}

/// Of a family's ACTIVE revisions, those beyond the newest `keep` that nothing needs, oldest
/// first. A revision whose number cannot be read is never chosen.
pub fn revisions_to_deregister(
    active: &[String],
    keep: usize,
    needed: &BTreeSet<String>,
) -> Vec<String> {
    let mut numbered: Vec<(u32, &String)> = active
        .iter()
        .filter_map(|arn| Some((family_and_number(arn)?.1, arn)))
        .collect();
    numbered.sort_unstable_by_key(|(number, _)| std::cmp::Reverse(*number));
    numbered.dedup_by_key(|(number, _)| *number);
    let mut chosen: Vec<String> = numbered
        .into_iter()
        .skip(keep)
        .filter(|(_, arn)| !needed.contains(revision_name(arn)))
        .map(|(_, arn)| arn.clone())
        .collect();
    chosen.reverse();
    chosen
}

/// `web:1, web:3, web:4`: the short names of revisions, for people.
pub fn name_revisions(arns: &[String]) -> String {
    arns.iter()
        .map(|arn| revision_name(arn))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::fleet::EcsDeployment;
    use crate::domain::service::ServiceKey;
    use crate::domain::state::{Deployment, DeploymentStatus, Registered, RolledBack};

    const PREFIX: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/";

    fn arn(revision: u32) -> String {
        format!("{PREFIX}web:{revision}")
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn beyond_the_newest_n_only_what_nothing_needs_is_chosen_oldest_first() {
        let active: Vec<String> = (1..=11).rev().map(arn).collect();
        let needed = names(&["web:2", "web:10", "web:11"]);
        let chosen = revisions_to_deregister(&active, 3, &needed);
        assert_eq!(
            name_revisions(&chosen),
            "web:1, web:3, web:4, web:5, web:6, web:7, web:8"
        );
        // The newest three (9, 10, 11) are kept whatever is needed.
        assert_eq!(
            revisions_to_deregister(&active, 3, &BTreeSet::new()).len(),
            8
        );
    }

    #[test]
    fn nothing_is_chosen_within_the_newest_n_or_when_a_number_cannot_be_read() {
        let active = vec![arn(1), arn(2), arn(3)];
        assert!(revisions_to_deregister(&active, 3, &BTreeSet::new()).is_empty());
        assert!(revisions_to_deregister(&active, 5, &BTreeSet::new()).is_empty());
        let odd = vec![format!("{PREFIX}web:latest"), arn(7), arn(8), arn(9)];
        assert_eq!(
            name_revisions(&revisions_to_deregister(&odd, 2, &BTreeSet::new())),
            "web:7"
        );
    }

    #[test]
    fn a_service_needs_what_it_runs_moves_between_and_may_roll_back_to() {
        let now = chrono::Utc::now();
        let mut state = ServiceState {
            known_good: Some(arn(2)),
            ..ServiceState::default()
        };
        state.deployment = Some(Deployment {
            id: "e1".into(),
            repository: "web".into(),
            digest: format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
            tag: None,
            containers: vec!["web".into()],
            from: arn(5),
            to: arn(6),
            started_at: now - TimeDelta::hours(2),
            pushed_at: None,
            status: DeploymentStatus::Completed,
            ecs_deployment_id: None,
            finished_at: Some(now - TimeDelta::hours(1)),
            guard_until: Some(now - TimeDelta::minutes(30)),
            at_zero_tasks: false,
            rollback: Some(RolledBack {
                alarm: "a".into(),
                at: now,
                to: arn(3),
            }),
            dry_run: false,
            alarmed: None,
            early_completed_at: None,
            from_images: Vec::new(),
        });
        state.registered = Some(Registered {
            event_id: "e2".into(),
            from: arn(6),
            task_definition: arn(7),
        });
        let view = ServiceView {
            key: ServiceKey::new("c", "web"),
            arn: "arn:aws:ecs:eu-west-1:123456789012:service/c/web".into(),
            task_definition: arn(6),
            desired_count: 1,
            running_count: 1,
            tags: Default::default(),
            deployments: vec![EcsDeployment {
                id: "ecs-1".into(),
                task_definition: arn(4),
                status: "ACTIVE".into(),
                rollout_state: None,
            }],
            controller: Default::default(),
            target_groups: Vec::new(),
            strategy: Default::default(),
            load_balanced: None,
            task_sets: Vec::new(),
            placement: Default::default(),
            early_success: None,
            service_revisions: Vec::new(),
        };
        assert_eq!(
            needed_by(&state, Some(&view), now),
            names(&["web:2", "web:3", "web:4", "web:5", "web:6", "web:7"])
        );
        // Without the view: what the table holds.
        assert_eq!(
            needed_by(&state, None, now),
            names(&["web:2", "web:3", "web:5", "web:6", "web:7"])
        );
    }
}
