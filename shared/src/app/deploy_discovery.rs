//! Which services a push concerns: the opted-in services of the managed clusters whose task
//! definition runs an image from the pushed repository, found with as few reads as the
//! process memo and the image index allow.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, stream};
use tracing::warn;

use super::{CONCURRENCY, DESCRIBE_DIRECTLY, DeployFunction, Discovered, Target, lock_memo};
use crate::domain::deploy::Push;
use crate::domain::fleet::{Container, ServiceView, TaskDefinitionView};
use crate::domain::image::ImageRef;
use crate::domain::service::ServiceKey;
use crate::domain::settings::TAG_DEPLOY;
use crate::ports::{KnownContainers, PortError};

impl DeployFunction {
    /// Opted-in services, in the managed clusters, whose task definition has a container from
    /// the pushed repository; and the services whose task definition could not be read, which
    /// may or may not be concerned.
    pub(super) async fn discover(&self, push: &Push) -> Result<Discovered, PortError> {
        let keys = self.opted_in().await?;
        if keys.is_empty() {
            return Ok(Discovered::default());
        }
        // A batch that cannot be read leaves its services unreadable (failed, so the push is
        // retried for them); the others go on.
        let read = self.ports.ecs.describe_services_partly(&keys).await?;
        let services: Vec<ServiceView> = read
            .services
            .into_iter()
            .filter(|s| s.tags.contains_key(TAG_DEPLOY))
            .collect();
        let mut described = self.read_containers(&services).await;
        let uses_repository = |containers: &[Container]| {
            containers
                .iter()
                .any(|c| ImageRef::parse(&c.image).is_some_and(|i| i.is_in(&push.repository)))
        };
        let mut found = Discovered {
            unreadable: read.failed,
            ..Discovered::default()
        };
        for service in services {
            let arn = service.task_definition.clone();
            let concerned = match described.get(&arn) {
                Some(Ok(td)) => uses_repository(&td.containers),
                Some(Err(e)) => {
                    found.unreadable.push((service.key, e.clone()));
                    continue;
                }
                None => self
                    .known_containers(&arn)
                    .is_some_and(|c| uses_repository(&c)),
            };
            if !concerned {
                continue;
            }
            // Known from the memo or the index: the clone needs the whole definition.
            if !described.contains_key(&arn) {
                let td = self.ports.ecs.describe_task_definition(&arn).await;
                described.insert(arn.clone(), td);
            }
            match described.get(&arn) {
                Some(Ok(td)) => found.targets.push(Target::plain(service, td.clone())),
                Some(Err(e)) => found.unreadable.push((service.key, e.clone())),
                None => {}
            }
        }
        Ok(found)
    }

    /// The services tagged `deckhand:deploy` in the managed clusters, each once.
    pub(super) async fn opted_in(&self) -> Result<Vec<ServiceKey>, PortError> {
        Ok(self
            .ports
            .ecs
            .find_services(TAG_DEPLOY)
            .await?
            .iter()
            .filter_map(|found| ServiceKey::from_arn(&found.arn))
            .filter(|key| self.config.manages_cluster(key.cluster()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    /// What the services' task definitions run. Revisions this process has read are known
    /// from its memo; when more than a few are not, the image index is asked first; the rest
    /// are described (and, when the index was asked, added to it). Returns the full
    /// descriptions of the revisions it described.
    pub(super) async fn read_containers(
        &self,
        services: &[ServiceView],
    ) -> BTreeMap<String, Result<TaskDefinitionView, PortError>> {
        let unknown: Vec<&ServiceView> = {
            let memo = lock_memo(&self.containers);
            services
                .iter()
                .filter(|s| !memo.contains_key(&s.task_definition))
                .collect()
        };
        let distinct = |list: &[&ServiceView]| {
            list.iter()
                .map(|s| s.task_definition.as_str())
                .collect::<BTreeSet<_>>()
                .len()
        };
        let use_index = distinct(&unknown) > DESCRIBE_DIRECTLY;
        let mut to_describe = unknown;
        if use_index {
            let keys: Vec<ServiceKey> = to_describe.iter().map(|s| s.key.clone()).collect();
            match self.ports.images.containers(&keys).await {
                Ok(indexed) => {
                    let mut memo = lock_memo(&self.containers);
                    to_describe.retain(|s| match indexed.get(&s.key) {
                        Some(known) if known.task_definition == s.task_definition => {
                            memo.insert(known.task_definition.clone(), known.containers.clone());
                            false
                        }
                        _ => true,
                    });
                }
                Err(e) => {
                    warn!(error = %e, "could not read the image index; describing every task definition")
                }
            }
        }
        let arns: BTreeSet<&str> = to_describe
            .iter()
            .map(|s| s.task_definition.as_str())
            .collect();
        let described: BTreeMap<String, Result<TaskDefinitionView, PortError>> = stream::iter(arns)
            .map(|arn| async move {
                let td = self.ports.ecs.describe_task_definition(arn).await;
                (arn.to_owned(), td)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        {
            let mut memo = lock_memo(&self.containers);
            for (arn, td) in &described {
                if let Ok(td) = td {
                    memo.insert(arn.clone(), td.containers.clone());
                }
            }
        }
        if use_index {
            let entries: Vec<(ServiceKey, KnownContainers)> = to_describe
                .iter()
                .filter_map(|s| {
                    let td = described.get(&s.task_definition)?.as_ref().ok()?;
                    Some((
                        s.key.clone(),
                        KnownContainers {
                            task_definition: td.arn.clone(),
                            containers: td.containers.clone(),
                        },
                    ))
                })
                .collect();
            if let Err(e) = self.ports.images.remember(&entries).await {
                warn!(error = %e, "could not add to the image index; the next push describes them again");
            }
        }
        described
    }

    pub(super) fn known_containers(&self, arn: &str) -> Option<Vec<Container>> {
        lock_memo(&self.containers).get(arn).cloned()
    }
}
