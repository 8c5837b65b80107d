//! The `deploy` function's events through the dispatcher: every source, the samples in
//! `events/`, and what is refused with the field named.

use serde_json::json;

use super::*;
use crate::domain::artifact::ManifestKind;
use crate::domain::deploy::DeploymentEventKind;
use crate::domain::scan::ScanResult;
use crate::domain::service::ServiceKey;
use crate::fixtures;

fn sample(name: &str) -> Value {
    let text = match name {
        "ecr-push" => include_str!("../../../events/ecr-push.json"),
        "ecr-push-untracked-tag" => include_str!("../../../events/ecr-push-untracked-tag.json"),
        "ecs-deployment-completed" => {
            include_str!("../../../events/ecs-deployment-completed.json")
        }
        "ecs-deployment-failed" => include_str!("../../../events/ecs-deployment-failed.json"),
        "ecr-scan-clean" => include_str!("../../../events/ecr-scan-clean.json"),
        "ecr-scan-critical" => include_str!("../../../events/ecr-scan-critical.json"),
        "known-good" => include_str!("../../../events/known-good.json"),
        _ => unreachable!(),
    };
    serde_json::from_str(text).unwrap()
}

#[test]
fn parses_the_sample_push() {
    let DeployEvent::Push(push) = parse_deploy_event(&sample("ecr-push")).unwrap() else {
        panic!()
    };
    assert_eq!(push.event_id, "4f5ec4d5-4de4-4aad-a046-661b4a1ad42b");
    assert_eq!(push.repository.name, "web");
    assert_eq!(push.repository.account, "123456789012");
    assert_eq!(push.tag.as_deref(), Some("main-42"));
    assert_eq!(push.at.to_rfc3339(), "2026-11-23T10:00:00+00:00");
}

#[test]
fn parses_the_sample_known_good_announcement() {
    let DeployEvent::KnownGood(kg) = parse_deploy_event(&sample("known-good")).unwrap() else {
        panic!()
    };
    assert_eq!(kg.account, "111111111111");
    assert_eq!(kg.service_account, "111111111111");
    assert_eq!(kg.service, ServiceKey::new("staging", "web"));
    assert_eq!(kg.revision, "web:8");
    assert_eq!(kg.images.len(), 1);
    assert_eq!(kg.images[0].container, "web");
    assert_eq!(kg.images[0].repository.account, "123456789012");
    assert_eq!(kg.images[0].repository.name, "web");
    assert_eq!(
        kg.deployment.as_deref(),
        Some("ecs-svc/4630498733201870111")
    );
    assert_eq!(kg.at.to_rfc3339(), "2026-11-23T10:44:00+00:00");
}

#[test]
fn calendar_changes_and_the_round_of_held_pushes_parse() {
    let calendar = |name: &str| match parse_deploy_event(&fixtures::aws(name)) {
        Ok(DeployEvent::CalendarChanged(c)) => c,
        other => panic!("{name}: {other:?}"),
    };
    let open = calendar("ssm-calendar-state-change-open");
    assert_eq!(open.calendar, "MyCalendar");
    assert_eq!(open.state, crate::domain::freeze::CalendarState::Open);
    let closed = calendar("ssm-calendar-state-change-closed");
    assert_eq!(closed.state, crate::domain::freeze::CalendarState::Closed);
    assert_eq!(
        parse_deploy_event(&json!({"action": "release-held"})),
        Ok(DeployEvent::ReleaseHeld)
    );
}

#[test]
fn parses_the_sample_deployment_events() {
    let DeployEvent::Deployment(done) =
        parse_deploy_event(&sample("ecs-deployment-completed")).unwrap()
    else {
        panic!()
    };
    assert_eq!(done.kind, DeploymentEventKind::Completed);
    assert_eq!(done.service, ServiceKey::new("demo", "web"));
    assert_eq!(done.ecs_deployment_id, "ecs-svc/4630498733201870111");
    let DeployEvent::Deployment(failed) =
        parse_deploy_event(&sample("ecs-deployment-failed")).unwrap()
    else {
        panic!()
    };
    assert_eq!(failed.kind, DeploymentEventKind::Failed);
    assert!(failed.reason.unwrap().contains("circuit breaker"));
}

