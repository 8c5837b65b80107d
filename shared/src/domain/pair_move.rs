//! A push's way through a pair of services: the idle side gets the new revision, then traffic
//! moves to it step by step, the guard window starts at 100%, and the old side waits (scaled
//! down or kept warm). Kept in the state of the side the push deployed to, under its lock.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::pair::{Pair, Standby};
use super::pair_gate::TrafficGate;
use super::service::ServiceKey;
use super::state::Capacity;

/// Where a pair's move stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PairPhase {
    /// ECS is deploying the new revision to the idle side; no traffic moved.
    Deploying,
    /// ECS completed it; the traffic gate (an approval, a check) holds the first step.
    Gated,
    /// Traffic moves step by step; the step in `step` holds since `step_at`.
    Shifting,
    /// All traffic on the new side; its guard window runs.
    Guarding,
    /// The guard window passed: the old side was scaled down or kept, as the pair's tags say.
    Done,
    /// An operator rolled the pair back after its move ended, with the old side at 0 tasks:
    /// the old side is scaled up first, and the traffic goes back once ECS runs its tasks.
    Reviving,
    /// An alarm (or an operator) put all traffic back on the old side.
    FlippedBack,
    /// ECS failed the idle side's deployment: no traffic moved, the idle side scaled to 0.
    Failed,
}

/// A pair's move from its old side to its new side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairMove {
    /// The side that was live when the push came (the old side).
    pub from: ServiceKey,
    pub from_target_group: String,
    /// The side the push deployed to (whose state holds this).
    pub to: ServiceKey,
    pub to_target_group: String,
    /// The listener or rule ARN whose forward action carries the traffic.
    pub traffic: String,
    pub steps: Vec<u8>,
    pub step_wait_seconds: i64,
    pub standby: Standby,
    pub phase: PairPhase,
    /// Index in `steps` of the share the new side has now; none before the first step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_at: Option<DateTime<Utc>>,
    /// The weights deckhand set last (target group ARN, weight).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<(String, i32)>,
    /// The listener rule (or test listener) whose forward action follows the idle side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_traffic: Option<String>,
    /// What must hold before the first step moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<TrafficGate>,
    /// When the gate closed (ECS completed the new side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gated_at: Option<DateTime<Utc>>,
    /// The guard window the new side gets once all the traffic moved, as the gate closed: who
    /// opens it later (an operator) need not know the stack's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_seconds: Option<i64>,
    /// The old side's scalable-target capacity before deckhand held it at 0 (after the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_capacity: Option<Capacity>,
    /// The new side's, before deckhand held it at 0 (its deployment failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_capacity: Option<Capacity>,
}

/// Where a pair's test traffic goes: the rule, and its forward action's weights (all on one
/// side, none on the other).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestTraffic {
    pub rule: String,
    /// The idle side's target group first (weight 1), the live side's (weight 0) after it.
    pub weights: Vec<(String, i32)>,
}

impl TestTraffic {
    /// Whether the rule's forward action already sends all its traffic to the idle side.
    pub fn holds(&self, forward: &crate::domain::pair::Forward) -> bool {
        let Some((idle, _)) = self.weights.first() else {
            return false;
        };
        forward.weight_of(idle).is_some_and(|w| w > 0)
            && forward.weights.iter().all(|(tg, w)| *w == 0 || tg == idle)
    }
}

/// A change of the forward action's weights, and the new side's share after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shift {
    pub weights: Vec<(String, i32)>,
    /// The share of traffic on the new side after the shift, in percent.
    pub percent: u8,
    /// Index in `steps`, or none for a flip back.
    pub step: Option<usize>,
}

impl PairMove {
    pub fn start(pair: &Pair) -> Self {
        Self {
            from: pair.live.service.clone(),
            from_target_group: pair.live.target_group.clone(),
            to: pair.idle.service.clone(),
            to_target_group: pair.idle.target_group.clone(),
            traffic: pair.settings.traffic.clone(),
            steps: pair.settings.steps.clone(),
            step_wait_seconds: pair.settings.step_wait.num_seconds(),
            standby: pair.settings.standby,
            phase: PairPhase::Deploying,
            step: None,
            step_at: None,
            weights: Vec::new(),
            test_traffic: pair.settings.test_traffic.clone(),
            gate: pair.settings.gate.clone(),
            gated_at: None,
            guard_seconds: None,
            from_capacity: None,
            to_capacity: None,
        }
    }

