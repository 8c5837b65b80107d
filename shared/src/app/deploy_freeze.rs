//! Change freezes under the service's lock (`domain::freeze`): a push or promotion that would
//! move the service while its change calendar is CLOSED (or cannot be read) is held, the newest
//! per service, and deploys when the calendar is OPEN: at the calendar's own state-change event,
//! else at the deploy function's next round of held pushes (EventBridge delivers calendar events
//! on a best-effort basis). An operator may release one through the freeze.

use serde_json::json;
use tracing::{info, warn};

use super::{DeployFunction, Target, push_details, push_name, push_record, report};
use crate::domain::deploy::Push;
use crate::domain::fleet::ImageChange;
use crate::domain::freeze::{
    CalendarState, FreezeVerdict, freeze_verdict, lifted, superseded_by_held,
};
use crate::domain::service::ServiceKey;
use crate::domain::state::{HeldPush, WaitingPush};
use crate::events::calendar::CalendarChanged;
use crate::history::HistoryRecord;
use crate::notification::{Kind, Notification, Severity};
use crate::ports::Locked;
use crate::report::Summary;
use crate::report::{Action, ServiceReport};

impl DeployFunction {
    /// A change calendar opened: the pushes its freeze held deploy, each as its push would
    /// (the calendar is read again under each service's lock). One that closed changes nothing.
    pub(super) async fn on_calendar(&self, changed: &CalendarChanged) -> Summary {
        let name = changed.calendar.as_str();
        if changed.state == CalendarState::Closed {
            return Summary::ignored(format!(
                "change calendar {name} closed: pushes that would deploy are held from now on"
            ));
        }
        let names_it =
            |calendar: &str| calendar == name || calendar.ends_with(&format!(":document/{name}"));
        let reports = self
            .release_held_where(None, |h| h.calendar.as_deref().is_some_and(names_it))
            .await;
        Summary::of(reports, || {
            format!("change calendar {name} opened; no push was held by it")
        })
    }

    /// The freeze's word on a push that would move the service, under its lock: the calendar is
    /// read at the function's clock, unless an operator lifted the freeze for this very push.
    pub(super) async fn freeze(
        &self,
        push: &Push,
        target: &Target,
        locked: &Locked,
    ) -> FreezeVerdict {
        let held = locked
            .state
            .held
            .as_ref()
            .filter(|h| h.push.event_id == push.event_id);
        if let Some((operator, held)) = held.and_then(|h| Some((h.lifted_by.as_deref()?, h))) {
            return lifted(operator, held.calendar.as_deref());
        }
        let calendar = target.calendar.as_deref();
        let state = match calendar {
            Some(calendar) => Some(
                self.ports
                    .calendars
                    .state(calendar, self.ports.clock.now())
                    .await
                    .map_err(|e| e.to_string()),
            ),
            None => None,
        };
        freeze_verdict(calendar, state)
    }

    /// Holds the push for the freeze: the newest per service, an older one superseded (said in
    /// its record), one held already kept quietly.
    pub(super) async fn hold_for_freeze(
        &self,
        push: &Push,
        target: &Target,
        changes: &[ImageChange],
        locked: Locked,
        reason: String,
    ) -> ServiceReport {
        let key = &target.service.key;
        let calendar = target.calendar.clone().unwrap_or_default();
        let now = self.ports.clock.now();
        let running = target.task_definition.arn.as_str();
        let mut state = locked.state.clone();
        let mut held = report(key, Action::Held, reason.clone());
        held.from = Some(crate::domain::service::revision_name(running).to_owned());
        held.digest = Some(push.digest.to_string());
        let before = state.held.take();
        match &before {
            // Held already by this freeze (a round that found the calendar still closed): kept
            // quietly.
            Some(h)
                if h.push.event_id == push.event_id && h.calendar.as_deref() == Some(&calendar) =>
            {
                if let Err(e) = self.ports.store.release(key, &locked.owner).await {
                    warn!(error = %e, "could not give back the lock; it expires with its lease");
                }
                return held;
            }
            // A newer push is held: this one, accepted earlier by ECR, goes no further.
            Some(h) if superseded_by_held(h.push.pushed_at, push.at) => {
                let why = format!(
                    "superseded while change calendar {calendar} is CLOSED: the newer push {} is held",
                    h.push.event_id
                );
                return self.superseded(push, key, &locked, why).await;
            }
            _ => {}
        }
        state.held = Some(HeldPush {
            push: WaitingPush::new(push, now),
            behind: None,
            group: String::new(),
            calendar: Some(calendar.clone()),
            lifted_by: None,
        });
        let mut records = vec![{
            let mut record = push_record(key, push, now, Action::Held, reason.clone());
            record.from = Some(running.to_owned());
            record
        }];
        // The push it replaces deploys no more.
        if let Some(older) = before.filter(|h| h.push.event_id != push.event_id) {
            let older = older.push.push();
            records.push(push_record(
                key,
                &older,
                now,
                Action::Skipped,
                format!(
                    "superseded while change calendar {calendar} is CLOSED: the newer push {} is held instead",
                    push.event_id
                ),
            ));
        }
        if let Err(e) = self
            .commit_records(key, &locked, &state, &records, push)
            .await
        {
            return self.failed(key, push, None, e).await;
        }
        info!(%calendar, "held for the freeze");
        let mut details = push_details(push, changes, Some(running), None);
        details["calendar"] = json!(calendar);
        self.notify(Notification::new(
            Kind::DeployHeld,
            Severity::Info,
            key.to_string(),
            format!(
                "Holding {} for {key}: change calendar {calendar} is CLOSED",
                push_name(push)
            ),
            now,
            details,
        ))
        .await;
        held
    }

    async fn superseded(
        &self,
        push: &Push,
        key: &ServiceKey,
        locked: &Locked,
        why: String,
    ) -> ServiceReport {
        let record = push_record(
            key,
            push,
            self.ports.clock.now(),
            Action::Skipped,
            why.clone(),
        );
        let state = locked.state.clone();
        if let Err(e) = self
            .commit_records(key, locked, &state, std::slice::from_ref(&record), push)
            .await
        {
            return self.failed(key, push, None, e).await;
        }
        super::skipped(key, push, why)
    }

    async fn commit_records(
        &self,
        key: &ServiceKey,
        locked: &Locked,
        state: &crate::domain::state::ServiceState,
        records: &[HistoryRecord],
        push: &Push,
    ) -> Result<(), crate::ports::PortError> {
        let mark = crate::history::ProcessedMark {
            event_id: push.event_id.clone(),
            service: key.clone(),
            at: self.ports.clock.now(),
        };
        self.ports
            .store
            .commit(key, locked, state, records, Some(&mark))
            .await
    }
}