#[test]
fn parses_the_sample_scans_with_their_counts() {
    let DeployEvent::Scan(scan) = parse_deploy_event(&sample("ecr-scan-critical")).unwrap() else {
        panic!()
    };
    assert_eq!(scan.repository.name, "web");
    assert_eq!(
        scan.digest.as_str(),
        "sha256:97981bd7144a472103576073091e95ce92d542e16987942124c4ef9904aa33f3"
    );
    let ScanResult::Complete { counts } = scan.result else {
        panic!("{:?}", scan.result)
    };
    assert_eq!(counts.get("CRITICAL"), Some(&2));
    assert_eq!(counts.get("HIGH"), Some(&1));
    assert_eq!(counts.get("UNDEFINED"), None);
    let DeployEvent::Scan(clean) = parse_deploy_event(&sample("ecr-scan-clean")).unwrap() else {
        panic!()
    };
    assert!(matches!(clean.result, ScanResult::Complete { .. }));
}

#[test]
fn a_failed_scan_parses_without_counts_and_a_bad_digest_is_named() {
    let mut event = sample("ecr-scan-clean");
    event["detail"]["scan-status"] = json!("FAILED");
    event["detail"]
        .as_object_mut()
        .unwrap()
        .remove("finding-severity-counts");
    let DeployEvent::Scan(scan) = parse_deploy_event(&event).unwrap() else {
        panic!()
    };
    assert!(matches!(scan.result, ScanResult::Unusable { ref status, .. } if status == "FAILED"));
    event["detail"]["image-digest"] = json!("latest");
    assert_eq!(
        parse_deploy_event(&event).map(|_| ()).unwrap_err().field,
        "detail.image-digest"
    );
    event["detail"]["finding-severity-counts"] = json!({"HIGH": "many"});
    assert!(
        parse_deploy_event(&event)
            .unwrap_err()
            .field
            .starts_with("detail.finding-severity-counts")
    );
}

#[test]
fn other_ecr_actions_are_not_for_deckhand() {
    let mut event = sample("ecr-push");
    event["detail"]["action-type"] = json!("DELETE");
    assert!(matches!(
        parse_deploy_event(&event),
        Ok(DeployEvent::NotForDeckhand(_))
    ));
    let mut event = sample("ecr-push");
    event["detail"]["result"] = json!("FAILURE");
    assert!(matches!(
        parse_deploy_event(&event),
        Ok(DeployEvent::NotForDeckhand(_))
    ));
}