    pub fn step_wait(&self) -> TimeDelta {
        TimeDelta::seconds(self.step_wait_seconds)
    }

    /// The share of traffic on the new side now.
    pub fn percent(&self) -> u8 {
        match self.phase {
            PairPhase::Deploying
            | PairPhase::Gated
            | PairPhase::Failed
            | PairPhase::FlippedBack => 0,
            _ => self
                .step
                .and_then(|i| self.steps.get(i))
                .copied()
                .unwrap_or(0),
        }
    }

    fn weights_at(&self, percent: u8) -> Vec<(String, i32)> {
        vec![
            (self.from_target_group.clone(), i32::from(100 - percent)),
            (self.to_target_group.clone(), i32::from(percent)),
        ]
    }

    /// The first step, once ECS completed the idle side's deployment; none while a gate holds
    /// it (see [`Self::close_gate`]).
    pub fn first_step(&self) -> Option<Shift> {
        (self.phase == PairPhase::Deploying && self.gate.is_none()).then(|| self.shift_to(0))
    }

    /// ECS completed the new side and a gate holds its traffic: the move waits at it from `now`;
    /// `guard` is the window the new side gets at 100%. `false` when there is no gate (or the
    /// move is not where a gate closes).
    pub fn close_gate(&mut self, now: DateTime<Utc>, guard: TimeDelta) -> bool {
        if self.phase != PairPhase::Deploying || self.gate.is_none() {
            return false;
        }
        self.phase = PairPhase::Gated;
        self.gated_at = Some(now);
        self.guard_seconds = Some(guard.num_seconds());
        true
    }

    /// The guard window the gate was closed with (30 minutes if it was not recorded).
    pub fn gate_guard(&self) -> TimeDelta {
        self.guard_seconds
            .map_or(TimeDelta::minutes(30), TimeDelta::seconds)
    }

    /// The first step, once the gate opened.
    pub fn open_gate(&self) -> Option<Shift> {
        (self.phase == PairPhase::Gated).then(|| self.shift_to(0))
    }

    /// A check that has given no verdict by `at` is failed.
    pub fn check_lapsed(&self, at: DateTime<Utc>) -> bool {
        self.phase == PairPhase::Gated
            && matches!(self.gate, Some(TrafficGate::Check { .. }))
            && self
                .gated_at
                .is_some_and(|since| at >= since + super::pair_gate::CHECK_LAPSE)
    }

    fn shift_to(&self, step: usize) -> Shift {
        let percent = self.steps.get(step).copied().unwrap_or(100);
        Shift {
            weights: self.weights_at(percent),
            percent,
            step: Some(step),
        }
    }

    /// The next step at `now`, if the current one held for `step-wait`; never a step skipped
    /// or repeated.
    pub fn next_step(&self, now: DateTime<Utc>) -> Option<Shift> {
        if self.phase != PairPhase::Shifting {
            return None;
        }
        let step = self.step?;
        let held = self.step_at.is_some_and(|at| now >= at + self.step_wait());
        (held && step + 1 < self.steps.len()).then(|| self.shift_to(step + 1))
    }

    /// The test traffic after `shift`: on the side that is about to go live, which is the new
    /// side until all production traffic is on it, and the old side from then on; after a flip
    /// back (or a revival) the new side is the idle one again.
    pub fn test_traffic_after(&self, shift: &Shift) -> Option<TestTraffic> {
        let to_new = shift.step.is_none() || shift.percent < 100;
        self.test_traffic_on(to_new)
    }

    /// The test traffic on the new side (`true`) or the old one.
    pub fn test_traffic_on(&self, new_side: bool) -> Option<TestTraffic> {
        let rule = self.test_traffic.clone()?;
        let (idle, live) = if new_side {
            (&self.to_target_group, &self.from_target_group)
        } else {
            (&self.from_target_group, &self.to_target_group)
        };
        Some(TestTraffic {
            rule,
            weights: vec![(idle.clone(), 1), (live.clone(), 0)],
        })
    }

