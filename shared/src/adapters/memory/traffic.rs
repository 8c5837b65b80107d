//! A load balancer's listener rules in memory: the forward action a pair moves.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::guard;
use crate::domain::fleet::Source;
use crate::domain::pair::Forward;
use crate::ports::{PortError, PortErrorKind, PortResult, Traffic};

/// Target group ARNs and their weights.
pub type Weights = Vec<(String, i32)>;

/// Listeners and rules in memory: the forward action's weights per ARN, and every change made.
#[derive(Default)]
pub struct MemoryTraffic {
    forwards: Mutex<HashMap<String, Weights>>,
    changes: Mutex<Vec<(String, Weights)>>,
    failing: Mutex<bool>,
    /// Listeners and rules without the tag that designates them; every other one has it.
    undesignated: Mutex<BTreeSet<String>>,
}

impl MemoryTraffic {
    /// A listener or rule forwarding to these target groups with these weights.
    pub fn forward_to(&self, arn: &str, weights: &[(&str, i32)]) {
        guard(&self.forwards).insert(
            arn.to_owned(),
            weights.iter().map(|(t, w)| ((*t).to_owned(), *w)).collect(),
        );
    }

    /// The weights the forward action has now.
    pub fn weights(&self, arn: &str) -> Weights {
        guard(&self.forwards).get(arn).cloned().unwrap_or_default()
    }

    /// Every `set_weights`, in order.
    pub fn changes(&self) -> Vec<(String, Weights)> {
        guard(&self.changes).clone()
    }

    /// Makes every later change fail (throttled), or heals it.
    pub fn fail(&self, failing: bool) {
        *guard(&self.failing) = failing;
    }

    /// Takes the designation (`deckhand:traffic` = `managed`) off a listener or rule.
    pub fn undesignate(&self, arn: &str) {
        guard(&self.undesignated).insert(arn.to_owned());
    }
}

#[async_trait]
impl Traffic for MemoryTraffic {
    async fn designated(&self, arn: &str) -> PortResult<bool> {
        Ok(!guard(&self.undesignated).contains(arn))
    }

    async fn forward(&self, arn: &str) -> PortResult<Forward> {
        let weights = guard(&self.forwards)
            .get(arn)
            .cloned()
            .ok_or_else(|| PortError::new("DescribeListeners", PortErrorKind::NotFound, arn))?;
        Ok(Forward {
            arn: arn.to_owned(),
            weights,
            source: Source::default(),
        })
    }

    async fn set_weights(&self, forward: &Forward, weights: &[(String, i32)]) -> PortResult<()> {
        if *guard(&self.failing) {
            return Err(PortError::new(
                "ModifyListener",
                PortErrorKind::Transient,
                "Throttling: Rate exceeded",
            ));
        }
        let mut forwards = guard(&self.forwards);
        let current = forwards.entry(forward.arn.clone()).or_default();
        for (tg, weight) in weights {
            match current.iter_mut().find(|(t, _)| t == tg) {
                Some(entry) => entry.1 = *weight,
                None => current.push((tg.clone(), *weight)),
            }
        }
        guard(&self.changes).push((forward.arn.clone(), weights.to_vec()));
        Ok(())
    }
}
