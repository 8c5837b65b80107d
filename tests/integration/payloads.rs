//! Payloads as AWS sends them (tests/fixtures/aws) through the real SDK against the emulator:
//! every kind of alarm in every shape rolls back, a mapping source that fails does not stop the
//! others, signatures never deploy, an index deploys once ECR has scanned the images it lists
//! (the emulator refuses to scan the index itself, as ECR does), Amazon Inspector's events decide
//! like ECR's, and services ECS does not deploy are reported before anything is registered.

use std::sync::Arc;

use aws_sdk_ecs::types::{DeploymentController, DeploymentControllerType};
use chrono::{DateTime, TimeDelta, Utc};
use deckhand::adapters::memory::FixedClock;
use deckhand::app::deploy::DeployFunction;
use deckhand::app::rollback::RollbackError;
use deckhand::config::Config;
use deckhand::domain::scan::FindingSeverity;
use deckhand::ports::StateStore as _;
use deckhand::report::{Action, Outcome, Summary};
use serde_json::{Value, json};
use testkit::proxy::{Fault, FaultPlan, FaultRates, Proxy};

use crate::harness::{ACCOUNT, REGION, Role, Stack, aws_fixture};
use crate::rollback::{Guarded, metric_alarm, utc};

/// When the corpus' alarms change state: inside the guard window of a deployment completed at
/// 10:05.
const ALARMED: &str = "2026-11-23T10:08:01Z";

/// A corpus alarm made this stack's: its dimensions name the stack's cluster, and its name
/// (the ARN whose tags are read) is the stack's own, as alarms are shared on the emulator.
fn stack_alarm(stack: &Stack, fixture: &str) -> (Value, String) {
    let text = aws_fixture(fixture)
        .to_string()
        .replace("demo", &stack.cluster)
        .replace("web-unhealthy", &format!("web-unhealthy-{}", stack.id));
    let name = format!("web-unhealthy-{}", stack.id);
    (serde_json::from_str(&text).unwrap(), name)
}

/// The alarm in CloudWatch with a tag naming the service, as a composite alarm has no metric
/// that could. deckhand reads tags by ARN only, so a metric alarm stands in for it: moto's
/// PutCompositeAlarm fails through the protocol translation of the emulator.
async fn composite_alarm(stack: &Stack, name: &str, service: &str) {
    let tag = format!("{}/{service}", stack.cluster);
    metric_alarm(stack, name, None, &[("deckhand:service", &tag)]).await;
}

async fn every_shape_rolls_back(kind: &str) {
    for shape in ["eventbridge", "lambda", "sns"] {
        let fixture = format!("alarm-{kind}-{shape}");
        let g = Guarded::deployed(&[("web", &[])]).await;
        let (event, name) = stack_alarm(&g.stack, &fixture);
        if kind == "composite" {
            composite_alarm(&g.stack, &name, "web").await;
        }
        let s = g
            .handle_at(&event, ALARMED)
            .await
            .unwrap_or_else(|e| panic!("{fixture}: {e}"));
        assert_eq!(s.outcome, Outcome::RolledBack, "{fixture}: {s:?}");
        assert_eq!(g.revision("web").await, "1", "{fixture}");
        let state = g
            .stack
            .store()
            .load(&g.stack.service_key("web"))
            .await
            .unwrap();
        assert!(
            state.is_quarantined(&g.digest.parse().unwrap()).is_some(),
            "{fixture}"
        );
    }
}

#[tokio::test]
async fn metric_alarms_in_every_shape_roll_back() {
    every_shape_rolls_back("metric").await;
}

#[tokio::test]
async fn metric_math_alarms_in_every_shape_roll_back() {
    every_shape_rolls_back("metric-math").await;
}

#[tokio::test]
async fn anomaly_detection_alarms_in_every_shape_roll_back() {
    every_shape_rolls_back("anomaly").await;
}

#[tokio::test]
async fn composite_alarms_in_every_shape_roll_back_through_their_tag() {
    every_shape_rolls_back("composite").await;
}