    /// All traffic back on the old side.
    pub fn flip_back(&self) -> Shift {
        Shift {
            weights: self.weights_at(0),
            percent: 0,
            step: None,
        }
    }

    /// The state after a shift was set at `now`: at 100% the guard window starts.
    pub fn shifted(&mut self, shift: &Shift, now: DateTime<Utc>) {
        self.weights = shift.weights.clone();
        match shift.step {
            None => self.phase = PairPhase::FlippedBack,
            Some(step) => {
                self.step = Some(step);
                self.step_at = Some(now);
                self.phase = if shift.percent >= 100 {
                    PairPhase::Guarding
                } else {
                    PairPhase::Shifting
                };
            }
        }
    }

    /// Whether an alarm now flips the traffic back: before the guard window that starts at
    /// 100% ends (`guard_until`, set when it started).
    pub fn flips_on_alarm(&self, at: DateTime<Utc>, guard_until: Option<DateTime<Utc>>) -> bool {
        match self.phase {
            PairPhase::Shifting => true,
            PairPhase::Guarding => guard_until.is_none_or(|until| at < until),
            PairPhase::Deploying
            | PairPhase::Gated
            | PairPhase::Done
            | PairPhase::Reviving
            | PairPhase::FlippedBack
            | PairPhase::Failed => false,
        }
    }

    /// What `side` had before deckhand held it at 0, when this move did.
    pub fn saved_capacity(&self, side: &ServiceKey) -> Option<Capacity> {
        if side == &self.from {
            self.from_capacity
        } else if side == &self.to {
            self.to_capacity
        } else {
            None
        }
    }

    /// Keeps what `side` had before it was held at 0; a side held already keeps what was saved.
    pub fn save_capacity(&mut self, side: &ServiceKey, had: Option<Capacity>) {
        let Some(had) = had else { return };
        if side == &self.from {
            self.from_capacity = Some(had);
        } else if side == &self.to {
            self.to_capacity = Some(had);
        }
    }

    /// The other side of the pair, seen from `service`.
    pub fn other(&self, service: &ServiceKey) -> &ServiceKey {
        if service == &self.to {
            &self.from
        } else {
            &self.to
        }
    }
}

