use chrono::TimeDelta;

use super::*;
use crate::domain::state::Deployment;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn alarm(at: &str) -> Alarm {
    Alarm {
        event_id: "e1".into(),
        name: "api-5xx".into(),
        arn: None,
        state: AlarmState::Alarm,
        previous: Some(AlarmState::Ok),
        reason: "Threshold Crossed".into(),
        at: utc(at),
        dimensions: vec![BTreeMap::from([
            ("ClusterName".into(), "prod".into()),
            ("ServiceName".into(), "api".into()),
        ])],
        rule: None,
        description: None,
        actions: None,
    }
}

const OLD: &str = "arn:aws:ecs:eu-west-1:1:task-definition/api:41";
const NEW: &str = "arn:aws:ecs:eu-west-1:1:task-definition/api:42";

fn deployed(status: DeploymentStatus) -> ServiceState {
    let started = utc("2026-11-23T10:00:00Z");
    let completed = status == DeploymentStatus::Completed;
    ServiceState {
        known_good: Some(OLD.into()),
        deployment: Some(Deployment {
            id: "push".into(),
            repository: "api".into(),
            digest: format!("sha256:{}", "b".repeat(64)).parse().unwrap(),
            tag: Some("42".into()),
            containers: vec!["api".into()],
            from: OLD.into(),
            to: NEW.into(),
            started_at: started,
            pushed_at: None,
            status,
            ecs_deployment_id: None,
            finished_at: completed.then(|| started + TimeDelta::minutes(5)),
            guard_until: completed.then(|| started + TimeDelta::minutes(35)),
            at_zero_tasks: false,
            rollback: None,
            dry_run: false,
            alarmed: None,
            early_completed_at: None,
            from_images: Vec::new(),
        }),
        ..Default::default()
    }
}

fn decide(
    alarm: &Alarm,
    enabled: bool,
    state: &ServiceState,
    running: &str,
    target_quarantined: Option<&str>,
) -> RollbackDecision {
    decide_rollback(alarm, enabled, state, running, target_quarantined, false)
}

/// An operator's rollback at 10:13, inside the guard window of `deployed`.
fn manual(
    state: &ServiceState,
    running: &str,
    requested: Option<&str>,
    target_quarantined: Option<&str>,
) -> RollbackDecision {
    let now = utc("2026-11-23T10:13:00Z");
    decide_manual_rollback(state, now, running, requested, target_quarantined)
}

fn skipped(d: RollbackDecision) -> String {
    match d {
        RollbackDecision::Skip(reason) => reason,
        other => panic!("{other:?}"),
    }
}

/// deckhand's own sleep takes the tasks away: the alarms that follow, and those while the
/// woken tasks start, say nothing about the image.
#[test]
fn a_service_deckhand_put_to_sleep_or_just_woke_is_not_rolled_back() {
    let alarm_at = alarm("2026-11-23T10:20:00Z");
    let mut asleep = deployed(DeploymentStatus::Completed);
    asleep.sleep = Some(crate::domain::state::Sleep {
        since: utc("2026-11-23T10:10:00Z"),
        desired_count: 2,
        scalable: None,
        asleep_count: 0,
        dry_run: false,
        pending: false,
        cause: "sleep".into(),
    });
    let skipped = |d: RollbackDecision| match d {
        RollbackDecision::Skip(reason) => reason,
        other => panic!("{other:?}"),
    };
    let reason = skipped(decide(&alarm_at, true, &asleep, NEW, None));
    assert!(
        reason.starts_with("deckhand put the service to sleep at 2026-11-23T10:10:00Z"),
        "{reason}"
    );
    let mut going = asleep.clone();
    if let Some(s) = going.sleep.as_mut() {
        s.pending = true;
    }
    let reason = skipped(decide(&alarm_at, true, &going, NEW, None));
    assert!(
        reason.starts_with("deckhand is putting the service to sleep"),
        "{reason}"
    );
    // A sleep of a dry run changed nothing in ECS: the alarm is real.
    let mut pretend = asleep.clone();
    if let Some(s) = pretend.sleep.as_mut() {
        s.dry_run = true;
    }
    assert!(matches!(
        decide(&alarm_at, true, &pretend, NEW, None),
        RollbackDecision::RollBack { .. }
    ));

    let mut woken = deployed(DeploymentStatus::Completed);
    woken.woken_at = Some(utc("2026-11-23T10:10:00Z"));
    let reason = skipped(decide(&alarm_at, true, &woken, NEW, None));
    assert!(
        reason.starts_with(
            "deckhand woke the service at 2026-11-23T10:10:00Z and its tasks get 15 minutes"
        ),
        "{reason}"
    );
    // Once the tasks had their time, the guard window counts again.
    let later = alarm("2026-11-23T10:26:00Z");
    assert!(matches!(
        decide(&later, true, &woken, NEW, None),
        RollbackDecision::RollBack { .. }
    ));
}

