//! Which services an alarm guards, in the ways the spec allows: its `deckhand:service` tag, the
//! services whose `deckhand:alarms` list it, and its metric's dimensions (not for a step
//! scaling alarm); each source fails on its own, and a failure is recorded and notified.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, stream};
use serde_json::json;
use tracing::warn;

use super::{Guarded, Mapping, MappingProblem, MappingSource, NamedByTags, RollbackFunction};
use crate::app::locking::{acquire, acquire_recorded, owner_token};
use crate::domain::rollback::{
    ALARM_TAG_SERVICE, Alarm, RollbackSettings, guard_of, lists_alarm, scaling_alarm,
};
use crate::domain::service::ServiceKey;
use crate::domain::settings::TAG_ALARMS;
use crate::history::HistoryRecord;
use crate::notification::{Kind, Notification, Severity};
use crate::ports::{Locked, PortError, PortErrorKind};
use crate::report::Action;

impl RollbackFunction {
    /// The alarm with its actions, when its metric alone would map a service and the event did
    /// not say whether it is a step scaling alarm (only SNS messages carry the actions). If they
    /// cannot be read, its metric maps nothing: a rollback on a scaling alarm is worse than none.
    pub(super) async fn with_actions(&self, alarm: &Alarm) -> (Alarm, Option<MappingProblem>) {
        let mut alarm = alarm.clone();
        let maps_by_metric = alarm
            .metric_services()
            .iter()
            .any(|k| self.config.manages_cluster(k.cluster()));
        if alarm.actions.is_some() || scaling_alarm(&alarm).is_some() || !maps_by_metric {
            return (alarm, None);
        }
        match self.ports.alarms.alarm_actions(&alarm.name).await {
            Ok(actions) => {
                alarm.actions = actions;
                (alarm, None)
            }
            Err(error) => {
                warn!(%error, "could not read the alarm's actions; its metric maps nothing");
                alarm.dimensions.clear();
                let problem = MappingProblem {
                    source: MappingSource::AlarmActions,
                    error,
                };
                (alarm, Some(problem))
            }
        }
    }

    /// What names services by tag: the alarm's own `deckhand:service` tag and the services
    /// whose `deckhand:alarms` list it (with the tag values, from one search). Each source fails
    /// on its own: the other still counts, and the failure is returned with it.
    pub(super) async fn named_by_tags(&self, alarm: &Alarm) -> NamedByTags {
        let alarm_tags = async {
            let arn = alarm.arn.as_ref()?;
            Some(self.ports.alarms.alarm_tags(arn).await)
        };
        let (alarm_tags, listed) =
            futures::join!(alarm_tags, self.ports.ecs.find_services(TAG_ALARMS));
        let mut problems = Vec::new();
        let alarm_tag = match alarm_tags {
            None => None,
            Some(Ok(tags)) => tags.get(ALARM_TAG_SERVICE).and_then(|v| {
                v.trim()
                    .parse::<ServiceKey>()
                    .map_err(|e| warn!(error = %e, "the alarm's deckhand:service tag does not name a service"))
                    .ok()
            }),
            // A deleted alarm has no tags; the other mappings still hold.
            Some(Err(e)) if e.kind == PortErrorKind::NotFound => None,
            Some(Err(error)) => {
                warn!(%error, "could not read the alarm's tags; the other mappings still count");
                problems.push(MappingProblem {
                    source: MappingSource::AlarmTags,
                    error,
                });
                None
            }
        };
        let listed = match listed {
            Ok(listed) => listed,
            Err(error) => {
                warn!(%error, "could not find the services that list alarms; the other mappings still count");
                problems.push(MappingProblem {
                    source: MappingSource::ServiceAlarmTags,
                    error,
                });
                Vec::new()
            }
        };
        NamedByTags {
            alarm_tag,
            listed,
            problems,
        }
    }

