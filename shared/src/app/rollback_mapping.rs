//! Which services an alarm guards, in the ways the spec allows: its `deckhand:service` tag, the
//! services whose `deckhand:alarms` list it, and its metric's dimensions (not for a step
//! scaling alarm); each source fails on its own, and a failure is recorded and notified.

use std::collections::BTreeSet;

use serde_json::json;
use tracing::warn;

use super::{Guarded, Mapping, MappingProblem, MappingSource, NamedByTags, RollbackFunction};
use crate::domain::rollback::{
    ALARM_TAG_SERVICE, Alarm, RollbackSettings, guard_of, lists_alarm, scaling_alarm,
};
use crate::domain::service::ServiceKey;
use crate::domain::settings::TAG_ALARMS;
use crate::history::HistoryRecord;
use crate::notification::{Kind, Notification, Severity};
use crate::ports::{PortError, PortErrorKind};
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
    /// tags, its metric), and those whose `deckhand:rollback` tag does not parse.
    pub(super) async fn guarded(
        &self,
        alarm: &Alarm,
        named: NamedByTags,
    ) -> Result<Mapping, PortError> {
        let NamedByTags {
            alarm_tag,
            listed,
            problems,
        } = named;
        // Only the services whose list names this alarm: the tag values came with the search.
        let keys: Vec<ServiceKey> = listed
            .iter()
            .filter(|found| lists_alarm(&found.value, &alarm.name))
            .filter_map(|found| ServiceKey::from_arn(&found.arn))
            .chain(alarm_tag.clone())
            .chain(alarm.metric_services())
            .filter(|key| self.config.manages_cluster(key.cluster()))
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
        for service in self.ports.ecs.describe_services(&keys).await? {
            match RollbackSettings::from_tags(&service.tags) {
                Ok(settings) => {
                    if let Some(guard) =
                        guard_of(alarm, &service.key, &settings, alarm_tag.as_ref())
                    {
                        mapping.guarded.push(Guarded {
                            service,
                            settings,
                            guard,
                        });
                    }
                }
                Err(problem) => mapping.invalid.push((service.key, problem)),
            }
        }
        Ok(mapping)
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
