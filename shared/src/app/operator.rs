//! What an operator does to one service by hand: pause and resume automatic deploys, lift a
//! quarantine, name the known-good revision. Each change goes under the service's lock and
//! into its history.

use std::collections::BTreeSet;

use chrono::SecondsFormat;

use super::Ports;
use super::locking::{acquire, owner_token};
use crate::domain::image::{Digest, ImageRef};
use crate::domain::service::{ServiceKey, revision_name};
use crate::domain::state::{Paused, ServiceState};
use crate::history::HistoryRecord;
use crate::ports::{Locked, PortError, PortErrorKind};
use crate::report::{Action, ServiceReport};

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("{0} does not exist")]
    UnknownService(ServiceKey),
    #[error("digest {digest} is not quarantined for {service}")]
    NotQuarantined { service: ServiceKey, digest: String },
    #[error("{0} is not a task definition revision ECS knows")]
    UnknownRevision(String),
    #[error(
        "{revision} runs digest {digest}, which is quarantined for {service}; release it first"
    )]
    QuarantinedRevision {
        service: ServiceKey,
        revision: String,
        digest: String,
    },
    #[error("no deployment of {0} waits at a pause hook")]
    NothingAwaiting(ServiceKey),
    #[error("no push of {0} is held")]
    NothingHeld(ServiceKey),
    #[error("{0} takes no promotions (no deckhand:promote-from)")]
    NotPromoted(ServiceKey),
    #[error("{upstream} has announced no known-good revision here yet")]
    NothingAnnounced { upstream: String },
    #[error("{0}")]
    Deploy(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The operator's requests, as the CLI (or any other front end) makes them.
pub struct Operator {
    ports: Ports,
    /// Who asks, for the history: a user name or a role.
    by: String,
}

impl Operator {
    pub fn new(ports: Ports, by: impl Into<String>) -> Self {
        Self {
            ports,
            by: by.into(),
        }
    }

    /// Freezes automatic deploys of the service: pushes are recorded as skipped.
    pub async fn pause(&self, service: &ServiceKey) -> Result<ServiceReport, OperatorError> {
        self.change(service, "pause", |state, by, now| match &state.paused {
            Some(p) => Ok((
                Action::Unchanged,
                format!(
                    "deploys were already paused since {} by {}",
                    p.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    p.by
                ),
            )),
            None => {
                state.paused = Some(Paused {
                    at: now,
                    by: by.to_owned(),
                });
                Ok((Action::Paused, format!("deploys paused by {by}")))
            }
        })
        .await
    }

    pub async fn resume(&self, service: &ServiceKey) -> Result<ServiceReport, OperatorError> {
        self.change(service, "resume", |state, by, _| {
            match state.paused.take() {
                Some(_) => Ok((Action::Resumed, format!("deploys resumed by {by}"))),
                None => Ok((Action::Unchanged, "deploys were not paused".into())),
            }
        })
        .await
    }

    /// Deploys the push held for the service through its change freeze (or a busy CodeDeploy
    /// group, which may hold it again): the lift is recorded with the operator, then the push
    /// goes the way of any held push, every other gate included.
    pub async fn deploy_held(
        &self,
        service: &ServiceKey,
        config: crate::config::Config,
    ) -> Result<Vec<ServiceReport>, OperatorError> {
        let lifted = self
            .change(service, "deploy-held", |state, by, _| {
                match state.held.as_mut() {
                    None => Err(OperatorError::NothingHeld(service.clone())),
                    Some(held) => {
                        held.lifted_by = Some(by.to_owned());
                        let why = held.calendar.as_deref().map_or_else(
                            || "held while its CodeDeploy group was busy".to_owned(),
                            |c| format!("held by the freeze of change calendar {c}"),
                        );
                        Ok((
                            Action::Recorded,
                            format!("{by} deploys the push {} ({why}) now", held.push.event_id),
                        ))
                    }
                }
            })
            .await?;
        let deploy = crate::app::deploy::DeployFunction::new(self.ports.clone(), config);
        let mut reports = vec![lifted];
        reports.extend(deploy.release_held(Some(service)).await);
        Ok(reports)
    }

    /// Deploys to a promoted service the known-good revision its upstream last announced (the
    /// stack keeps the newest announcement), by hand: every gate of a promotion applies.
    pub async fn promote(
        &self,
        service: &ServiceKey,
        config: crate::config::Config,
    ) -> Result<Vec<ServiceReport>, OperatorError> {
        let view = self.described(service).await?;
        let upstream = crate::domain::promotion::promote_from_of(&view.tags)
            .ok()
            .flatten()
            .ok_or_else(|| OperatorError::NotPromoted(service.clone()))?;
        let home = config.home().map(|h| h.account).unwrap_or_default();
        let name = format!(
            "{}/{}",
            upstream.account.as_deref().unwrap_or(&home),
            upstream.service
        );
        let event = self.ports.store.announcement(&name).await?.ok_or_else(|| {
            OperatorError::NothingAnnounced {
                upstream: name.clone(),
            }
        })?;
        let revision = event["detail"]["revision"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        let recorded = self
            .change(service, "promote", |_, by, _| {
                Ok((
                    Action::Recorded,
                    format!("{by} promotes {revision}, the known-good revision {name} announced, by hand"),
                ))
            })
            .await?;
        let now = self.ports.clock.now();
        let id = format!("promote@{}", now.to_rfc3339_opts(SecondsFormat::Secs, true));
        let deploy = crate::app::deploy::DeployFunction::new(self.ports.clone(), config);
        let summary = deploy
            .promote_kept(&event, &id)
            .await
            .map_err(|e| OperatorError::Deploy(e.to_string()))?;
        let mut reports = vec![recorded];
        let own = service.to_string();
        reports.extend(summary.services.into_iter().filter(|r| r.service == own));
        Ok(reports)
    }

    /// Lifts the quarantine of a digest: its next push deploys.
    pub async fn release(
        &self,
        service: &ServiceKey,
        digest: &Digest,
    ) -> Result<ServiceReport, OperatorError> {
        // An old quarantine may be archived out of the state.
        let archived = self
            .ports
            .store
            .archived_quarantine(service, digest.as_str())
            .await?;
        let report = self
            .change(service, "release", |state, by, _| {
                match state
                    .quarantine
                    .remove(digest.as_str())
                    .or(archived.clone())
                {
                    Some(q) => Ok((
                        Action::Released,
                        format!(
                            "digest {} released by {by} (quarantined since {}: {})",
                            digest.short(),
                            q.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                            q.reason
                        ),
                    )),
                    None => Err(OperatorError::NotQuarantined {
                        service: service.clone(),
                        digest: digest.to_string(),
                    }),
                }
            })
            .await?;
        if archived.is_some() {
            // Recorded as released; the archived copy goes after (a failure here is said, and a
            // second release finishes it).
            self.ports
                .store
                .release_archived_quarantine(service, digest.as_str())
                .await?;
        }
        Ok(report)
    }

    /// Names the revision (`family:revision` or an ARN) that rollbacks go to, until a
    /// deployment completed later proves itself. Never one that runs a quarantined digest.
    pub async fn known_good(
        &self,
        service: &ServiceKey,
        revision: &str,
    ) -> Result<ServiceReport, OperatorError> {
        let td = match self.ports.ecs.describe_task_definition(revision).await {
            Ok(td) => td,
            Err(e)
                if e.kind == PortErrorKind::NotFound || e.message.contains("ClientException") =>
            {
                return Err(OperatorError::UnknownRevision(revision.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let digests: Vec<String> = td
            .containers
            .iter()
            .filter_map(|c| Some(ImageRef::parse(&c.image)?.digest?.to_owned()))
            .collect();
        let mut archived = BTreeSet::new();
        for digest in &digests {
            if self
                .ports
                .store
                .archived_quarantine(service, digest)
                .await?
                .is_some()
            {
                archived.insert(digest.clone());
            }
        }
        self.change(service, "known-good", |state, by, now| {
            if let Some(digest) = digests
                .iter()
                .find(|d| state.quarantine.contains_key(*d) || archived.contains(*d))
            {
                return Err(OperatorError::QuarantinedRevision {
                    service: service.clone(),
                    revision: revision_name(&td.arn).to_owned(),
                    digest: digest.clone(),
                });
            }
            let before = state
                .known_good_at(now)
                .map(|k| revision_name(k).to_owned());
            let name = revision_name(&td.arn).to_owned();
            if before.as_deref() == Some(name.as_str())
                && state.known_good.as_deref() == Some(td.arn.as_str())
            {
                return Ok((
                    Action::Unchanged,
                    format!("{name} is already the known-good revision"),
                ));
            }
            state.set_known_good(&td.arn, now);
            let was = before.map_or(String::new(), |b| format!(" (was {b})"));
            Ok((
                Action::KnownGood,
                format!("known-good revision set to {name} by {by}{was}"),
            ))
        })
        .await
    }

    /// Applies `edit` to the locked state; an error changes nothing.
    async fn change(
        &self,
        service: &ServiceKey,
        verb: &str,
        edit: impl FnOnce(
            &mut ServiceState,
            &str,
            chrono::DateTime<chrono::Utc>,
        ) -> Result<(Action, String), OperatorError>,
    ) -> Result<ServiceReport, OperatorError> {
        self.described(service).await?;
        let now = self.ports.clock.now();
        let cause = self.cause(verb, now);
        let owner = owner_token(&cause);
        let locked = acquire(&*self.ports.store, &*self.ports.clock, service, &owner).await?;
        let mut state = locked.state.clone();
        let (action, reason) = match edit(&mut state, &self.by, now) {
            Ok(done) => done,
            Err(e) => {
                self.release_lock(service, &locked).await;
                return Err(e);
            }
        };
        let record = HistoryRecord::new(service, now, action, reason.clone(), &cause);
        self.ports
            .store
            .commit(service, &locked, &state, &[record], None)
            .await?;
        Ok(ServiceReport::new(service, action, reason))
    }

    /// The service as ECS describes it; an unknown one is an error.
    async fn described(
        &self,
        service: &ServiceKey,
    ) -> Result<crate::domain::fleet::ServiceView, OperatorError> {
        let described = self
            .ports
            .ecs
            .describe_services(std::slice::from_ref(service))
            .await?;
        described
            .into_iter()
            .next()
            .ok_or_else(|| OperatorError::UnknownService(service.clone()))
    }

    /// The cause of the history records of one request.
    fn cause(&self, verb: &str, now: chrono::DateTime<chrono::Utc>) -> String {
        format!(
            "{verb}#{}@{}",
            self.by,
            now.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }

    async fn release_lock(&self, service: &ServiceKey, locked: &Locked) {
        if let Err(e) = self.ports.store.release(service, &locked.owner).await {
            tracing::warn!(error = %e, "could not release the lock; it expires with its lease");
        }
    }
}

#[path = "operator_approval.rs"]
mod approval;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use serde_json::json;

    use super::*;
    use crate::adapters::memory::{
        FixedClock, MemoryAlarms, MemoryAutoscaling, MemoryEcr, MemoryEcs, MemoryNotifier,
        MemoryStore,
    };
    use crate::app::deploy::DeployFunction;
    use crate::config::Config;
    use crate::ports::StateStore as _;
    use crate::report::Outcome;

    const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    pub(super) struct World {
        pub(super) ecs: Arc<MemoryEcs>,
        pub(super) store: Arc<MemoryStore>,
        pub(super) operator: Operator,
        pub(super) deploy: DeployFunction,
        pub(super) web: ServiceKey,
        pub(super) ecr: Arc<MemoryEcr>,
    }

    impl World {
        /// The event of a push ECR took.
        pub(super) fn pushed(&self, event: serde_json::Value) -> serde_json::Value {
            self.ecr.receive(&event);
            event
        }
    }

    pub(super) fn world() -> World {
        let ecs = Arc::new(MemoryEcs::new());
        let store = Arc::new(MemoryStore::default());
        let ecr = Arc::new(MemoryEcr::default());
        let ports = Ports {
            ecs: ecs.clone(),
            ecr: ecr.clone(),
            autoscaling: Arc::new(MemoryAutoscaling::default()),
            alarms: Arc::new(MemoryAlarms::default()),
            traffic: Arc::new(crate::adapters::memory::MemoryTraffic::default()),
            codedeploy: Arc::new(crate::adapters::memory::MemoryCodeDeploy::default()),
            checks: Arc::new(crate::adapters::memory::MemoryChecks::default()),
            announcer: Arc::new(crate::adapters::memory::MemoryAnnouncer::default()),
            calendars: Arc::new(crate::adapters::memory::MemoryCalendars::default()),
            store: store.clone(),
            images: store.clone(),
            pace: store.clone(),
            notifier: Arc::new(MemoryNotifier::default()),
            metrics: Arc::new(MemoryNotifier::default()),
            clock: Arc::new(FixedClock::new(utc("2026-11-23T10:00:00Z"))),
        };
        let config = Config::for_tests(false);
        let web = ServiceKey::new("prod", "web");
        let td = ecs.add_task_definition("web", &[("web", &format!("{HOST}/web:1"))]);
        ecs.add_service(&web, &td, &[("deckhand:deploy", "any")]);
        World {
            operator: Operator::new(ports.clone(), "alice"),
            deploy: DeployFunction::new(ports, config),
            ecs,
            store,
            web,
            ecr,
        }
    }

    pub(super) fn push(id: &str, d: char, minute: u32) -> serde_json::Value {
        json!({"version": "0", "id": id, "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": format!("2026-11-23T10:{minute:02}:00Z"), "region": "eu-west-1",
            "resources": [], "detail": {"result": "SUCCESS", "repository-name": "web",
            "image-digest": format!("sha256:{}", d.to_string().repeat(64)), "action-type": "PUSH", "image-tag": "2"}})
    }

    #[tokio::test]
    async fn a_push_while_paused_is_skipped_and_deploys_after_resume() {
        let w = world();
        let paused = w.operator.pause(&w.web).await.unwrap();
        assert_eq!(paused.action, Action::Paused);
        assert_eq!(
            w.operator.pause(&w.web).await.unwrap().action,
            Action::Unchanged
        );
        let s = w
            .deploy
            .handle(&w.pushed(push("p1", 'b', 1)))
            .await
            .unwrap();
        assert_eq!(s.outcome, Outcome::Skipped);
        assert!(s.services[0].reason.contains("paused"), "{s:?}");
        assert_eq!(w.ecs.revisions(), 1);
        assert_eq!(
            w.operator.resume(&w.web).await.unwrap().action,
            Action::Resumed
        );
        let s = w
            .deploy
            .handle(&w.pushed(push("p2", 'b', 2)))
            .await
            .unwrap();
        assert_eq!(s.outcome, Outcome::Deployed);
        let actions: Vec<Action> = w.store.all_history().iter().map(|r| r.action).collect();
        assert_eq!(
            actions,
            [
                Action::Paused,
                Action::Unchanged,
                Action::Skipped,
                Action::Resumed,
                Action::Deployed
            ]
        );
    }

    #[tokio::test]
    async fn releasing_a_quarantine_lets_the_digest_deploy_and_a_wrong_release_changes_nothing() {
        let w = world();
        let digest: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        let mut state = ServiceState::default();
        state.quarantine(
            &digest,
            "rolled back".into(),
            utc("2026-11-23T09:00:00Z"),
            None,
        );
        w.store.put_state(&w.web, state);
        assert_eq!(
            w.deploy
                .handle(&w.pushed(push("p1", 'b', 1)))
                .await
                .unwrap()
                .outcome,
            Outcome::Skipped
        );

        let other: Digest = format!("sha256:{}", "c".repeat(64)).parse().unwrap();
        let e = w.operator.release(&w.web, &other).await.unwrap_err();
        assert!(matches!(e, OperatorError::NotQuarantined { .. }), "{e}");
        assert!(!w.store.is_locked(&w.web));
        let e = w
            .operator
            .release(&ServiceKey::new("prod", "ghost"), &digest)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "prod/ghost does not exist");

        let released = w.operator.release(&w.web, &digest).await.unwrap();
        assert_eq!(released.action, Action::Released);
        assert!(w.store.load(&w.web).await.unwrap().quarantine.is_empty());
        assert_eq!(
            w.deploy
                .handle(&w.pushed(push("p2", 'b', 2)))
                .await
                .unwrap()
                .outcome,
            Outcome::Deployed
        );
    }

    /// However many digests a service quarantined, its item keeps the newest hundred and the
    /// store archives the rest: every one still holds, and an archived one can be released.
    #[tokio::test]
    async fn two_thousand_quarantines_stay_small_and_every_one_holds() {
        use crate::domain::state::QUARANTINE_KEPT;
        use crate::ports::LockAttempt;
        let w = world();
        let digest = |i: u64| -> Digest { format!("sha256:{i:064x}").parse().unwrap() };
        let t0 = utc("2026-11-01T00:00:00Z");
        let LockAttempt::Acquired(locked) = w
            .store
            .lock(&w.web, "test#1", t0, chrono::TimeDelta::seconds(90))
            .await
            .unwrap()
        else {
            panic!("the lock is free");
        };
        let mut state = locked.state.clone();
        for i in 0..2_000 {
            let reason = format!(
                "the deployment of web:{i} failed: ECS deployment circuit breaker: tasks failed to start (CannotPullContainerError)"
            );
            let at = t0 + chrono::TimeDelta::minutes(i64::try_from(i).unwrap());
            state.quarantine(&digest(i), reason, at, None);
        }
        w.store
            .commit(&w.web, &locked, &state, &[], None)
            .await
            .unwrap();
        let stored = w.store.load(&w.web).await.unwrap();
        assert_eq!(stored.quarantine.len(), QUARANTINE_KEPT);
        assert!(stored.quarantine_archived);
        assert!(
            stored.quarantine.contains_key(digest(1_999).as_str()),
            "the newest stay"
        );
        let size = serde_json::to_vec(&stored).unwrap().len();
        assert!(size < 40_000, "the state is {size} bytes");
        for i in 0..2_000 {
            let d = digest(i);
            let kept = stored.quarantine.contains_key(d.as_str())
                || w.store
                    .archived_quarantine(&w.web, d.as_str())
                    .await
                    .unwrap()
                    .is_some();
            assert!(kept, "quarantine {i} was dropped");
        }

        // The oldest, archived, still keeps its digest out.
        let oldest = digest(0);
        let event = |id: &str, minute: u32| {
            json!({"version": "0", "id": id, "detail-type": "ECR Image Action", "source": "aws.ecr",
                "account": "123456789012", "time": format!("2026-11-23T10:{minute:02}:00Z"), "region": "eu-west-1",
                "resources": [], "detail": {"result": "SUCCESS", "repository-name": "web",
                "image-digest": oldest.to_string(), "action-type": "PUSH", "image-tag": "2"}})
        };
        let skipped = w.deploy.handle(&w.pushed(event("p1", 1))).await.unwrap();
        assert_eq!(skipped.outcome, Outcome::Skipped, "{skipped:?}");
        assert!(
            skipped.services[0].reason.contains("quarantined"),
            "{skipped:?}"
        );

        // Released, archived or not: the next push deploys it, and the archive has it no more.
        let released = w.operator.release(&w.web, &oldest).await.unwrap();
        assert_eq!(released.action, Action::Released);
        assert!(
            w.store
                .archived_quarantine(&w.web, oldest.as_str())
                .await
                .unwrap()
                .is_none()
        );
        let deployed = w.deploy.handle(&w.pushed(event("p2", 2))).await.unwrap();
        assert_eq!(deployed.outcome, Outcome::Deployed, "{deployed:?}");
    }

    /// An operator names the known-good revision; one pinning a quarantined digest, or one ECS
    /// does not know, is refused and changes nothing.
    #[tokio::test]
    async fn an_operator_names_the_known_good_revision_never_a_quarantined_one() {
        let w = world();
        let good = w
            .ecs
            .add_task_definition("web", &[("web", &format!("{HOST}/web:0"))]);
        let set = w.operator.known_good(&w.web, &good).await.unwrap();
        assert_eq!(set.action, Action::KnownGood, "{set:?}");
        assert!(
            set.reason
                .starts_with("known-good revision set to web:2 by alice"),
            "{set:?}"
        );
        let state = w.store.load(&w.web).await.unwrap();
        assert_eq!(state.known_good.as_deref(), Some(good.as_str()));
        assert_eq!(
            w.operator.known_good(&w.web, &good).await.unwrap().action,
            Action::Unchanged
        );

        let digest = format!("sha256:{}", "e".repeat(64));
        let pinned = w
            .ecs
            .add_task_definition("web", &[("web", &format!("{HOST}/web@{digest}"))]);
        let mut state = w.store.load(&w.web).await.unwrap();
        state.quarantine(
            &digest.parse().unwrap(),
            "rolled back".into(),
            utc("2026-11-23T09:00:00Z"),
            None,
        );
        w.store.put_state(&w.web, state);
        let e = w.operator.known_good(&w.web, &pinned).await.unwrap_err();
        assert!(
            matches!(e, OperatorError::QuarantinedRevision { .. }),
            "{e}"
        );
        let e = w.operator.known_good(&w.web, "web:99").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "web:99 is not a task definition revision ECS knows"
        );
        assert!(!w.store.is_locked(&w.web));
        let state = w.store.load(&w.web).await.unwrap();
        assert_eq!(state.known_good.as_deref(), Some(good.as_str()));
        let records: Vec<Action> = w.store.all_history().iter().map(|r| r.action).collect();
        assert_eq!(records, [Action::KnownGood, Action::Unchanged]);
    }
}
