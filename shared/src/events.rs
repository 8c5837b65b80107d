//! Parsing the payloads that reach the functions into domain types. Every failure names the
//! field at fault.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::domain::artifact::classify_push;
use crate::domain::codedeploy::{CodeDeployEvent, DeploymentGroup};
use crate::domain::deploy::{DeploymentEvent, DeploymentEventKind, Push};
use crate::domain::image::{Digest, Repository};
use crate::domain::scan::ScanEvent;
use crate::domain::service::ServiceKey;
use crate::domain::strategy::HookAwaiting;

pub mod alarm;
pub mod dead_letter;
pub mod origin;
pub mod scan;
pub mod scheduler;

pub const ECR_IMAGE_ACTION: &str = "ECR Image Action";
pub const ECR_IMAGE_SCAN: &str = "ECR Image Scan";
pub const INSPECTOR2_SCAN: &str = "Inspector2 Scan";
pub const ECS_DEPLOYMENT_STATE_CHANGE: &str = "ECS Deployment State Change";
pub const ECS_HOOK_STATE_CHANGE: &str = "ECS Hook State Change";
pub const TAG_CHANGE_ON_RESOURCE: &str = "Tag Change on Resource";
pub const CODEDEPLOY_DEPLOYMENT_STATE_CHANGE: &str =
    "CodeDeploy Deployment State-change Notification";

/// An event that cannot be parsed, naming the field at fault (a dotted path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EventError {
    pub field: String,
    pub message: String,
}

impl EventError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What reaches the `deploy` function.
#[derive(Debug, Clone, PartialEq)]
pub enum DeployEvent {
    Push(Push),
    Deployment(DeploymentEvent),
    /// `ECR Image Scan`: decides the pushes the scan gate holds.
    Scan(ScanEvent),
    /// `CodeDeploy Deployment State-change Notification`: closes the loop of a deployment of a
    /// `CODE_DEPLOY` service.
    CodeDeploy(CodeDeployEvent),
    /// `ECS Hook State Change`, `HOOK_AWAITING_ACTION`: a deployment waits for an approval.
    HookAwaiting(HookAwaiting),
    /// `Tag Change on Resource` of an ECS service whose `deckhand:deploy` changed: the
    /// repository index learns of it before any push or reconcile.
    Tagged(TagChanged),
    /// Well-formed, but not something deckhand acts on.
    NotForDeckhand(String),
}

/// Deserialises `value` as `T`, reporting the path of the field at fault under `prefix`.
pub fn parse_at<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, EventError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // A missing field is reported at its parent; name the field itself.
        let missing = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let local = match (missing, path.as_str()) {
            (Some(name), ".") => name.to_owned(),
            (Some(name), parent) => format!("{parent}.{name}"),
            (None, ".") => String::new(),
            (None, path) => path.to_owned(),
        };
        let field = match (prefix, local.as_str()) {
            ("", "") => "(event)".to_owned(),
            ("", local) => local.to_owned(),
            (prefix, "") => prefix.to_owned(),
            (prefix, local) => format!("{prefix}.{local}"),
        };
        let message = if missing.is_some() {
            "missing".to_owned()
        } else {
            inner
        };
        EventError::new(field, message)
    })
}

/// The EventBridge envelope with the fields deckhand requires.
pub(crate) struct Envelope {
    pub(crate) id: String,
    pub(crate) time: DateTime<Utc>,
    pub(crate) account: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) resources: Vec<String>,
    pub(crate) detail: Value,
}

pub(crate) fn envelope(
    value: &Value,
    detail_type: &str,
    source: &str,
) -> Result<Envelope, EventError> {
    let event: EventBridgeEvent<Value> = parse_at(value, "")?;
    if event.source != source {
        return Err(EventError::new(
            "source",
            format!(
                "`{}` does not go with detail-type `{detail_type}` (expected `{source}`)",
                event.source
            ),
        ));
    }
    let id = event
        .id
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| EventError::new("id", "missing"))?;
    let time = event
        .time
        .ok_or_else(|| EventError::new("time", "missing"))?;
    if !event.detail.is_object() {
        return Err(EventError::new("detail", "expected an object"));
    }
    Ok(Envelope {
        id,
        time,
        account: event.account,
        region: event.region,
        resources: event.resources.unwrap_or_default(),
        detail: event.detail,
    })
}

