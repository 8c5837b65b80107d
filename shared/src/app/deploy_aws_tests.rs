//! The deploy function driven by events as AWS sends them (tests/fixtures/aws): images and
//! indexes, signatures and charts, basic and enhanced scans, deployment controllers, and the
//! ECS deployment events of a circuit breaker.

use super::*;
use crate::domain::artifact::{Manifest, read_manifest};
use crate::domain::image::Digest;
use crate::domain::scan::ScanResult;
use crate::domain::strategy::DeploymentController;
use crate::fixtures;

/// The registry of the corpus: account 123456789012 in us-east-1.
const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const INDEX: &str = "sha256:ee12edb4325bb84684913d51a825c393d5eb26136ba32ecdf18f13deb475f665";
const AMD64: &str = "sha256:302279f2c764a17e0704321e3e6efb40b05956ec800867ebdcaa80a21296122f";
const ARM64: &str = "sha256:dbe3bc64fc11d47358c5dae6b27630c69af8b17f503cb591d0eb355784d3d15a";
const IMAGE: &str = "sha256:7fdcc95c288da93aab630fc3791d8d8edf8edb18ef54a0443a6ebdb908e55617";

fn d(text: &str) -> Digest {
    text.parse().unwrap()
}

/// `demo/web` runs `web:main-1` from the corpus' registry; `any` tag deploys.
fn corpus_world(gate: Option<FindingSeverity>) -> World {
    let mut config = config(false);
    config.require_scan = gate;
    let w = world_with(config);
    let td = w
        .ecs
        .add_task_definition("web", &[("web", &format!("{REGISTRY}/web:main-1"))]);
    w.ecs
        .add_service(&web(), &td, &[("deckhand:deploy", "any")]);
    w.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 30).unwrap());
    w
}

fn indexed(w: &World) {
    let manifest = fixtures::aws("ecr-image-index-manifest").to_string();
    w.ecr.put_manifest("web", &d(INDEX), &manifest);
}

fn running(w: &World) -> String {
    let td = w
        .ecs
        .task_definition(&w.ecs.service(&web()).unwrap().task_definition)
        .unwrap();
    td.containers[0].image.clone()
}

/// A scan event of the corpus, for another image of the repository.
fn scan_of(digest: &str, id: &str, counts: Value) -> Value {
    let mut event = fixtures::aws("ecr-scan-image-manifest");
    event["id"] = json!(id);
    event["detail"]["image-digest"] = json!(digest);
    event["detail"]["finding-severity-counts"] = counts;
    event
}

#[tokio::test]
async fn signatures_charts_and_untagged_pushes_never_deploy_whatever_the_policy() {
    let w = corpus_world(Some(FindingSeverity::High));
    for name in [
        "ecr-push-cosign-signature",
        "ecr-push-helm-chart",
        "ecr-push-untagged",
        // Not a push, not an image: Inspector's scan of an instance decides nothing.
        "inspector2-scan-ec2-instance",
    ] {
        let s = send(&w, &fixtures::aws(name)).await;
        assert_eq!(s.outcome, Outcome::Ignored, "{name}: {s:?}");
    }
    assert_eq!(w.ecs.revisions(), 1, "nothing registered");
    assert_eq!(running(&w), format!("{REGISTRY}/web:main-1"));
    assert!(kinds(&w).is_empty());
    assert!(w.store.waiting().await.unwrap().is_empty(), "nothing waits");
}

#[tokio::test]
async fn an_image_and_an_index_deploy_by_their_digests() {
    let w = corpus_world(None);
    let s = send(&w, &fixtures::aws("ecr-push-image")).await;
    assert_eq!(s.outcome, Outcome::Deployed, "{s:?}");
    assert_eq!(running(&w), format!("{REGISTRY}/web@{IMAGE}"));
    let s = send(&w, &fixtures::aws("ecr-push-index")).await;
    assert_eq!(s.outcome, Outcome::Deployed, "{s:?}");
    // ECS resolves an index to the image of each task's platform.
    assert_eq!(running(&w), format!("{REGISTRY}/web@{INDEX}"));
}