/// CloudWatch throttles `ListTagsForResource` past the SDK's five attempts: the metric still
/// names the service, which is rolled back; the invocation fails so that Lambda retries it,
/// and the failure is on record and notified.
#[tokio::test]
async fn a_throttled_alarm_tag_lookup_does_not_stop_the_metric_mapping() {
    let g = Guarded::deployed(&[("web", &[])]).await;
    let plan = FaultPlan::none().on("ListTagsForResource", FaultRates::always(Fault::Throttle));
    let proxy = Proxy::start(g.stack.emulator_url(), plan).await;
    let ports = g
        .stack
        .ports_through(Role::Rollback, &proxy, g.clock.clone())
        .await;
    let rollback = deckhand::app::rollback::RollbackFunction::new(ports, g.stack.config());
    let (event, _) = stack_alarm(&g.stack, "alarm-metric-sns");
    g.clock.set(utc(ALARMED));
    let result = rollback.handle(&event).await;
    let Err(RollbackError::MappingFailed(summary)) = result else {
        panic!("{result:?}");
    };
    assert_eq!(summary.outcome, Outcome::RolledBack, "{summary:?}");
    assert!(
        summary.problems[0].contains("ListTagsForResource"),
        "{summary:?}"
    );
    assert_eq!(g.revision("web").await, "1");
    let history = g
        .stack
        .store()
        .history(&g.stack.service_key("web"), 20)
        .await
        .unwrap();
    assert!(
        history
            .iter()
            .any(|r| r.action == Action::Error && r.reason.contains("ListTagsForResource")),
        "{history:?}"
    );
    let errors: Vec<Value> = g
        .stack
        .notifications()
        .into_iter()
        .map(|(_, body, _)| body)
        .filter(|b| b["kind"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["service"], "*");
}

fn gated(stack: &Stack) -> Config {
    let mut config = stack.config();
    config.require_scan = Some(FindingSeverity::High);
    config
}

fn minutes(n: i64) -> DateTime<Utc> {
    utc("2026-11-23T10:00:00Z") + TimeDelta::minutes(n)
}

/// The push event of the corpus, for this stack's repository and a digest of its own.
fn push_of(stack: &Stack, fixture: &str, id: &str, digest: &str, tag: Option<&str>) -> Value {
    let mut event = aws_fixture(fixture);
    event["id"] = json!(id);
    event["detail"]["repository-name"] = json!(stack.repository);
    event["detail"]["image-digest"] = json!(digest);
    if let Some(tag) = tag {
        event["detail"]["image-tag"] = json!(tag);
    }
    event
}

/// ECR scans the image, and its event says so.
async fn scan_of(stack: &Stack, id: &str, digest: &str, counts: Value) -> Value {
    stack.scan(digest, counts.clone()).await;
    let mut event = aws_fixture("ecr-scan-image-manifest");
    event["id"] = json!(id);
    event["detail"]["repository-name"] = json!(stack.repository);
    event["detail"]["image-digest"] = json!(digest);
    event["detail"]["finding-severity-counts"] = counts;
    event
}

/// A one-layer OCI image manifest of its own: the emulator derives the digest from the layer.
fn image_manifest(stack: &Stack, seed: &str) -> Value {
    let hex: String = format!("{seed}/{}", stack.id)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    let layer = format!("sha256:{hex:0<64.64}");
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 10, "digest": layer},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 10, "digest": layer}],
    })
}

/// buildx's index: two platform images and an attestation, each pushed untagged, then the
/// index under the tag. Returns (index, amd64, arm64, attestation) digests.
async fn push_index(stack: &Stack, tag: &str) -> (String, String, String, String) {
    let amd64 = stack
        .put_manifest(&image_manifest(stack, "amd64"), None)
        .await;
    let arm64 = stack
        .put_manifest(&image_manifest(stack, "arm64-v8"), None)
        .await;
    let attestation = stack
        .put_manifest(&image_manifest(stack, "attestation-manifest"), None)
        .await;
    let entry = |digest: &str, arch: &str, os: &str| {
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 500,
               "platform": {"architecture": arch, "os": os}})
    };
    let mut attested = entry(&attestation, "unknown", "unknown");
    attested["annotations"] = json!({"vnd.docker.reference.digest": amd64,
                                      "vnd.docker.reference.type": "attestation-manifest"});
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&amd64, "amd64", "linux"), entry(&arm64, "arm64", "linux"), attested],
    });
    let digest = stack.put_manifest(&index, Some(tag)).await;
    (digest, amd64, arm64, attestation)
}

async fn service(stack: &Stack) -> String {
    let td = stack
        .simple_task_definition(&format!("web-{}", stack.id), "main-1")
        .await;
    stack
        .create_service("web", &td, &[("deckhand:deploy", "any")])
        .await;
    td
}