#[test]
fn pushes_of_the_corpus_are_images_indexes_or_not_for_deckhand() {
    let push = |name: &str| match parse_deploy_event(&fixtures::aws(name)) {
        Ok(DeployEvent::Push(push)) => push,
        other => panic!("{name}: {other:?}"),
    };
    let image = push("ecr-push-image");
    assert_eq!(
        (image.tag.as_deref(), image.manifest),
        (Some("main-43"), ManifestKind::Image)
    );
    let index = push("ecr-push-index");
    assert_eq!(
        (index.tag.as_deref(), index.manifest),
        (Some("main-44"), ManifestKind::Index)
    );
    let untagged = push("ecr-push-untagged");
    assert_eq!(untagged.tag, None, "an empty image-tag is no tag");
    for (name, why) in [
        ("ecr-push-cosign-signature", "cosign signature"),
        (
            "ecr-push-helm-chart",
            "application/vnd.cncf.helm.config.v1.tar+json",
        ),
    ] {
        match parse_deploy_event(&fixtures::aws(name)) {
            Ok(DeployEvent::NotForDeckhand(reason)) => {
                assert!(reason.contains(why), "{name}: {reason}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn deployment_events_of_the_corpus_parse() {
    let event = |name: &str| match parse_deploy_event(&fixtures::aws(name)) {
        Ok(DeployEvent::Deployment(event)) => event,
        other => panic!("{name}: {other:?}"),
    };
    let started = event("ecs-deployment-in-progress");
    let completed = event("ecs-deployment-completed");
    let failed = event("ecs-deployment-failed-circuit-breaker");
    let rollback = event("ecs-deployment-rollback-in-progress");
    assert_eq!(started.kind, DeploymentEventKind::InProgress);
    assert_eq!(completed.kind, DeploymentEventKind::Completed);
    assert_eq!(failed.kind, DeploymentEventKind::Failed);
    assert!(
        failed
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("circuit breaker")
    );
    assert_eq!(rollback.kind, DeploymentEventKind::InProgress);
    assert_ne!(rollback.ecs_deployment_id, failed.ecs_deployment_id);
    for e in [&started, &completed, &failed, &rollback] {
        assert_eq!(e.service, ServiceKey::new("demo", "web"));
    }
}

#[test]
fn untagged_pushes_parse_without_a_tag() {
    let mut event = sample("ecr-push");
    event["detail"].as_object_mut().unwrap().remove("image-tag");
    let DeployEvent::Push(push) = parse_deploy_event(&event).unwrap() else {
        panic!()
    };
    assert_eq!(push.tag, None);
}

/// Each malformed event, and the field its error must name.
pub(crate) fn malformed() -> Vec<(&'static str, Value)> {
    let push = sample("ecr-push");
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut e = push.clone();
        edit(&mut e);
        e
    };
    let remove = |path: &'static [&'static str]| {
        with(&|e: &mut Value| {
            let (last, parents) = path.split_last().unwrap();
            let mut node = e;
            for p in parents {
                node = &mut node[*p];
            }
            node.as_object_mut().unwrap().remove(*last);
        })
    };
    vec![
        ("(event)", json!("just a string")),
        ("(event)", json!([1, 2])),
        ("detail-type", json!({})),
        (
            "detail-type",
            with(&|e| e["detail-type"] = json!("EC2 Instance State-change Notification")),
        ),
        ("detail-type", with(&|e| e["detail-type"] = json!(42))),
        ("source", with(&|e| e["source"] = json!("aws.s3"))),
        ("id", remove(&["id"])),
        ("time", remove(&["time"])),
        ("time", with(&|e| e["time"] = json!("yesterday"))),
        ("account", remove(&["account"])),
        ("detail", with(&|e| e["detail"] = json!("{}"))),
        (
            "detail.repository-name",
            remove(&["detail", "repository-name"]),
        ),
        ("detail.image-digest", remove(&["detail", "image-digest"])),
        (
            "detail.image-digest",
            with(&|e| e["detail"]["image-digest"] = json!("sha256:123")),
        ),
        (
            "detail.image-tag",
            with(&|e| e["detail"]["image-tag"] = json!(42)),
        ),
        (
            "detail.action-type",
            with(&|e| e["detail"]["action-type"] = json!(null)),
        ),
        ("detail.eventName", {
            let mut e = sample("ecs-deployment-completed");
            e["detail"]["eventName"] = json!("SERVICE_STEADY_STATE");
            e
        }),
        ("detail.deploymentId", {
            let mut e = sample("ecs-deployment-completed");
            e["detail"].as_object_mut().unwrap().remove("deploymentId");
            e
        }),
        ("detail.service", {
            let mut e = sample("known-good");
            e["detail"]["service"] = json!("arn:aws:ecs:us-east-1:111111111111:cluster/staging");
            e
        }),
        ("detail.revision", {
            let mut e = sample("known-good");
            e["detail"]["revision"] = json!("web");
            e
        }),
        ("detail.images", {
            let mut e = sample("known-good");
            e["detail"]["images"] = json!([]);
            e
        }),
        ("detail.images[0].image", {
            let mut e = sample("known-good");
            e["detail"]["images"][0]["image"] =
                json!("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:main-42");
            e
        }),
        ("detail.images[0].image", {
            let mut e = sample("known-good");
            e["detail"]["images"][0]["image"] = json!("docker.io/library/nginx@sha256:12");
            e
        }),
        ("detail.images[0].container", {
            let mut e = sample("known-good");
            e["detail"]["images"][0]["container"] = json!(" ");
            e
        }),
        ("detail.at", {
            let mut e = sample("known-good");
            e["detail"].as_object_mut().unwrap().remove("at");
            e
        }),
        ("source", {
            let mut e = sample("known-good");
            e["source"] = json!("aws.ecs");
            e
        }),
        ("action", json!({"action": "reconcile"})),
        ("detail.state", {
            let mut e = fixtures::aws("ssm-calendar-state-change-open");
            e["detail"]["state"] = json!("AJAR");
            e
        }),
        ("resources", {
            let mut e = fixtures::aws("ssm-calendar-state-change-open");
            e["resources"] = json!(["arn:aws:ssm:us-east-1:123456789012:parameter/x"]);
            e
        }),
        ("resources", {
            let mut e = sample("ecs-deployment-completed");
            e["resources"] = json!(["arn:aws:ecs:us-east-1:123456789012:cluster/demo"]);
            e
        }),
    ]
}

#[test]
fn malformed_events_name_the_field_at_fault() {
    for (field, event) in malformed() {
        match parse_deploy_event(&event) {
            Err(e) => assert_eq!(e.field, field, "{event}: {e}"),
            Ok(parsed) => panic!("{event} parsed as {parsed:?}"),
        }
    }
}