/// buildx's index: the gate waits for the scans of both platform images (ECR scans those,
/// never the index or its attestation entry) and deploys the index once both are clean.
#[tokio::test]
async fn a_gated_index_waits_for_every_image_it_lists() {
    let w = corpus_world(Some(FindingSeverity::High));
    indexed(&w);
    let held = send(&w, &fixtures::aws("ecr-push-index")).await;
    assert_eq!(held.outcome, Outcome::Waiting, "{held:?}");
    assert!(
        held.services[0]
            .reason
            .contains("the ECR scans of the 2 images of the index ee12edb4325b"),
        "{held:?}"
    );
    let first = send(&w, &fixtures::aws("ecr-scan-image-manifest")).await;
    assert_eq!(first.outcome, Outcome::Waiting, "{first:?}");
    assert!(
        first.services[0].reason.starts_with("1 of the 2 images"),
        "{first:?}"
    );
    assert_eq!(running(&w), format!("{REGISTRY}/web:main-1"));
    // The attestation entry's scan would wait for nothing; the other platform decides.
    let second = send(&w, &scan_of(ARM64, "s-arm64", json!({"LOW": 1}))).await;
    assert_eq!(second.outcome, Outcome::Deployed, "{second:?}");
    assert!(
        second.services[0]
            .reason
            .starts_with("scan clean (3 MEDIUM, 6 LOW, 2 INFORMATIONAL)"),
        "{second:?}"
    );
    assert_eq!(running(&w), format!("{REGISTRY}/web@{INDEX}"));
    assert!(w.store.waiting().await.unwrap().is_empty());
}

#[tokio::test]
async fn one_vulnerable_image_quarantines_the_index() {
    let w = corpus_world(Some(FindingSeverity::High));
    indexed(&w);
    send(&w, &fixtures::aws("ecr-push-index")).await;
    let s = send(&w, &scan_of(ARM64, "s-arm64", json!({"HIGH": 2}))).await;
    assert_eq!(s.outcome, Outcome::Quarantined, "{s:?}");
    let state = w.store.load(&web()).await.unwrap();
    assert!(state.is_quarantined(&d(INDEX)).is_some(), "{state:?}");
    assert_eq!(kinds(&w), vec!["deploy.quarantined"]);
    // The other image's scan, arriving after, finds nobody waiting.
    let late = send(&w, &fixtures::aws("ecr-scan-image-manifest")).await;
    assert_eq!(late.outcome, Outcome::Ignored, "{late:?}");
}

/// The index's images were scanned before its push event was handled: ECR's findings
/// decide at once.
#[tokio::test]
async fn an_index_whose_images_were_scanned_is_decided_at_once() {
    let w = corpus_world(Some(FindingSeverity::High));
    indexed(&w);
    for image in [AMD64, ARM64] {
        w.ecr.scanned(
            "web",
            &d(image),
            ScanResult::Complete {
                counts: [("LOW".to_owned(), 1)].into_iter().collect(),
            },
        );
    }
    let s = send(&w, &fixtures::aws("ecr-push-index")).await;
    assert_eq!(s.outcome, Outcome::Deployed, "{s:?}");
    assert_eq!(
        w.ecr.calls("DescribeImageScanFindings"),
        2,
        "one per image, none for the index"
    );
}

#[tokio::test]
async fn an_inspector_scan_decides_like_a_basic_one() {
    let w = corpus_world(Some(FindingSeverity::High));
    let held = send(&w, &fixtures::aws("ecr-push-image")).await;
    assert_eq!(held.outcome, Outcome::Waiting, "{held:?}");
    let s = send(&w, &fixtures::aws("inspector2-scan-ecr-image")).await;
    assert_eq!(s.outcome, Outcome::Quarantined, "{s:?}");
    assert!(s.services[0].reason.contains("1 CRITICAL, 4 HIGH"), "{s:?}");

    // Clean for a HIGH gate: ECR's findings, which the event points to, say so too.
    let w = corpus_world(Some(FindingSeverity::High));
    send(&w, &fixtures::aws("ecr-push-image")).await;
    let mut clean = fixtures::aws("inspector2-scan-ecr-image");
    clean["detail"]["finding-severity-counts"] = json!({"MEDIUM": 2, "TOTAL": 5});
    let s = send(&w, &clean).await;
    assert_eq!(s.outcome, Outcome::Deployed, "{s:?}");
    assert_eq!(
        w.ecr.calls("DescribeImageScanFindings"),
        2,
        "the check at the push, and the findings the event announced"
    );
}

/// Inspector's event never counts LOW: with a LOW gate, ECR's full findings decide.
#[tokio::test]
async fn a_low_gate_reads_the_counts_inspector_leaves_out() {
    let w = corpus_world(Some(FindingSeverity::Low));
    send(&w, &fixtures::aws("ecr-push-image")).await;
    w.ecr.scanned(
        "web",
        &d(IMAGE),
        ScanResult::Complete {
            counts: [("LOW".to_owned(), 3)].into_iter().collect(),
        },
    );
    let mut no_counted_findings = fixtures::aws("inspector2-scan-ecr-image");
    no_counted_findings["detail"]["finding-severity-counts"] = json!({"TOTAL": 3});
    let s = send(&w, &no_counted_findings).await;
    assert_eq!(s.outcome, Outcome::Quarantined, "{s:?}");
    assert!(s.services[0].reason.contains("3 LOW"), "{s:?}");
}

