//! Blue/green the way many teams built it before ECS had it: two services of one cluster, a
//! target group each, and one ALB listener (or listener rule) whose forward action decides
//! which of them gets production traffic. The pair's tags, the forward action as deckhand
//! reads it, and which side is live: pure, checked before anything changes.

use chrono::TimeDelta;

use super::duration::parse_duration;
use super::fleet::{ServiceView, Source};
use super::pair_gate::{TAG_TRAFFIC_GATE, TrafficGate, parse_gate};
use super::service::ServiceKey;
use super::settings::{TagProblem, Tags};

pub const TAG_PAIR: &str = "deckhand:pair";
pub const TAG_TRAFFIC: &str = "deckhand:traffic";
/// The value of `deckhand:traffic` on a listener or rule that designates it for deckhand: the
/// template's roles may change no other (a resource tag condition).
pub const DESIGNATED: &str = "managed";
pub const TAG_TRAFFIC_STEPS: &str = "deckhand:traffic-steps";
pub const TAG_STEP_WAIT: &str = "deckhand:step-wait";
pub const TAG_STANDBY: &str = "deckhand:standby";
/// A listener rule (or test listener) whose forward action deckhand keeps on the idle side, so
/// that smoke tests reach the revision about to go live.
pub const TAG_TEST_TRAFFIC: &str = "deckhand:test-traffic";

/// How long each step holds at least, unless `deckhand:step-wait` says.
pub const DEFAULT_STEP_WAIT: TimeDelta = TimeDelta::minutes(5);

/// What becomes of the old side once the new one passed its guard window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standby {
    /// Scaled to 0 tasks, its revision kept for the next push.
    ScaleDown,
    /// Left running, warm for an instant rollback later.
    Keep,
}

/// A pair's tags on one side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairSettings {
    /// The other service of the pair, in the same cluster.
    pub partner: String,
    /// The listener or listener rule ARN whose forward action carries the pair's traffic.
    pub traffic: String,
    /// Percentages of traffic on the new side, in order; the last is 100.
    pub steps: Vec<u8>,
    pub step_wait: TimeDelta,
    pub standby: Standby,
    /// The listener rule or listener whose forward action follows the idle side.
    pub test_traffic: Option<String>,
    /// What must hold before the production traffic moves.
    pub gate: Option<TrafficGate>,
}

fn problem(tag: &str, value: &str, message: impl Into<String>) -> TagProblem {
    TagProblem {
        tag: tag.to_owned(),
        value: value.to_owned(),
        message: message.into(),
    }
}

/// `10 50 100`: whole percentages, each greater than the one before, the last 100.
pub fn parse_steps(text: &str) -> Result<Vec<u8>, String> {
    let mut steps: Vec<u8> = Vec::new();
    for word in text.split_whitespace() {
        let step = word
            .parse::<u8>()
            .ok()
            .filter(|s| (1..=100).contains(s))
            .ok_or_else(|| format!("`{word}` is not a percentage from 1 to 100"))?;
        if steps.last().is_some_and(|last| *last >= step) {
            return Err(format!(
                "`{word}` does not follow a smaller step: each step moves more traffic than the one before"
            ));
        }
        steps.push(step);
    }
    match steps.last() {
        None => Err("no step: write percentages such as `10 50 100`".into()),
        Some(100) => Ok(steps),
        Some(_) => Err("the last step must be 100: the new side ends with all the traffic".into()),
    }
}

/// Whether an ARN names an ALB listener or listener rule (any partition and region).
fn is_traffic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", _, "elasticloadbalancing", _, _, resource]
        if resource.starts_with("listener/app/") || resource.starts_with("listener-rule/app/"))
}