#[test]
fn inside_the_window_rolls_back_to_the_known_good_revision() {
    for status in [DeploymentStatus::Completed, DeploymentStatus::InProgress] {
        let d = decide(
            &alarm("2026-11-23T10:13:00Z"),
            true,
            &deployed(status),
            NEW,
            None,
        );
        match d {
            RollbackDecision::RollBack { from, to, reason } => {
                assert_eq!((from.as_str(), to.as_str()), (NEW, OLD));
                assert!(
                    reason.starts_with("alarm api-5xx went into ALARM"),
                    "{reason}"
                );
            }
            other => panic!("{status:?}: {other:?}"),
        }
    }
}

#[test]
fn every_reason_not_to_roll_back() {
    let a = alarm("2026-11-23T10:13:00Z");
    let done = deployed(DeploymentStatus::Completed);
    assert!(skipped(decide(&a, false, &done, NEW, None)).contains("rollback is off"));
    assert!(
        skipped(decide(&a, true, &ServiceState::default(), NEW, None)).contains("has not deployed")
    );
    let late = alarm("2026-11-23T10:35:00Z");
    assert!(skipped(decide(&late, true, &done, NEW, None)).starts_with("outside the guard window"));
    let early = alarm("2026-11-23T09:59:00Z");
    assert!(skipped(decide(&early, true, &done, NEW, None)).contains("before the deployment"));
    let mut rolled = deployed(DeploymentStatus::RolledBack);
    rolled.deployment.as_mut().unwrap().rollback = Some(RolledBack {
        alarm: "api-5xx".into(),
        at: utc("2026-11-23T10:12:00Z"),
        to: OLD.into(),
    });
    assert!(
        skipped(decide(&a, true, &rolled, OLD, None))
            .contains("already rolled back after alarm api-5xx at 2026-11-23T10:12:00Z")
    );
    assert!(
        skipped(decide(
            &a,
            true,
            &deployed(DeploymentStatus::Failed),
            OLD,
            None
        ))
        .contains("already failed")
    );
    let elsewhere = "arn:aws:ecs:eu-west-1:1:task-definition/api:30";
    assert!(
        skipped(decide(&a, true, &done, elsewhere, None)).contains("not deckhand's deployment")
    );
    let mut no_target = done.clone();
    no_target.known_good = None;
    assert!(skipped(decide(&a, true, &no_target, NEW, None)).contains("no known-good"));
    assert!(
        skipped(decide(&a, true, &done, NEW, Some("sha256:cc")))
            .contains("quarantined digest sha256:cc")
    );
}