/// A wait that cannot be decided when it runs out ends undeployed, notified with why: the
/// findings cannot be read (tried again for as long as the wait, then given up), or the scan
/// has not finished.
#[tokio::test]
async fn a_wait_that_cannot_be_decided_ends_with_a_notification() {
    let w = corpus_world(Some(FindingSeverity::High));
    send(&w, &fixtures::aws("ecr-push-image")).await;
    w.ecr.fail("DescribeImageScanFindings");
    w.clock.advance(chrono::TimeDelta::minutes(31));
    let s = w.function.settle_scan_waits().await;
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].action, Action::Waiting, "tried again later: {s:?}");
    assert_eq!(w.store.waiting().await.unwrap().len(), 1);
    assert!(w.notifier.published().is_empty());
    w.clock.advance(chrono::TimeDelta::minutes(30));
    let s = w.function.settle_scan_waits().await;
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].action, Action::Skipped, "{s:?}");
    assert!(s[0].reason.contains("could not be checked"), "{s:?}");
    assert!(s[0].reason.contains("ThrottlingException"), "{s:?}");
    assert!(w.store.waiting().await.unwrap().is_empty());
    let published = w.notifier.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].kind.as_str(), "deploy.skipped");

    let w = corpus_world(Some(FindingSeverity::High));
    send(&w, &fixtures::aws("ecr-push-image")).await;
    w.ecr.scanned("web", &d(IMAGE), ScanResult::InProgress);
    w.clock.advance(chrono::TimeDelta::minutes(31));
    let s = w.function.settle_scan_waits().await;
    assert_eq!(s[0].action, Action::Skipped, "{s:?}");
    assert!(s[0].reason.contains("had not finished"), "{s:?}");
    assert_eq!(kinds(&w), vec!["deploy.skipped"]);
}

/// An index whose manifest cannot be read when pushed is read again when its wait runs out.
#[tokio::test]
async fn an_unreadable_index_is_read_again_when_its_wait_runs_out() {
    let w = corpus_world(Some(FindingSeverity::High));
    indexed(&w);
    w.ecr.fail("BatchGetImage");
    let held = send(&w, &fixtures::aws("ecr-push-index")).await;
    assert_eq!(held.outcome, Outcome::Waiting, "{held:?}");
    w.ecr.heal("BatchGetImage");
    for image in [AMD64, ARM64] {
        w.ecr.scanned(
            "web",
            &d(image),
            ScanResult::Complete {
                counts: Default::default(),
            },
        );
    }
    w.clock.advance(chrono::TimeDelta::minutes(31));
    let s = w.function.settle_scan_waits().await;
    assert_eq!(s[0].action, Action::Deployed, "{s:?}");
    assert_eq!(running(&w), format!("{REGISTRY}/web@{INDEX}"));
}

#[tokio::test]
async fn external_services_are_reported_before_anything_is_registered() {
    {
        let controller = DeploymentController::External;
        let w = corpus_world(None);
        w.ecs.set_controller(&web(), controller);
        let s = send(&w, &fixtures::aws("ecr-push-image")).await;
        assert_eq!(s.outcome, Outcome::Invalid, "{controller:?}: {s:?}");
        assert!(
            s.services[0].reason.contains(controller.as_str()),
            "{controller:?}: {s:?}"
        );
        assert!(s.services[0].reason.starts_with("deckhand:deploy"), "{s:?}");
        assert_eq!(w.ecs.revisions(), 1, "{controller:?}: nothing registered");
        assert_eq!(w.ecs.calls("RegisterTaskDefinition"), 0);
        assert_eq!(w.ecs.calls("UpdateService"), 0);
        assert_eq!(kinds(&w), vec!["config.invalid"]);
    }
}

/// ECS's circuit breaker fails deckhand's deployment and starts its own rollback: the
/// rollback's in-progress event is not deckhand's deployment; the failure quarantines.
#[tokio::test]
async fn the_circuit_breaker_events_fail_the_deployment_and_quarantine_its_digest() {
    let w = corpus_world(None);
    assert_eq!(
        send(&w, &fixtures::aws("ecr-push-image")).await.outcome,
        Outcome::Deployed
    );
    let started = send(&w, &fixtures::aws("ecs-deployment-in-progress")).await;
    assert_eq!(started.outcome, Outcome::Recorded, "{started:?}");
    let failed = send(&w, &fixtures::aws("ecs-deployment-failed-circuit-breaker")).await;
    assert_eq!(failed.outcome, Outcome::Failed, "{failed:?}");
    assert!(
        failed.services[0].reason.contains("circuit breaker"),
        "{failed:?}"
    );
    let rollback = send(&w, &fixtures::aws("ecs-deployment-rollback-in-progress")).await;
    assert_eq!(rollback.outcome, Outcome::Ignored, "{rollback:?}");
    let state = w.store.load(&web()).await.unwrap();
    assert!(state.is_quarantined(&d(IMAGE)).is_some());
    assert_eq!(kinds(&w), vec!["deploy.started", "deploy.failed"]);
}