impl PairSettings {
    /// `Ok(None)` when the service is not one side of a pair.
    pub fn from_tags(tags: &Tags) -> Result<Option<Self>, Vec<TagProblem>> {
        let Some(partner) = tags.get(TAG_PAIR).map(|p| p.trim()) else {
            return Ok(None);
        };
        let mut problems = Vec::new();
        if partner.is_empty() || partner.contains('/') || partner.contains(' ') {
            problems.push(problem(
                TAG_PAIR,
                partner,
                "name the other service of the pair, in the same cluster, without the cluster",
            ));
        }
        let traffic = match tags.get(TAG_TRAFFIC).map(|t| t.trim()) {
            None => {
                problems.push(problem(
                    TAG_TRAFFIC,
                    "",
                    "missing: a pair needs the ARN of the listener or listener rule whose forward action carries its traffic",
                ));
                String::new()
            }
            Some(arn) if !is_traffic_arn(arn) => {
                problems.push(problem(
                    TAG_TRAFFIC,
                    arn,
                    "is not the ARN of an Application Load Balancer listener or listener rule",
                ));
                String::new()
            }
            Some(arn) => arn.to_owned(),
        };
        let steps = match tags.get(TAG_TRAFFIC_STEPS) {
            None => vec![100],
            Some(text) => parse_steps(text).unwrap_or_else(|e| {
                problems.push(problem(TAG_TRAFFIC_STEPS, text, e));
                vec![100]
            }),
        };
        let step_wait = match tags.get(TAG_STEP_WAIT) {
            None => DEFAULT_STEP_WAIT,
            Some(text) => parse_duration(text.trim()).unwrap_or_else(|e| {
                problems.push(problem(TAG_STEP_WAIT, text, e.to_string()));
                DEFAULT_STEP_WAIT
            }),
        };
        let standby = match tags.get(TAG_STANDBY).map(|s| s.trim()) {
            None | Some("scale-down") => Standby::ScaleDown,
            Some("keep") => Standby::Keep,
            Some(other) => {
                problems.push(problem(TAG_STANDBY, other, "expected scale-down or keep"));
                Standby::ScaleDown
            }
        };
        let test_traffic = match tags.get(TAG_TEST_TRAFFIC).map(|t| t.trim()) {
            None => None,
            Some(arn) if !is_traffic_arn(arn) => {
                problems.push(problem(
                    TAG_TEST_TRAFFIC,
                    arn,
                    "is not the ARN of an Application Load Balancer listener rule or listener",
                ));
                None
            }
            Some(arn) if arn == traffic => {
                problems.push(problem(
                    TAG_TEST_TRAFFIC,
                    arn,
                    format!("is the production traffic's {TAG_TRAFFIC}: name the rule the smoke tests use"),
                ));
                None
            }
            Some(arn) => Some(arn.to_owned()),
        };
        let gate = match tags.get(TAG_TRAFFIC_GATE) {
            None => None,
            Some(text) => parse_gate(text).map(Some).unwrap_or_else(|e| {
                problems.push(problem(TAG_TRAFFIC_GATE, text, e));
                None
            }),
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Some(Self {
            partner: partner.to_owned(),
            traffic,
            steps,
            step_wait,
            standby,
            test_traffic,
            gate,
        }))
    }
}

/// The forward action of a listener's default actions or of a listener rule, as deckhand reads
/// it: the target groups it forwards to and their weights. The adapter keeps its own copy of
/// the whole action list, so that setting weights keeps every other part of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Forward {
    /// The listener or rule ARN.
    pub arn: String,
    /// Target group ARN and weight, in the action's order.
    pub weights: Vec<(String, i32)>,
    pub source: Source,
}

impl Forward {
    pub fn weight_of(&self, target_group: &str) -> Option<i32> {
        self.weights
            .iter()
            .find(|(tg, _)| tg == target_group)
            .map(|(_, w)| *w)
    }

    /// The share of the traffic a target group gets, in whole percent.
    pub fn percent_of(&self, target_group: &str) -> u8 {
        let total: i64 = self.weights.iter().map(|(_, w)| i64::from(*w)).sum();
        let weight = i64::from(self.weight_of(target_group).unwrap_or(0));
        if total <= 0 {
            return 0;
        }
        u8::try_from((weight * 100 + total / 2) / total).unwrap_or(100)
    }
}

/// One side of a pair, as ECS describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Side {
    pub service: ServiceKey,
    pub target_group: String,
}

/// A pair both of whose sides agree, with which is live now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub live: Side,
    pub idle: Side,
    pub settings: PairSettings,
}

/// The one target group of a side, or why there is not exactly one.
fn target_group_of(service: &ServiceView) -> Result<String, TagProblem> {
    let pair_tag = service.tags.get(TAG_PAIR).cloned().unwrap_or_default();
    match service.target_groups.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(problem(
            TAG_PAIR,
            &pair_tag,
            format!("{} has no load balancer target group", service.key),
        )),
        many => Err(problem(
            TAG_PAIR,
            &pair_tag,
            format!(
                "{} has {} target groups; each side of a pair needs exactly one",
                service.key,
                many.len()
            ),
        )),
    }
}

