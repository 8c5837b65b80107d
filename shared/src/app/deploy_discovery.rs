//! Which services a push concerns: the opted-in services of the managed clusters whose task
//! definition runs an image from the pushed repository. The repository index lists them, so
//! a push reads only those; a repository the index has never seen is looked for in the whole
//! fleet, once, with as few reads as the process memo and the image index allow.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, stream};
use tracing::{info, warn};

use super::{CONCURRENCY, DeployFunction, Discovered, Target, lock_memo};
use crate::domain::deploy::Push;
use crate::domain::fleet::{Container, ImageChange, ServiceView, TaskDefinitionView};
use crate::domain::image::{ImageRef, Repository};
use crate::domain::service::ServiceKey;
use crate::domain::settings::TAG_DEPLOY;
use crate::ports::{IndexUpdate, IndexedService, KnownContainers, PortError};

fn uses_repository(containers: &[Container], repository: &Repository) -> bool {
    containers
        .iter()
        .any(|c| ImageRef::parse(&c.image).is_some_and(|i| i.is_in(repository)))
}

fn known_repositories(arn: &str, containers: Vec<Container>) -> BTreeSet<Repository> {
    KnownContainers {
        task_definition: arn.to_owned(),
        containers,
        listed: false,
    }
    .repositories()
}

fn known(td: &TaskDefinitionView) -> KnownContainers {
    KnownContainers {
        task_definition: td.arn.clone(),
        containers: td.containers.clone(),
        listed: false,
    }
}

impl DeployFunction {
    /// Opted-in services, in the managed clusters, whose task definition has a container from
    /// the pushed repository; and the services whose task definition could not be read, which
    /// may or may not be concerned.
    /// `listed` is what the repository index lists under the pushed repository (`None` when it
    /// has never seen it), unless reading it failed with `unread`.
    pub(super) async fn discover(
        &self,
        push: &Push,
        listed: Option<&[IndexedService]>,
        unread: Option<&PortError>,
    ) -> Result<Discovered, PortError> {
        match (listed, unread) {
            (_, Some(e)) => {
                warn!(error = %e, "could not read the repository index; looking through the whole fleet")
            }
            (Some(listed), None) => return self.discover_listed(push, listed).await,
            (None, None) => info!(
                repository = %push.repository,
                "the index has never seen this repository; looking through the whole fleet"
            ),
        }
        let found = self.discover_in_fleet(push).await?;
        // A service that runs the repository was written to the index with its repositories
        // marked seen (or was already, by an earlier pass); without one, the mark is written
        // alone, so that the next push to it reads an empty list.
        if found.unreadable.is_empty()
            && found.targets.is_empty()
            && let Err(e) = self.ports.images.seen(&push.repository).await
        {
            warn!(error = %e, "could not record the repository as seen; the next push looks again");
        }
        Ok(found)
    }