async fn send(function: &DeployFunction, event: &Value) -> Summary {
    function
        .handle(event)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn running_image(stack: &Stack) -> String {
    let arn = stack.running_task_definition("web").await;
    let (td, _) = stack.task_definition(&arn).await;
    td.container_definitions()[0]
        .image()
        .unwrap_or_default()
        .to_owned()
}

/// The gate reads the index with `BatchGetImage`, waits for the scans of its two platform
/// images (never the attestation, never the index: the emulator refuses those, as ECR does),
/// and deploys the index by its digest once both are clean.
#[tokio::test]
async fn a_gated_index_deploys_once_ecr_scanned_every_image_it_lists() {
    let stack = Stack::new().await;
    service(&stack).await;
    let (index, amd64, arm64, _) = push_index(&stack, "main-2").await;
    let scan = stack
        .ecr
        .start_image_scan()
        .repository_name(&stack.repository)
        .image_id(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_digest(&index)
                .build(),
        )
        .send()
        .await;
    assert!(
        format!("{:?}", scan.unwrap_err()).contains("UnsupportedImageTypeException"),
        "ECR cannot scan an index"
    );
    let clock = Arc::new(FixedClock::new(minutes(1)));
    let (ports, calls) = stack.counted_ports_with(Role::Deploy, &gated(&stack));
    let ports = deckhand::app::Ports {
        clock: clock.clone(),
        ..ports
    };
    let function = DeployFunction::new(ports, gated(&stack));
    let held = send(
        &function,
        &push_of(&stack, "ecr-push-index", "p-index", &index, Some("main-2")),
    )
    .await;
    assert_eq!(held.outcome, Outcome::Waiting, "{held:?}");
    assert!(
        held.services[0].reason.contains("2 images of the index"),
        "{held:?}"
    );
    assert!(
        calls.calls().contains(&"ECR.BatchGetImage".to_owned()),
        "{:?}",
        calls.calls()
    );

    let first = send(
        &function,
        &scan_of(&stack, "s-amd64", &amd64, json!({"LOW": 2})).await,
    )
    .await;
    assert_eq!(first.outcome, Outcome::Waiting, "{first:?}");
    let second = send(
        &function,
        &scan_of(&stack, "s-arm64", &arm64, json!({"MEDIUM": 1})).await,
    )
    .await;
    assert_eq!(second.outcome, Outcome::Deployed, "{second:?}");
    assert!(
        second.services[0]
            .reason
            .starts_with("scan clean (1 MEDIUM, 2 LOW)"),
        "{second:?}"
    );
    assert_eq!(
        running_image(&stack).await,
        stack.image(&format!("@{index}"))
    );
}

/// Neither image of the index was ever scanned: when the wait runs out ECR is asked about
/// each image (not the index), and the push ends undeployed with the reason notified.
#[tokio::test]
async fn an_index_never_scanned_ends_undeployed_when_its_wait_runs_out() {
    let stack = Stack::new().await;
    service(&stack).await;
    let (index, _, _, _) = push_index(&stack, "main-2").await;
    let clock = Arc::new(FixedClock::new(minutes(1)));
    let function = DeployFunction::new(stack.ports(Role::Deploy, clock.clone()), gated(&stack));
    send(
        &function,
        &push_of(&stack, "ecr-push-index", "p-index", &index, Some("main-2")),
    )
    .await;
    clock.set(minutes(32));
    let ended = function.settle_scan_waits().await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0].action, Action::Skipped, "{ended:?}");
    assert!(ended[0].reason.contains("ECR has no scan"), "{ended:?}");
    assert!(
        ended[0].reason.contains("an image of the index"),
        "{ended:?}"
    );
    assert_eq!(stack.notification_kinds(), ["deploy.skipped"]);
    let baseline = stack.push_image("main-1").await;
    assert_eq!(
        running_image(&stack).await,
        stack.image(&format!("@{baseline}"))
    );
}