    /// The services the alarm guards, in the ways the spec allows (its tags, the services'
    /// tags, its metric), and those whose `deckhand:rollback` tag does not parse. Their locks
    /// are taken beside the read, so that the rollback changes ECS a stage sooner: a service
    /// named by tag opted in to this alarm; one named by its metric alone is locked there only
    /// if deckhand has a record of it (a lock would write one for a service deckhand never
    /// touched), else once its tags say the alarm guards it. Locks the mapping does not use
    /// are given back.
    pub(super) async fn guarded(
        &self,
        alarm: &Alarm,
        named: NamedByTags,
        done: &BTreeSet<ServiceKey>,
    ) -> Result<Mapping, PortError> {
        let NamedByTags {
            alarm_tag,
            listed,
            problems,
        } = named;
        let managed = |key: &ServiceKey| self.config.manages_cluster(key.cluster());
        // Only the services whose list names this alarm: the tag values came with the search.
        let by_tag: BTreeSet<ServiceKey> = listed
            .iter()
            .filter(|found| lists_alarm(&found.value, &alarm.name))
            .filter_map(|found| ServiceKey::from_arn(&found.arn))
            .chain(alarm_tag.clone())
            .filter(managed)
            .collect();
        let keys: Vec<ServiceKey> = by_tag
            .iter()
            .cloned()
            .chain(alarm.metric_services().into_iter().filter(managed))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut mapping = Mapping {
            guarded: Vec::new(),
            invalid: Vec::new(),
            problems,
        };
        if keys.is_empty() {
            return Ok(mapping);
        }
        let by_metric = scaling_alarm(alarm).is_none();
        let locking = keys
            .iter()
            .filter(|key| !done.contains(*key))
            .filter(|key| by_metric || by_tag.contains(*key))
            .map(|key| (key, by_tag.contains(key)));
        let (described, mut locks) = futures::join!(
            self.ports.ecs.describe_services(&keys),
            self.lock_all(locking, &alarm.event_id)
        );
        let described = match described {
            Ok(described) => described,
            Err(e) => {
                self.give_back_all(locks).await;
                return Err(e);
            }
        };
        for service in described {
            match RollbackSettings::from_tags(&service.tags) {
                Ok(settings) => {
                    if let Some(guard) =
                        guard_of(alarm, &service.key, &settings, alarm_tag.as_ref())
                    {
                        let locked = locks.remove(&service.key);
                        mapping.guarded.push(Guarded {
                            service,
                            settings,
                            guard,
                            locked,
                        });
                    }
                }
                Err(problem) => mapping.invalid.push((service.key, problem)),
            }
        }
        self.give_back_all(locks).await;
        Ok(mapping)
    }

    /// The locks of these services, each taken for this event, those not named by tag only if
    /// deckhand has a record of them; one not taken here is left out (the rollback takes it
    /// itself, or says why it could not).
    async fn lock_all(
        &self,
        keys: impl Iterator<Item = (&ServiceKey, bool)>,
        event_id: &str,
    ) -> BTreeMap<ServiceKey, Locked> {
        let (store, clock) = (&*self.ports.store, &*self.ports.clock);
        stream::iter(keys)
            .map(|(key, named)| async move {
                let owner = owner_token(event_id);
                let locked = if named {
                    acquire(store, clock, key, &owner).await.map(Some)
                } else {
                    acquire_recorded(store, clock, key, &owner).await
                };
                (key.clone(), locked)
            })
            .buffer_unordered(self.config.concurrency)
            .filter_map(|(key, locked)| async move {
                match locked {
                    Ok(locked) => Some((key, locked?)),
                    Err(e) => {
                        warn!(service = %key, error = %e, "could not take the lock beside the read; taken again under the rollback");
                        None
                    }
                }
            })
            .collect()
            .await
    }

    /// Gives back locks that were taken and are not used.
    pub(super) async fn give_back_all(&self, locks: BTreeMap<ServiceKey, Locked>) {
        stream::iter(locks)
            .for_each_concurrent(self.config.concurrency, |(key, locked)| async move {
                self.give_back(&key, &locked).await;
            })
            .await;
    }

    /// Gives back a lock without changing the state; a lock that cannot be given back expires
    /// with its lease.
    pub(super) async fn give_back(&self, key: &ServiceKey, locked: &Locked) {
        if let Err(e) = self.ports.store.release(key, &locked.owner).await {
            warn!(service = %key, error = %e, "could not give back the lock; it expires with its lease");
        }
    }

    /// A source of the mapping failed: recorded in the history of every service the alarm
    /// still reached, and notified once, so nobody takes silence for "nothing was guarded".
    pub(super) async fn mapping_failed(
        &self,
        alarm: &Alarm,
        problem: &MappingProblem,
        reached: &[ServiceKey],
    ) {
        let now = self.ports.clock.now();
        let reason = format!(
            "alarm {}: {}; services only it names were not checked",
            alarm.name,
            problem.describe()
        );
        let records: Vec<HistoryRecord> = reached
            .iter()
            .map(|key| {
                let mut record =
                    HistoryRecord::new(key, now, Action::Error, reason.clone(), &alarm.event_id);
                record.alarm_at = Some(alarm.at);
                record
            })
            .collect();
        if !records.is_empty()
            && let Err(e) = self.ports.store.record(&records, None).await
        {
            warn!(error = %e, "could not record the failed mapping");
        }
        self.notify(Notification::new(
            Kind::Error,
            Severity::Error,
            "*".to_owned(),
            format!(
                "Alarm {} fired; {}, so a service that only it names may not have been rolled back",
                alarm.name,
                problem.describe()
            ),
            now,
            json!({
                "alarm": alarm.name,
                "alarmArn": alarm.arn,
                "source": problem.source.describe(),
                "error": problem.error.to_string(),
                "servicesReached": reached.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        ))
        .await;
    }
}
