//! An operator's `wake` or `sleep` of one service, kept for a while: stored as an override that
//! later reconciles honour, and applied at once.

use super::{Job, Mode, SchedulerError, SchedulerFunction, planned, rfc3339};
use crate::domain::service::ServiceKey;
use crate::domain::settings::{DeploySettings, ScheduleSettings, TAG_AWAKE};
use crate::domain::sleep::{Observed, decide_scale};
use crate::domain::state::{OperatorOverride, ServiceState};
use crate::events::EventError;
use crate::events::scheduler::Expiry;
use crate::report::Summary;

impl SchedulerFunction {
    /// An operator's `wake` or `sleep`: stored as an override that later reconciles honour,
    /// and applied at once.
    pub(super) async fn operator(
        &self,
        key: &ServiceKey,
        awake: bool,
        until: Option<Expiry>,
        mode: Mode,
        cause: &str,
    ) -> Result<Summary, SchedulerError> {
        let now = self.ports.clock.now();
        let one = std::slice::from_ref(key);
        let (services, capacities, state) = futures::try_join!(
            self.ports.ecs.describe_services(one),
            self.ports.autoscaling.scalable_targets(one),
            self.ports.store.load(key),
        )
        .map_err(SchedulerError::Discovery)?;
        let Some(service) = services.into_iter().next() else {
            return Ok(Summary::ignored(format!("service {key} does not exist")));
        };
        if !service.tags.contains_key(TAG_AWAKE) && state.sleep.is_none() {
            return Ok(Summary::ignored(format!(
                "{key} has no {TAG_AWAKE} tag: deckhand does not schedule it"
            )));
        }
        // Tags that do not parse leave the schedule unknown; the operator's word still holds.
        let settings = ScheduleSettings::from_tags(&service.tags, self.config.timezone)
            .ok()
            .flatten();
        let until = match until {
            Some(expiry) => expiry.at(now),
            None => settings
                .as_ref()
                .and_then(|s| s.schedule.next_wake(now))
                .ok_or_else(|| {
                    EventError::new(
                        "for",
                        "missing: the service has no valid schedule to wake it; give for or until",
                    )
                })?,
        };
        if until <= now {
            return Err(EventError::new(
                "until",
                format!("{} is not in the future", rfc3339(until)),
            )
            .into());
        }
        // An operator's sleep is not held back by a pair's move.
        let observed = Observed {
            desired_count: service.desired_count,
            scalable: capacities.get(key).copied(),
            pair_moving: None,
        };
        let set_override = OperatorOverride {
            awake,
            until,
            at: now,
            cause: cause.to_owned(),
        };
        let report = if mode.plan {
            let state = ServiceState {
                operator_override: Some(set_override),
                ..state
            };
            let decision = decide_scale(settings.as_ref(), &observed, &state, now, mode.dry_run);
            planned(key, &decision, &observed)
        } else {
            let job = Job {
                key,
                settings: settings.as_ref(),
                observed,
                at: now,
                cause,
                set_override: Some(set_override),
                guard: DeploySettings::guard_in(&service.tags, self.config.guard),
                read: None,
            };
            self.act(job, mode).await
        };
        let mut summary = Summary::of(vec![report], String::new);
        summary.dry_run = mode.plan;
        Ok(summary)
    }
}