#[tokio::test]
async fn a_cosign_signature_pushed_beside_the_image_never_deploys() {
    let stack = Stack::new().await;
    let td = service(&stack).await;
    let image = stack.push_image("main-2").await;
    let signature = stack
        .put_manifest(
            &image_manifest(&stack, "cosign signature"),
            Some(&format!(
                "sha256-{}.sig",
                image.trim_start_matches("sha256:")
            )),
        )
        .await;
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), stack.config());
    let tag = format!("sha256-{}.sig", image.trim_start_matches("sha256:"));
    let s = send(
        &function,
        &push_of(
            &stack,
            "ecr-push-cosign-signature",
            "p-sig",
            &signature,
            Some(&tag),
        ),
    )
    .await;
    assert_eq!(s.outcome, Outcome::Ignored, "{s:?}");
    assert!(s.reason.unwrap().contains("cosign signature"));
    assert_eq!(stack.running_task_definition("web").await, td);
    assert!(stack.notifications().is_empty());
}

#[tokio::test]
async fn an_inspector_scan_quarantines_like_an_ecr_scan() {
    let stack = Stack::new().await;
    service(&stack).await;
    let digest = stack.push_image("main-2").await;
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), gated(&stack));
    let held = send(
        &function,
        &push_of(&stack, "ecr-push-image", "p-image", &digest, Some("main-2")),
    )
    .await;
    assert_eq!(held.outcome, Outcome::Waiting, "{held:?}");
    let mut scan = aws_fixture("inspector2-scan-ecr-image");
    scan["detail"]["repository-name"] = json!(format!(
        "arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{}",
        stack.repository
    ));
    scan["detail"]["image-digest"] = json!(digest);
    // What the event announces, ECR's findings hold (the event's counts decide nothing).
    stack
        .scan(&digest, json!({"CRITICAL": 1, "HIGH": 4, "MEDIUM": 9}))
        .await;
    let s = send(&function, &scan).await;
    assert_eq!(s.outcome, Outcome::Quarantined, "{s:?}");
    assert_eq!(stack.notification_kinds(), ["deploy.quarantined"]);
}

/// moto applies `UpdateService` with a task definition to any service; ECS refuses it unless
/// ECS deploys the service, and so does the emulator. deckhand never calls it there: a
/// `CODE_DEPLOY` service without a deployment group and an `EXTERNAL` one are reported before
/// anything is registered.
#[tokio::test]
async fn services_ecs_does_not_deploy_are_reported_before_anything_is_registered() {
    let stack = Stack::new().await;
    let family = format!("web-{}", stack.id);
    let td = stack.simple_task_definition(&family, "main-1").await;
    for (name, controller) in [
        ("by-codedeploy", DeploymentControllerType::CodeDeploy),
        ("external", DeploymentControllerType::External),
    ] {
        stack
            .ecs
            .create_service()
            .cluster(&stack.cluster)
            .service_name(name)
            .task_definition(&td)
            .desired_count(1)
            .deployment_controller(
                DeploymentController::builder()
                    .r#type(controller)
                    .build()
                    .unwrap(),
            )
            .tags(
                aws_sdk_ecs::types::Tag::builder()
                    .key("deckhand:deploy")
                    .value("any")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let refused = stack
            .ecs
            .update_service()
            .cluster(&stack.cluster)
            .service(name)
            .task_definition(&td)
            .send()
            .await;
        assert!(
            format!("{:?}", refused.unwrap_err()).contains("Unable to update task definition"),
            "the emulator refuses as ECS does"
        );
    }
    let digest = stack.push_image("main-2").await;
    let function = DeployFunction::new(stack.system_ports(Role::Deploy), stack.config());
    let s = send(
        &function,
        &stack.push_event("p1", minutes(0), "main-2", &digest),
    )
    .await;
    assert_eq!(s.outcome, Outcome::Invalid, "{s:?}");
    assert_eq!(s.services.len(), 2);
    // A CODE_DEPLOY service is deployed through CodeDeploy, here without a group to do it; an
    // EXTERNAL one not at all.
    let reason = |name: &str| {
        s.services
            .iter()
            .find(|r| r.service.ends_with(&format!("/{name}")))
            .map(|r| r.reason.clone())
            .unwrap_or_default()
    };
    assert!(
        reason("by-codedeploy").contains("no CodeDeploy deployment group names"),
        "{s:?}"
    );
    assert!(
        reason("external").contains("EXTERNAL deployment controller"),
        "{s:?}"
    );
    assert_eq!(stack.revisions(&family).await, 1, "nothing registered");
    assert_eq!(
        stack.notification_kinds(),
        ["config.invalid", "config.invalid"]
    );
}