fn detail_type(value: &Value) -> Result<&str, EventError> {
    if !value.is_object() {
        return Err(EventError::new("(event)", "expected a JSON object"));
    }
    match value.get("detail-type") {
        None | Some(Value::Null) => Err(EventError::new("detail-type", "missing")),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(EventError::new(
            "detail-type",
            format!("expected a string, got {other}"),
        )),
    }
}

/// `detail` of `ECR Image Action`; aws_lambda_events has no type for it.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct EcrImageAction {
    action_type: String,
    result: String,
    repository_name: String,
    image_digest: String,
    #[serde(default)]
    image_tag: Option<String>,
    #[serde(default)]
    artifact_media_type: Option<String>,
    #[serde(default)]
    manifest_media_type: Option<String>,
}

/// `detail` of `ECS Deployment State Change`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EcsDeploymentStateChange {
    event_name: String,
    deployment_id: String,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    reason: Option<String>,
}

pub fn parse_deploy_event(value: &Value) -> Result<DeployEvent, EventError> {
    match detail_type(value)? {
        ECR_IMAGE_ACTION => parse_push(value),
        ECS_DEPLOYMENT_STATE_CHANGE => parse_deployment(value),
        ECR_IMAGE_SCAN => scan::parse_ecr_scan(value),
        INSPECTOR2_SCAN => scan::parse_inspector_scan(value),
        CODEDEPLOY_DEPLOYMENT_STATE_CHANGE => parse_codedeploy(value),
        ECS_HOOK_STATE_CHANGE => parse_hook(value),
        TAG_CHANGE_ON_RESOURCE => parse_tag_change(value),
        other => Err(EventError::new(
            "detail-type",
            format!(
                "`{other}` is not handled by deploy (expected `{ECR_IMAGE_ACTION}`, `{ECS_DEPLOYMENT_STATE_CHANGE}`, `{ECR_IMAGE_SCAN}`, `{INSPECTOR2_SCAN}`, `{CODEDEPLOY_DEPLOYMENT_STATE_CHANGE}`, `{ECS_HOOK_STATE_CHANGE}` or `{TAG_CHANGE_ON_RESOURCE}`)"
            ),
        )),
    }
}

pub(crate) fn required_text(value: Option<String>, field: &str) -> Result<String, EventError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| EventError::new(field, "missing"))
}

/// The repository (from the envelope's account and region and the detail's name) and the
/// digest of an ECR event, checked.
pub(crate) fn ecr_image(
    account: Option<String>,
    region: Option<String>,
    repository_name: String,
    image_digest: &str,
) -> Result<(Repository, Digest), EventError> {
    if repository_name.trim().is_empty() {
        return Err(EventError::new("detail.repository-name", "empty"));
    }
    let digest = image_digest
        .parse()
        .map_err(|e: crate::domain::image::DigestError| {
            EventError::new("detail.image-digest", e.to_string())
        })?;
    let repository = Repository {
        account: required_text(account, "account")?,
        region: required_text(region, "region")?,
        name: repository_name,
    };
    Ok((repository, digest))
}