    /// The services the index lists under the repository, read again: an entry holds while
    /// the service runs the revision it was read from. A service on another revision is looked
    /// at anew and its entries moved; one gone or no longer opted in leaves the index.
    async fn discover_listed(
        &self,
        push: &Push,
        listed: &[IndexedService],
    ) -> Result<Discovered, PortError> {
        let indexed: BTreeMap<&ServiceKey, &str> = listed
            .iter()
            .filter(|l| self.config.manages_cluster(l.service.cluster()))
            .map(|l| (&l.service, l.task_definition.as_str()))
            .collect();
        if indexed.is_empty() {
            return Ok(Discovered::default());
        }
        let keys: Vec<ServiceKey> = indexed.keys().map(|k| (*k).clone()).collect();
        // The revisions the index names are described beside the services: a service still on
        // its entry's revision (nearly always) needs nothing more.
        let entries: BTreeSet<&str> = indexed.values().copied().collect();
        let read_at = self.ports.clock.now();
        let (read, mut described) = futures::join!(
            self.ports.ecs.describe_services_partly(&keys),
            self.describe_all(entries)
        );
        let read = read?;
        self.remember_tags(&read.services);
        let this_repository = || BTreeSet::from([push.repository.clone()]);
        let unread: BTreeSet<&ServiceKey> = read.failed.iter().map(|(k, _)| k).collect();
        let opted_in: BTreeSet<&ServiceKey> = read
            .services
            .iter()
            .filter(|s| s.tags.contains_key(TAG_DEPLOY))
            .map(|s| &s.key)
            .collect();
        let mut updates: Vec<IndexUpdate> = keys
            .iter()
            .filter(|k| !unread.contains(k) && !opted_in.contains(k))
            .map(|k| IndexUpdate::removal(k.clone(), this_repository()))
            .collect();
        let services: Vec<ServiceView> = read
            .services
            .into_iter()
            .filter(|s| s.tags.contains_key(TAG_DEPLOY))
            .collect();
        // Every revision is described: the concerned ones are cloned, the moved ones looked at.
        let moved: BTreeSet<&str> = services
            .iter()
            .map(|s| s.task_definition.as_str())
            .filter(|arn| !matches!(described.get(*arn), Some(Ok(_))))
            .collect();
        if !moved.is_empty() {
            described.extend(self.describe_all(moved).await);
        }
        let mut found = Discovered {
            unreadable: read.failed.clone(),
            ..Discovered::default()
        };
        for service in services {
            let current = service.task_definition.as_str();
            match described.get(current) {
                Some(Ok(td)) => {
                    if let Some(&was) = indexed.get(&service.key).filter(|was| **was != current) {
                        // The repositories of the revision it was indexed on, when this process
                        // knows them; a stale entry elsewhere is dropped by the next push
                        // there or the reconcile.
                        let mut before = this_repository();
                        if let Some(containers) = self.known_containers(was) {
                            before.extend(known_repositories(was, containers));
                        }
                        updates.push(IndexUpdate {
                            service: service.key.clone(),
                            before,
                            now: Some(known(td)),
                        });
                    }
                    if uses_repository(&td.containers, &push.repository) {
                        found
                            .targets
                            .push(Target::read(service, td.clone(), read_at));
                    }
                }
                Some(Err(e)) => found.unreadable.push((service.key, e.clone())),
                None => {}
            }
        }
        if !updates.is_empty() {
            info!(
                changed = updates.len(),
                "the repository index was behind; brought up to date for this repository"
            );
            if let Err(e) = self.ports.images.update(&updates, false).await {
                warn!(error = %e, "could not update the repository index; the next push reads these again");
            }
        }
        Ok(found)
    }