/// ECS accepted an earlier attempt's rollback and its record was lost: the service runs
/// the target already, and the redelivered alarm records the rollback without an ECS call.
#[test]
fn a_rollback_already_done_is_finished_not_skipped() {
    let a = alarm("2026-11-23T10:13:00Z");
    let done = deployed(DeploymentStatus::Completed);
    match decide(&a, true, &done, OLD, None) {
        RollbackDecision::Finish { from, to, reason } => {
            assert_eq!((from.as_str(), to.as_str()), (NEW, OLD));
            assert!(
                reason.contains("already runs the known-good revision"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Not onto a quarantined target, not outside the window, not with rollback off.
    assert!(matches!(
        decide(&a, true, &done, OLD, Some("sha256:cc")),
        RollbackDecision::Skip(_)
    ));
    assert!(matches!(
        decide(&alarm("2026-11-23T11:00:00Z"), true, &done, OLD, None),
        RollbackDecision::Skip(_)
    ));
    assert!(matches!(
        decide(&a, false, &done, OLD, None),
        RollbackDecision::Skip(_)
    ));
}

#[test]
fn a_manual_rollback_goes_to_the_named_or_known_good_revision() {
    let done = deployed(DeploymentStatus::Completed);
    assert!(matches!(
        manual(&done, NEW, None, None),
        RollbackDecision::RollBack { ref to, .. } if to == OLD
    ));
    let other = "arn:aws:ecs:eu-west-1:1:task-definition/api:30";
    assert!(matches!(
        manual(&done, NEW, Some(other), None),
        RollbackDecision::RollBack { ref to, .. } if to == other
    ));
    assert!(skipped(manual(&done, OLD, None, None)).contains("already runs"));
    assert!(skipped(manual(&done, NEW, None, Some("sha256:dd"))).contains("release it first"));
    assert!(
        skipped(manual(&ServiceState::default(), NEW, None, None)).contains("name one with --to")
    );
}

#[test]
fn only_a_transition_into_alarm_fires() {
    let mut a = alarm("2026-11-23T10:13:00Z");
    assert!(a.fired());
    a.previous = Some(AlarmState::Alarm);
    assert!(!a.fired());
    a.previous = None;
    assert!(a.fired());
    a.state = AlarmState::Ok;
    assert!(!a.fired());
}

#[test]
fn scaling_alarms_are_known_by_name_description_or_action() {
    let plain = alarm("2026-11-23T10:08:00Z");
    assert_eq!(scaling_alarm(&plain), None);
    let mut by_name = plain.clone();
    by_name.name = "TargetTracking-service/prod/api-AlarmHigh-5c0f7f7a".into();
    assert!(scaling_alarm(&by_name).unwrap().contains("by its name"));
    let mut by_description = plain.clone();
    by_description.description = Some(
        "DO NOT EDIT OR DELETE. For TargetTrackingScaling policy arn:aws:autoscaling:x.".into(),
    );
    assert!(
        scaling_alarm(&by_description)
            .unwrap()
            .contains("by its description")
    );
    let mut by_action = plain.clone();
    by_action.actions = Some(vec![
        "arn:aws:sns:eu-west-1:1:ops".into(),
        "arn:aws:autoscaling:eu-west-1:1:scalingPolicy:u:resource/ecs/service/prod/api:policyName/out".into(),
    ]);
    assert!(scaling_alarm(&by_action).unwrap().contains("step scaling"));
    let mut only_notifies = plain.clone();
    only_notifies.actions = Some(vec!["arn:aws:sns:eu-west-1:1:ops".into()]);
    assert_eq!(scaling_alarm(&only_notifies), None);

    // Its metric guards nothing; an explicit mapping still does.
    let api = ServiceKey::new("prod", "api");
    let on = RollbackSettings {
        enabled: true,
        alarms: vec![],
        dry_run: None,
    };
    assert_eq!(guard_of(&plain, &api, &on, None), Some(Guard::Metric));
    assert_eq!(guard_of(&by_name, &api, &on, None), None);
    assert_eq!(
        guard_of(&by_action, &api, &on, Some(&api)),
        Some(Guard::AlarmTag)
    );
    let listed = RollbackSettings {
        enabled: true,
        alarms: vec![by_name.name.clone()],
        dry_run: None,
    };
    assert_eq!(
        guard_of(&by_name, &api, &listed, None),
        Some(Guard::ServiceTag)
    );
}

#[test]
fn an_alarm_guards_by_service_tag_alarm_tag_or_metric() {
    let a = alarm("2026-11-23T10:13:00Z");
    let api = ServiceKey::new("prod", "api");
    let web = ServiceKey::new("prod", "web");
    let tags = |pairs: &[(&str, &str)]| -> RollbackSettings {
        let t: Tags = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RollbackSettings::from_tags(&t).unwrap()
    };
    let listed = tags(&[("deckhand:alarms", "db-slow api-5xx")]);
    assert_eq!(guard_of(&a, &web, &listed, None), Some(Guard::ServiceTag));
    let plain = tags(&[("deckhand:deploy", "any")]);
    assert_eq!(
        guard_of(&a, &web, &plain, Some(&web)),
        Some(Guard::AlarmTag)
    );
    assert_eq!(guard_of(&a, &api, &plain, None), Some(Guard::Metric));
    assert_eq!(guard_of(&a, &web, &plain, None), None);
    let off = tags(&[("deckhand:deploy", "any"), ("deckhand:rollback", "off")]);
    assert_eq!(
        guard_of(&a, &api, &off, None),
        None,
        "a metric guards only with rollback on"
    );
    assert!(!off.enabled);
    assert!(!tags(&[]).enabled, "off without deckhand:deploy");
    assert!(tags(&[("deckhand:rollback", "on")]).enabled);
    let t: Tags = [("deckhand:rollback".to_string(), "maybe".to_string())].into();
    assert_eq!(
        RollbackSettings::from_tags(&t).unwrap_err().tag,
        "deckhand:rollback"
    );
}