#[tokio::test]
async fn the_completed_event_starts_the_guard_window() {
    let w = corpus_world(None);
    send(&w, &fixtures::aws("ecr-push-image")).await;
    let done = send(&w, &fixtures::aws("ecs-deployment-completed")).await;
    assert_eq!(done.outcome, Outcome::Completed, "{done:?}");
    let state = w.store.load(&web()).await.unwrap();
    let guard_until = state.deployment.unwrap().guard_until.unwrap();
    assert_eq!(
        guard_until,
        Utc.with_ymd_and_hms(2026, 11, 23, 10, 35, 0).unwrap()
    );
}

/// ECS's pause hook event asks for an answer: what waits, where and until when comes from
/// DescribeServiceDeployments; a redelivery publishes nothing more.
#[tokio::test]
async fn a_deployment_waiting_at_a_pause_hook_is_reported_awaiting_approval() {
    let w = corpus_world(None);
    w.ecs
        .set_strategy(&web(), crate::domain::strategy::Strategy::BlueGreen);
    send(&w, &fixtures::aws("ecr-push-image")).await;
    let early = send(&w, &fixtures::aws("ecs-hook-awaiting-action")).await;
    assert_eq!(
        early.outcome,
        Outcome::Ignored,
        "nothing waits yet: {early:?}"
    );

    let mut event = fixtures::aws("ecs-hook-awaiting-action");
    event["id"] = json!("hook-2");
    w.ecs.pause_service_deployment(&web());
    let s = send(&w, &event).await;
    assert_eq!(s.outcome, Outcome::Recorded, "{s:?}");
    let reason = &s.services[0].reason;
    assert!(
        reason.contains("waits for approval at POST_TEST_TRAFFIC_SHIFT"),
        "{reason}"
    );
    assert!(reason.contains("`deckhand approve demo/web`"), "{reason}");
    let published = w.notifier.published();
    let waiting = published
        .iter()
        .find(|n| n.kind == Kind::DeployAwaitingApproval)
        .expect("deploy.awaiting-approval");
    assert_eq!(waiting.details["hookId"], "ecs-pause-demo/web");
    assert_eq!(waiting.details["timeoutAction"], "ROLLBACK");
    assert_eq!(waiting.details["reject"], "deckhand reject demo/web");
    let again = send(&w, &event).await;
    assert_eq!(again.outcome, Outcome::Duplicate, "{again:?}");
    assert_eq!(
        kinds(&w),
        vec!["deploy.started", "deploy.awaiting-approval"]
    );
}

#[test]
fn the_hook_event_names_its_service_by_any_ecs_arn_it_carries() {
    let mut event = fixtures::aws("ecs-hook-awaiting-action");
    let parsed = |e: &Value| match crate::events::parse_deploy_event(e) {
        Ok(crate::events::DeployEvent::HookAwaiting(h)) => Ok(h.service.to_string()),
        Ok(other) => Err(format!("{other:?}")),
        Err(e) => Err(e.field),
    };
    assert_eq!(parsed(&event), Ok("demo/web".into()));
    event["resources"] = json!([]);
    event["detail"]["serviceArn"] = json!("arn:aws:ecs:us-east-1:123456789012:service/demo/api");
    assert_eq!(parsed(&event), Ok("demo/api".into()));
    event["detail"]
        .as_object_mut()
        .unwrap()
        .remove("serviceArn");
    assert_eq!(parsed(&event), Err("resources".into()));
    event["detail"]["eventName"] = json!("HOOK_SUCCEEDED");
    assert!(matches!(
        crate::events::parse_deploy_event(&event),
        Ok(crate::events::DeployEvent::NotForDeckhand(_))
    ));
    event["detail"]["eventName"] = json!(7);
    assert_eq!(parsed(&event), Err("detail.eventName".into()));
}

#[test]
fn the_corpus_index_reads_as_two_images() {
    let text = fixtures::aws("ecr-image-index-manifest").to_string();
    assert_eq!(
        read_manifest(&text, Some("application/vnd.oci.image.index.v1+json")),
        Ok(Manifest::Index {
            images: vec![d(AMD64), d(ARM64)]
        })
    );
}