/// A move of `prod/web-blue` (target group `tg-blue`) to `prod/web-green` (`tg-green`) with
/// these steps, five minutes apart, for tests.
#[cfg(test)]
pub(crate) fn blue_to_green(steps: &[u8]) -> PairMove {
    use crate::domain::pair::{PairSettings, Side};
    PairMove::start(&Pair {
        live: Side {
            service: ServiceKey::new("prod", "web-blue"),
            target_group: "tg-blue".into(),
        },
        idle: Side {
            service: ServiceKey::new("prod", "web-green"),
            target_group: "tg-green".into(),
        },
        settings: PairSettings {
            partner: "web-green".into(),
            traffic: "listener".into(),
            steps: steps.to_vec(),
            step_wait: TimeDelta::minutes(5),
            standby: Standby::ScaleDown,
            test_traffic: Some("test-rule".into()),
            gate: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moving(steps: &[u8]) -> PairMove {
        blue_to_green(steps)
    }

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .to_utc()
            + TimeDelta::minutes(minute)
    }

    #[test]
    fn steps_move_in_order_each_after_its_wait_and_none_is_skipped_or_repeated() {
        let mut m = moving(&[10, 50, 100]);
        assert_eq!(m.percent(), 0);
        assert_eq!(
            m.next_step(at(60)),
            None,
            "not before ECS completed the deployment"
        );
        let first = m.first_step().unwrap();
        assert_eq!(
            first.weights,
            [("tg-blue".into(), 90), ("tg-green".into(), 10)]
        );
        m.shifted(&first, at(0));
        assert_eq!((m.phase, m.percent()), (PairPhase::Shifting, 10));
        assert_eq!(m.first_step(), None, "the first step happens once");
        assert_eq!(m.next_step(at(4)), None, "held less than step-wait");
        let second = m.next_step(at(5)).unwrap();
        assert_eq!(second.percent, 50);
        m.shifted(&second, at(5));
        // A reconcile that comes late takes one step, not two.
        let third = m.next_step(at(60)).unwrap();
        assert_eq!(third.percent, 100);
        m.shifted(&third, at(60));
        assert_eq!(m.phase, PairPhase::Guarding);
        assert_eq!(m.next_step(at(600)), None);
    }

    #[test]
    fn a_gate_holds_the_first_step_until_it_opens_and_a_silent_check_lapses() {
        let mut m = moving(&[10, 100]);
        assert!(!m.close_gate(at(0), TimeDelta::minutes(20)), "no gate");
        m.gate = Some(TrafficGate::Check {
            function: "smoke".into(),
        });
        assert_eq!(m.first_step(), None, "the gate holds it");
        assert!(m.close_gate(at(5), TimeDelta::minutes(20)));
        assert_eq!(m.gate_guard(), TimeDelta::minutes(20));
        assert_eq!((m.phase, m.percent()), (PairPhase::Gated, 0));
        assert!(!m.close_gate(at(6), TimeDelta::minutes(20)), "closed once");
        assert!(!m.flips_on_alarm(at(6), None), "no traffic to flip back");
        assert!(!m.check_lapsed(at(14)));
        assert!(m.check_lapsed(at(15)));
        let first = m.open_gate().unwrap();
        assert_eq!(first.percent, 10);
        m.shifted(&first, at(16));
        assert_eq!(m.open_gate(), None);
        assert!(!m.check_lapsed(at(60)));
        m.gate = Some(TrafficGate::Approve);
        m.phase = PairPhase::Gated;
        assert!(
            !m.check_lapsed(at(600)),
            "an approval waits for its operator"
        );
    }

    #[test]
    fn the_test_traffic_follows_the_side_about_to_go_live() {
        let mut m = moving(&[10, 100]);
        let on = |t: Option<TestTraffic>| {
            let t = t.unwrap();
            assert_eq!(t.rule, "test-rule");
            t.weights
                .iter()
                .find(|(_, w)| *w > 0)
                .map(|(tg, _)| tg.clone())
                .unwrap()
        };
        let first = m.first_step().unwrap();
        assert_eq!(
            on(m.test_traffic_after(&first)),
            "tg-green",
            "10% moved: green is next"
        );
        m.shifted(&first, at(0));
        let all = m.next_step(at(5)).unwrap();
        assert_eq!(
            on(m.test_traffic_after(&all)),
            "tg-blue",
            "green is live: blue is idle"
        );
        m.shifted(&all, at(5));
        let back = m.flip_back();
        assert_eq!(
            on(m.test_traffic_after(&back)),
            "tg-green",
            "flipped back: green is idle"
        );
        let test = m.test_traffic_after(&back).unwrap();
        let forward = |weights: &[(&str, i32)]| crate::domain::pair::Forward {
            arn: "test-rule".into(),
            weights: weights.iter().map(|(t, w)| ((*t).to_owned(), *w)).collect(),
            source: Default::default(),
        };
        assert!(
            test.holds(&forward(&[("tg-green", 1)])),
            "a plain forward to green"
        );
        assert!(test.holds(&forward(&[("tg-blue", 0), ("tg-green", 5)])));
        assert!(!test.holds(&forward(&[("tg-blue", 1)])));
        assert!(!test.holds(&forward(&[("tg-blue", 1), ("tg-green", 1)])));
        m.test_traffic = None;
        assert_eq!(m.test_traffic_after(&back), None);
    }

    #[test]
    fn an_alarm_flips_back_while_shifting_and_inside_the_guard_window_only() {
        let mut m = moving(&[100]);
        assert!(!m.flips_on_alarm(at(0), None), "nothing moved yet");
        let all = m.first_step().unwrap();
        m.shifted(&all, at(0));
        assert_eq!(m.phase, PairPhase::Guarding);
        assert!(m.flips_on_alarm(at(10), Some(at(30))));
        assert!(!m.flips_on_alarm(at(30), Some(at(30))));
        let back = m.flip_back();
        assert_eq!(
            back.weights,
            [("tg-blue".into(), 100), ("tg-green".into(), 0)]
        );
        m.shifted(&back, at(10));
        assert_eq!((m.phase, m.percent()), (PairPhase::FlippedBack, 0));
        assert!(
            !m.flips_on_alarm(at(11), Some(at(30))),
            "one flip per deployment"
        );
        assert_eq!(m.other(&m.to.clone()), &m.from);
    }
}