    /// The whole fleet, for a repository the index has never seen: every opted-in service and
    /// what its revision runs. Every service read is written to the index on the way.
    async fn discover_in_fleet(&self, push: &Push) -> Result<Discovered, PortError> {
        let keys = self.opted_in().await?;
        if keys.is_empty() {
            return Ok(Discovered::default());
        }
        // A batch that cannot be read leaves its services unreadable (failed, so the push is
        // retried for them); the others go on.
        let read_at = self.ports.clock.now();
        let read = self.ports.ecs.describe_services_partly(&keys).await?;
        self.remember_tags(&read.services);
        let services: Vec<ServiceView> = read
            .services
            .into_iter()
            .filter(|s| s.tags.contains_key(TAG_DEPLOY))
            .collect();
        let (mut described, _) = self.index_fleet(&services, read.failed.is_empty()).await;
        let mut found = Discovered {
            unreadable: read.failed,
            ..Discovered::default()
        };
        for service in services {
            let arn = service.task_definition.clone();
            let concerned = match described.get(&arn) {
                Some(Ok(td)) => uses_repository(&td.containers, &push.repository),
                Some(Err(e)) => {
                    found.unreadable.push((service.key, e.clone()));
                    continue;
                }
                None => self
                    .known_containers(&arn)
                    .is_some_and(|c| uses_repository(&c, &push.repository)),
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
                Some(Ok(td)) => found
                    .targets
                    .push(Target::read(service, td.clone(), read_at)),
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

    /// What the services' task definitions run, and the index brought up to date for them:
    /// the index's entries are read (one call per 100 services), revisions neither they nor
    /// this process's memo know are described, and the entries that differ from what the
    /// services run are written. `complete` when `services` are every opted-in service.
    /// Returns the full descriptions of the revisions it described, and how many entries it
    /// wrote.
    pub(crate) async fn index_fleet(
        &self,
        services: &[ServiceView],
        complete: bool,
    ) -> (
        BTreeMap<String, Result<TaskDefinitionView, PortError>>,
        usize,
    ) {
        let keys: Vec<ServiceKey> = services.iter().map(|s| s.key.clone()).collect();
        let indexed = match self.ports.images.containers(&keys).await {
            Ok(indexed) => indexed,
            Err(e) => {
                warn!(error = %e, "could not read the image index; describing every task definition");
                BTreeMap::new()
            }
        };
        let stale: Vec<&ServiceView> = services
            .iter()
            .filter(|s| {
                indexed.get(&s.key).is_none_or(|known| {
                    known.task_definition != s.task_definition || (complete && !known.listed)
                })
            })
            .collect();
        {
            let mut memo = lock_memo(&self.containers);
            for known in indexed.values() {
                memo.insert(known.task_definition.clone(), known.containers.clone());
            }
        }
        let unknown: BTreeSet<&str> = stale
            .iter()
            .map(|s| s.task_definition.as_str())
            .filter(|arn| !lock_memo(&self.containers).contains_key(*arn))
            .collect();
        let described = self.describe_all(unknown).await;
        let updates: Vec<IndexUpdate> = stale
            .iter()
            .filter_map(|s| {
                let containers = self.known_containers(&s.task_definition)?;
                let now = KnownContainers {
                    task_definition: s.task_definition.clone(),
                    containers,
                    listed: false,
                };
                Some(IndexUpdate::entry(s.key.clone(), indexed.get(&s.key), now))
            })
            .collect();
        let complete = complete && described.values().all(Result::is_ok);
        let mut written = 0;
        if !updates.is_empty() {
            match self.ports.images.update(&updates, complete).await {
                Ok(()) => written = updates.len(),
                Err(e) => {
                    warn!(error = %e, "could not add to the image index; the next push describes them again")
                }
            }
        }
        (described, written)
    }

    /// Describes each revision once, several at a time, and keeps their containers in the memo.
    async fn describe_all(
        &self,
        arns: BTreeSet<&str>,
    ) -> BTreeMap<String, Result<TaskDefinitionView, PortError>> {
        let described: BTreeMap<String, Result<TaskDefinitionView, PortError>> = stream::iter(arns)
            .map(|arn| async move {
                let td = self.ports.ecs.describe_task_definition(arn).await;
                (arn.to_owned(), td)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut memo = lock_memo(&self.containers);
        for (arn, td) in &described {
            if let Ok(td) = td {
                memo.insert(arn.clone(), td.containers.clone());
            }
        }
        described
    }

    /// The index after deckhand moved a service: the revision it registered runs the base's
    /// containers with the pushed images. Written with the deployment's commit.
    pub(super) fn index_deployed(
        &self,
        service: &ServiceKey,
        base: &TaskDefinitionView,
        changes: &[ImageChange],
        to: &str,
    ) -> IndexUpdate {
        let containers = base.containers_with(changes);
        lock_memo(&self.containers).insert(to.to_owned(), containers.clone());
        let now = KnownContainers {
            task_definition: to.to_owned(),
            containers,
            listed: false,
        };
        IndexUpdate::entry(service.clone(), Some(&known(base)), now)
    }

    /// The services' tags as read now, for the locks the next push takes ahead.
    fn remember_tags(&self, services: &[ServiceView]) {
        let mut memo = lock_memo(&self.tags);
        for service in services {
            memo.insert(service.key.clone(), service.tags.clone());
        }
    }

    pub(super) fn known_containers(&self, arn: &str) -> Option<Vec<Container>> {
        lock_memo(&self.containers).get(arn).cloned()
    }
}
