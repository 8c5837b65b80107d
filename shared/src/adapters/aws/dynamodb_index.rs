//! The repository index on the table: each service's entry (the images its revision runs), the
//! list of indexed services, and the services under each repository.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use super::items::{index_requests, item_service, key, put_request, repository_pk, s};
use super::{CONTAINERS_SK, DynamoStore, INDEXED_PK, SEEN_SK};
use crate::adapters::aws::port_error;
use crate::domain::image::Repository;
use crate::domain::service::ServiceKey;
use crate::ports::{ImageIndex, IndexUpdate, IndexedService, KnownContainers, PortResult};

#[async_trait]
impl ImageIndex for DynamoStore {
    async fn containers(
        &self,
        services: &[ServiceKey],
    ) -> PortResult<BTreeMap<ServiceKey, KnownContainers>> {
        self.batch_get(services, CONTAINERS_SK).await
    }

    /// Plain puts and deletes: an entry states a fact about a revision, so racing writers
    /// cannot make it wrong, only older (and an older revision is simply not the one the
    /// service runs, which every reader checks).
    async fn update(&self, updates: &[IndexUpdate], complete: bool) -> PortResult<()> {
        // One request per item in a batch: the last update of a service wins, and each
        // repository is marked seen once.
        let last: BTreeMap<&ServiceKey, &IndexUpdate> =
            updates.iter().map(|u| (&u.service, u)).collect();
        let mut requests = Vec::new();
        let mut seen = BTreeSet::new();
        for update in last.into_values() {
            requests.extend(index_requests(update, complete)?);
            if complete && let Some(now) = &update.now {
                seen.extend(now.repositories());
            }
        }
        for repository in &seen {
            requests.push(put_request(key(repository_pk(repository), SEEN_SK))?);
        }
        self.batch_write(requests).await
    }

    async fn repository(&self, repository: &Repository) -> PortResult<Option<Vec<IndexedService>>> {
        let mut listed = Vec::new();
        let mut seen = false;
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(repository_pk(repository)))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| port_error("Query", e))?;
            seen |= item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk == SEEN_SK);
            let task_definition = item.get("taskDefinition").and_then(|v| v.as_s().ok());
            if let (Some(service), Some(task_definition)) = (item_service(&item), task_definition) {
                listed.push(IndexedService {
                    service,
                    task_definition: task_definition.clone(),
                });
            }
        }
        Ok(seen.then_some(listed))
    }

    async fn seen(&self, repository: &Repository) -> PortResult<()> {
        let item = key(repository_pk(repository), SEEN_SK);
        self.batch_write(vec![put_request(item)?]).await
    }

    async fn indexed(&self) -> PortResult<Vec<ServiceKey>> {
        self.services_under(INDEXED_PK.to_owned()).await
    }
}
