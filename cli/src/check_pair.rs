//! `deckhand check` on a side of a pair: the listener (or rule) read as deckhand reads it, which
//! side is live, what deckhand will change in it, and the Terraform `ignore_changes` that keeps
//! Terraform from undoing that.

use deckhand::app::Ports;
use deckhand::domain::fleet::ServiceView;
use deckhand::domain::pair::{PairSettings, resolve_pair};
use deckhand::domain::pair_gate::TrafficGate;

/// The pair in words, or why it is not one deckhand can move.
pub async fn pair_words(
    ports: &Ports,
    service: &ServiceView,
    all: &[ServiceView],
) -> Option<Result<Vec<String>, String>> {
    let settings = PairSettings::from_tags(&service.tags).ok().flatten()?;
    let partner = all
        .iter()
        .find(|s| s.key.cluster() == service.key.cluster() && s.key.service() == settings.partner);
    let forward = match ports.traffic.forward(&settings.traffic).await {
        Ok(forward) => forward,
        Err(e) => {
            return Some(Err(format!(
                "deckhand:traffic: could not read {}: {e}",
                settings.traffic
            )));
        }
    };
    let pair = match resolve_pair(service, partner, &forward) {
        Ok(pair) => pair,
        Err(problem) => return Some(Err(problem.to_string())),
    };
    let s = &pair.settings;
    let mut words = vec![format!(
        "a pair with {}: {} is live ({}% of {}), {} idle; a push deploys the idle side and moves {}% by step",
        settings.partner,
        pair.live.service,
        forward.percent_of(&pair.live.target_group),
        s.traffic,
        pair.idle.service,
        s.steps
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    )];
    if forward.weight_of(&pair.idle.target_group).is_none() {
        words.push(format!(
            "its forward action names {}'s target group alone: deckhand adds {} at weight 0 when it first moves traffic, and keeps everything else of the action",
            pair.live.service, pair.idle.target_group
        ));
    }
    words.push(match &s.gate {
        None => "the traffic moves as soon as ECS completes the idle side (no deckhand:traffic-gate)".into(),
        Some(TrafficGate::Approve) => "the traffic waits for `deckhand approve` (deckhand:traffic-gate)".into(),
        Some(TrafficGate::Check { function }) => format!(
            "the traffic moves when check function {function} answers success (tag it deckhand:traffic-gate = check)"
        ),
    });
    let (resource, field) = terraform_of(&s.traffic);
    let mut keep = vec![format!(
        "ignore_changes = [{field}] on the {resource} of {}",
        s.traffic
    )];
    if let Some(test) = &s.test_traffic {
        let (resource, field) = terraform_of(test);
        words.push(format!(
            "test traffic through {test} follows the idle side after every move"
        ));
        keep.push(format!("[{field}] on the {resource} of the test traffic"));
    }
    keep.push("[task_definition, desired_count] on both aws_ecs_service".into());
    keep.push("[min_capacity, max_capacity] on both aws_appautoscaling_target".into());
    words.push(format!("in Terraform, {}", keep.join("; ")));
    Some(Ok(words))
}

/// The Terraform resource of a listener or rule ARN, and the argument deckhand changes in it.
fn terraform_of(arn: &str) -> (&'static str, &'static str) {
    if arn.contains(":listener-rule/") {
        ("aws_lb_listener_rule", "action")
    } else {
        ("aws_lb_listener", "default_action")
    }
}