/// Checks the pair from both sides and the forward action, and tells the live side from the
/// idle one: the live side's target group gets the weight (the larger share while traffic is
/// split). Anything else is a problem of the pair's tags, reported before anything changes.
pub fn resolve_pair(
    one: &ServiceView,
    other: Option<&ServiceView>,
    forward: &Forward,
) -> Result<Pair, TagProblem> {
    let settings = match PairSettings::from_tags(&one.tags) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(problem(
                TAG_PAIR,
                "",
                format!("{} is not tagged as a pair", one.key),
            ));
        }
        Err(mut problems) => return Err(problems.remove(0)),
    };
    let pair_problem = |message: String| problem(TAG_PAIR, &settings.partner, message);
    let Some(other) = other else {
        return Err(pair_problem(format!(
            "{}/{} does not exist",
            one.key.cluster(),
            settings.partner
        )));
    };
    if other.key.cluster() != one.key.cluster() || other.key.service() != settings.partner {
        return Err(pair_problem(format!(
            "names {}, but was given {}",
            settings.partner, other.key
        )));
    }
    let their_settings = match PairSettings::from_tags(&other.tags) {
        Ok(Some(theirs))
            if theirs.partner == one.key.service() && theirs.traffic == settings.traffic =>
        {
            theirs
        }
        Ok(Some(theirs)) if theirs.partner != one.key.service() => {
            return Err(pair_problem(format!(
                "{} names {} as its pair, not {}",
                other.key,
                theirs.partner,
                one.key.service()
            )));
        }
        Ok(Some(_)) => {
            return Err(problem(
                TAG_TRAFFIC,
                &settings.traffic,
                format!(
                    "{} names another listener or rule in {TAG_TRAFFIC}",
                    other.key
                ),
            ));
        }
        Ok(None) => {
            return Err(pair_problem(format!(
                "{} has no {TAG_PAIR} tag naming {}",
                other.key,
                one.key.service()
            )));
        }
        Err(problems) => {
            return Err(pair_problem(format!(
                "the tags of {} do not parse: {}",
                other.key, problems[0]
            )));
        }
    };
    if forward.arn != settings.traffic {
        return Err(problem(
            TAG_TRAFFIC,
            &settings.traffic,
            format!("the forward action read is that of {}", forward.arn),
        ));
    }
    let mine = target_group_of(one)?;
    let theirs = target_group_of(other)?;
    // The plain switch most teams built forwards to the live side's target group alone: the
    // idle side's is added, at weight 0, when traffic first moves.
    if forward.weight_of(&mine).is_none() && forward.weight_of(&theirs).is_none() {
        return Err(problem(
            TAG_TRAFFIC,
            &settings.traffic,
            format!(
                "its forward action sends traffic to neither {}'s target group {mine} nor {}'s {theirs}",
                one.key, other.key
            ),
        ));
    }
    if let Some((foreign, _)) = forward
        .weights
        .iter()
        .find(|(tg, weight)| *weight > 0 && tg != &mine && tg != &theirs)
    {
        return Err(problem(
            TAG_TRAFFIC,
            &settings.traffic,
            format!(
                "its forward action also sends traffic to {foreign}, which is neither side's: deckhand moves the whole of it"
            ),
        ));
    }
    let (my_weight, their_weight) = (
        forward.weight_of(&mine).unwrap_or(0),
        forward.weight_of(&theirs).unwrap_or(0),
    );
    let side = |service: &ServiceView, target_group: &str| Side {
        service: service.key.clone(),
        target_group: target_group.to_owned(),
    };
    // The live side's steps, wait and standby rule the pair.
    let (live, idle, settings) = match my_weight.cmp(&their_weight) {
        std::cmp::Ordering::Greater => (side(one, &mine), side(other, &theirs), settings),
        std::cmp::Ordering::Less => (side(other, &theirs), side(one, &mine), their_settings),
        std::cmp::Ordering::Equal => {
            return Err(problem(
                TAG_TRAFFIC,
                &settings.traffic,
                format!(
                    "both target groups have weight {my_weight}: deckhand cannot tell the live side; give one all the weight"
                ),
            ));
        }
    };
    Ok(Pair {
        live,
        idle,
        settings,
    })
}

#[cfg(test)]
#[path = "pair_tests.rs"]
mod tests;