fn parse_push(value: &Value) -> Result<DeployEvent, EventError> {
    let envelope = envelope(value, ECR_IMAGE_ACTION, "aws.ecr")?;
    let detail: EcrImageAction = parse_at(&envelope.detail, "detail")?;
    if detail.action_type != "PUSH" || detail.result != "SUCCESS" {
        return Ok(DeployEvent::NotForDeckhand(format!(
            "ECR {} with result {} is not a successful push",
            detail.action_type, detail.result
        )));
    }
    let (repository, digest) = ecr_image(
        envelope.account,
        envelope.region,
        detail.repository_name,
        &detail.image_digest,
    )?;
    let tag = detail.image_tag.filter(|t| !t.is_empty());
    // Signatures, attestations and other artifacts share the image's repository; none is
    // something ECS can run, whatever a service's policy says.
    let manifest = match classify_push(
        tag.as_deref(),
        detail.artifact_media_type.as_deref(),
        detail.manifest_media_type.as_deref(),
    ) {
        Ok(manifest) => manifest,
        Err(why) => {
            return Ok(DeployEvent::NotForDeckhand(format!(
                "{why}: nothing deploys it"
            )));
        }
    };
    Ok(DeployEvent::Push(Push {
        event_id: envelope.id,
        at: envelope.time,
        repository,
        digest,
        tag,
        manifest,
    }))
}

fn parse_deployment(value: &Value) -> Result<DeployEvent, EventError> {
    let envelope = envelope(value, ECS_DEPLOYMENT_STATE_CHANGE, "aws.ecs")?;
    let detail: EcsDeploymentStateChange = parse_at(&envelope.detail, "detail")?;
    let kind = match detail.event_name.as_str() {
        "SERVICE_DEPLOYMENT_IN_PROGRESS" => DeploymentEventKind::InProgress,
        "SERVICE_DEPLOYMENT_COMPLETED" => DeploymentEventKind::Completed,
        "SERVICE_DEPLOYMENT_FAILED" => DeploymentEventKind::Failed,
        other => {
            return Err(EventError::new(
                "detail.eventName",
                format!("`{other}` is not a SERVICE_DEPLOYMENT_* event"),
            ));
        }
    };
    if detail.deployment_id.trim().is_empty() {
        return Err(EventError::new("detail.deploymentId", "empty"));
    }
    let service = envelope
        .resources
        .iter()
        .find_map(|arn| ServiceKey::from_arn(arn))
        .ok_or_else(|| {
            EventError::new(
                "resources",
                "no ECS service ARN (arn:...:service/CLUSTER/SERVICE)",
            )
        })?;
    Ok(DeployEvent::Deployment(DeploymentEvent {
        event_id: envelope.id,
        service,
        kind,
        ecs_deployment_id: detail.deployment_id,
        at: detail.updated_at.unwrap_or(envelope.time),
        reason: detail.reason,
    }))
}

/// `detail` of `CodeDeploy Deployment State-change Notification`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CodeDeployStateChange {
    application: String,
    deployment_group: String,
    deployment_id: String,
    state: String,
}

fn parse_codedeploy(value: &Value) -> Result<DeployEvent, EventError> {
    let envelope = envelope(value, CODEDEPLOY_DEPLOYMENT_STATE_CHANGE, "aws.codedeploy")?;
    let detail: CodeDeployStateChange = parse_at(&envelope.detail, "detail")?;
    for (field, text) in [
        ("detail.application", &detail.application),
        ("detail.deploymentGroup", &detail.deployment_group),
        ("detail.deploymentId", &detail.deployment_id),
    ] {
        if text.trim().is_empty() {
            return Err(EventError::new(field, "empty"));
        }
    }
    Ok(DeployEvent::CodeDeploy(CodeDeployEvent {
        event_id: envelope.id,
        group: DeploymentGroup::new(detail.application, detail.deployment_group),
        deployment_id: detail.deployment_id,
        state: detail.state,
        at: envelope.time,
    }))
}

