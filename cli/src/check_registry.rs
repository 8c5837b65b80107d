//! `deckhand check`, a central registry: the services whose images live in another account's
//! ECR, and what that repository's policy does not let this account read (deckhand confirms a
//! push, and reads its scan, there: `domain::registry`).

use std::collections::BTreeMap;

use deckhand::app::Ports;
use deckhand::domain::fleet::ServiceView;
use deckhand::domain::image::{ImageRef, Repository};
use deckhand::domain::registry::registry_policy_gaps;

/// Each repository's policy read once: the reads it lacks for this account, or why it could not
/// be read.
#[derive(Default)]
pub(crate) struct RegistryPolicies {
    read: BTreeMap<Repository, Result<Vec<&'static str>, String>>,
}

impl RegistryPolicies {
    /// What keeps deckhand from reading the service's images in another account's registry.
    pub(crate) async fn problems(
        &mut self,
        ports: &Ports,
        service: &ServiceView,
        account: &str,
    ) -> Vec<String> {
        let containers = match ports
            .ecs
            .describe_task_definition(&service.task_definition)
            .await
        {
            Ok(td) => td.containers,
            Err(e) => return vec![format!("could not read {}: {e}", service.task_definition)],
        };
        let repositories: Vec<Repository> = containers
            .iter()
            .filter_map(|c| ImageRef::parse(&c.image)?.repository())
            .filter(|r| r.account != account)
            .collect();
        let mut problems = Vec::new();
        for repository in repositories {
            if !self.read.contains_key(&repository) {
                let gaps = match ports.ecr.repository_policy(&repository).await {
                    Ok(policy) => registry_policy_gaps(policy.as_deref(), account),
                    Err(e) => Err(e.to_string()),
                };
                self.read.insert(repository.clone(), gaps);
            }
            let place = format!("ECR repository {}/{}", repository.account, repository.name);
            match &self.read[&repository] {
                Ok(gaps) if gaps.is_empty() => {}
                Ok(gaps) => problems.push(format!(
                    "{place}'s policy does not let account {account} {}: deckhand cannot confirm pushes or read scans there (see docs/organisations.md, a central registry)",
                    gaps.join(", ")
                )),
                Err(e) => problems.push(format!(
                    "could not read the policy of {place} (it must allow account {account} ecr:GetRepositoryPolicy for this check): {e}"
                )),
            }
        }
        problems
    }
}