/// AWS documents this event's detail-type and event name, not its fields: the service is taken
/// from any ECS service or service deployment ARN among its resources or in its detail.
fn parse_hook(value: &Value) -> Result<DeployEvent, EventError> {
    let envelope = envelope(value, ECS_HOOK_STATE_CHANGE, "aws.ecs")?;
    let name = match envelope.detail.get("eventName") {
        Some(Value::String(name)) => name.as_str(),
        None | Some(Value::Null) => return Err(EventError::new("detail.eventName", "missing")),
        Some(other) => {
            return Err(EventError::new(
                "detail.eventName",
                format!("expected a string, got {other}"),
            ));
        }
    };
    if name != "HOOK_AWAITING_ACTION" {
        return Ok(DeployEvent::NotForDeckhand(format!(
            "ECS hook event {name}: only HOOK_AWAITING_ACTION asks for an answer"
        )));
    }
    let service_of = |arn: &str| {
        ServiceKey::from_arn(arn).or_else(|| ServiceKey::from_service_deployment_arn(arn))
    };
    let mut texts = Vec::new();
    strings_in(&envelope.detail, &mut texts);
    let service = envelope
        .resources
        .iter()
        .map(String::as_str)
        .chain(texts)
        .find_map(service_of)
        .ok_or_else(|| {
            EventError::new(
                "resources",
                "no ECS service or service deployment ARN in the event",
            )
        })?;
    let hook_id = match envelope.detail.get("hookId") {
        Some(Value::String(id)) => Some(id.clone()),
        _ => None,
    };
    Ok(DeployEvent::HookAwaiting(HookAwaiting {
        event_id: envelope.id,
        service,
        hook_id,
        at: envelope.time,
    }))
}

/// A service whose tags changed.
#[derive(Clone, Debug, PartialEq)]
pub struct TagChanged {
    pub event_id: String,
    pub service: ServiceKey,
}

/// The detail of `Tag Change on Resource` (source `aws.tag`), as the Tagging documentation shows
/// it; deckhand reads which service, and whether `deckhand:deploy` is among the keys changed.
#[derive(Deserialize)]
struct TagChangeDetail {
    #[serde(rename = "changed-tag-keys", default)]
    changed_tag_keys: Vec<String>,
    service: String,
    #[serde(rename = "resource-type")]
    resource_type: String,
}

fn parse_tag_change(value: &Value) -> Result<DeployEvent, EventError> {
    let envelope = envelope(value, TAG_CHANGE_ON_RESOURCE, "aws.tag")?;
    let detail: TagChangeDetail = parse_at(&envelope.detail, "detail")?;
    if detail.service != "ecs" || detail.resource_type != "service" {
        return Ok(DeployEvent::NotForDeckhand(format!(
            "a tag change of a {} {}, not of an ECS service",
            detail.service, detail.resource_type
        )));
    }
    if !detail
        .changed_tag_keys
        .iter()
        .any(|k| k == crate::domain::settings::TAG_DEPLOY)
    {
        return Ok(DeployEvent::NotForDeckhand(
            "the tags changed do not include deckhand:deploy".into(),
        ));
    }
    let service = envelope
        .resources
        .iter()
        .find_map(|arn| ServiceKey::from_arn(arn))
        .ok_or_else(|| EventError::new("resources", "no ECS service ARN in the event"))?;
    Ok(DeployEvent::Tagged(TagChanged {
        event_id: envelope.id,
        service,
    }))
}

/// Every string in a JSON value, depth first.
fn strings_in<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings_in(v, out)),
        Value::Object(fields) => fields.values().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::artifact::ManifestKind;
    use crate::domain::scan::ScanResult;
    use crate::fixtures;

    fn sample(name: &str) -> Value {
        let text = match name {
            "ecr-push" => include_str!("../../events/ecr-push.json"),
            "ecr-push-untracked-tag" => include_str!("../../events/ecr-push-untracked-tag.json"),
            "ecs-deployment-completed" => {
                include_str!("../../events/ecs-deployment-completed.json")
            }
            "ecs-deployment-failed" => include_str!("../../events/ecs-deployment-failed.json"),
            "ecr-scan-clean" => include_str!("../../events/ecr-scan-clean.json"),
            "ecr-scan-critical" => include_str!("../../events/ecr-scan-critical.json"),
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
        let DeployEvent::Scan(scan) = parse_deploy_event(&sample("ecr-scan-critical")).unwrap()
        else {
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
        let DeployEvent::Scan(clean) = parse_deploy_event(&sample("ecr-scan-clean")).unwrap()
        else {
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
        assert!(
            matches!(scan.result, ScanResult::Unusable { ref status, .. } if status == "FAILED")
        );
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
}
