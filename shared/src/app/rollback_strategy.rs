//! Carrying out a rollback the fastest way the service's strategy allows: ECS's own rollback
//! of a blue/green, linear or canary deployment still in progress (`StopServiceDeployment`),
//! else `UpdateService` to the known-good revision; for a `CODE_DEPLOY` service, CodeDeploy's
//! own rollback of deckhand's deployment in progress (`StopDeployment`), else a new CodeDeploy
//! deployment of the known-good revision. Only a service ECS shifts the traffic of costs the
//! `ListServiceDeployments` that tells the two apart (`ListDeployments` for CodeDeploy).

use super::RollbackFunction;
use crate::app::codedeploy::{codedeploy_target_or_error, deploy_through_codedeploy};
use crate::app::locking::renew_before_acting;
use crate::domain::codedeploy_busy::{Blocked, RunningDeployment, rollback_while_busy};
use crate::domain::fleet::ServiceView;
use crate::domain::image::ImageRef;
use crate::domain::keep::{KeptImage, images_of};
use crate::domain::restore::{Pullable, names};
use crate::domain::service::revision_name;
use crate::domain::strategy::{DeploymentController, RollbackPath, RollbackRoute, rollback_path};
use crate::ports::{Locked, PortError};

/// How a rollback went: carried out, or held off by a CodeDeploy deployment deckhand did not
/// start, with nothing changed.
pub(super) enum Rolled {
    Back(RollbackRoute),
    Blocked {
        deployment_id: String,
        reason: String,
        /// Worth retrying while that deployment runs (what it deploys cannot be told).
        retry: bool,
    },
    /// The target runs images ECR keeps archived (or is restoring): nothing was changed.
    Restoring {
        archived: Vec<KeptImage>,
        activating: Vec<KeptImage>,
    },
    /// The target runs images ECR no longer has: no rollback can pull them.
    Unpullable(String),
}

impl RollbackFunction {
    /// Moves the service back from `from` to `to` under a freshly renewed lease, and says how.
    /// `back_to_target`: the revision ECS would go back to (the one the deployment in progress
    /// started from) is `to`.
    pub(super) async fn roll_back_service(
        &self,
        service: &ServiceView,
        (from, to): (&str, &str),
        back_to_target: bool,
        locked: &Locked,
        images: Option<&[String]>,
    ) -> Result<Rolled, PortError> {
        let codedeploy = match service.controller {
            DeploymentController::CodeDeploy => {
                Some(codedeploy_target_or_error(&self.ports, service).await?)
            }
            _ => None,
        };
        let (in_progress, back_to_target) = match &codedeploy {
            // CodeDeploy's rollback goes back to where its deployment started: only deckhand's
            // own deployment started from the revision deckhand recorded.
            Some(target) => {
                let running = self
                    .ports
                    .codedeploy
                    .deployment_in_progress(&target.group)
                    .await?;
                let ours = locked
                    .state
                    .deployment
                    .as_ref()
                    .and_then(|d| d.ecs_deployment_id.as_deref());
                if let Some(other) = running.as_deref().filter(|id| Some(*id) != ours) {
                    // One deployment at a time: what holds the group decides.
                    match self.someone_elses(other, ours, from, locked).await? {
                        None => {}
                        Some(Blocked::StopIt) => {
                            let route = RollbackRoute {
                                strategy: service.strategy,
                                path: RollbackPath::StopOtherCodeDeployDeployment {
                                    deployment_id: other.to_owned(),
                                },
                            };
                            self.renewed(service, locked).await?;
                            self.ports.codedeploy.stop_deployment(other).await?;
                            return Ok(Rolled::Back(route));
                        }
                        Some(Blocked::Moot(reason)) => {
                            return Ok(Rolled::Blocked {
                                deployment_id: other.to_owned(),
                                reason,
                                retry: false,
                            });
                        }
                        Some(Blocked::Wait(reason)) => {
                            return Ok(Rolled::Blocked {
                                deployment_id: other.to_owned(),
                                reason,
                                retry: true,
                            });
                        }
                    }
                }
                let back = back_to_target && running.is_some() && running.as_deref() == ours;
                (running, back)
            }
            None if service.strategy.shifts_traffic()
                && service.controller == DeploymentController::Ecs =>
            {
                let running = self.ports.ecs.deployment_in_progress(&service.key).await?;
                (running, back_to_target)
            }
            None => (None, back_to_target),
        };
        let route = RollbackRoute {
            strategy: service.strategy,
            path: rollback_path(
                service.controller,
                service.strategy,
                in_progress.as_deref(),
                back_to_target,
            ),
        };
        // Only a new deployment pulls the target's images: ECS's and CodeDeploy's own rollbacks
        // move the traffic back to tasks that still run. What cannot be pulled is not deployed.
        if matches!(
            route.path,
            RollbackPath::Redeploy | RollbackPath::CodeDeployRedeploy
        ) {
            let (renewed, pull) =
                futures::join!(self.renewed(service, locked), self.pullable(to, images));
            renewed?;
            match pull? {
                Pullable::Ready => {}
                Pullable::Restoring {
                    archived,
                    activating,
                } => {
                    return Ok(Rolled::Restoring {
                        archived,
                        activating,
                    });
                }
                Pullable::Gone(gone) => {
                    return Ok(Rolled::Unpullable(format!(
                        "{} runs {}, which ECR no longer has: no task could pull it",
                        revision_name(to),
                        names(&gone)
                    )));
                }
            }
        } else {
            self.renewed(service, locked).await?;
        }
        match &route.path {
            RollbackPath::Redeploy => self.ports.ecs.update_service(&service.key, to).await?,
            RollbackPath::StopServiceDeployment {
                service_deployment_arn,
            } => {
                self.ports
                    .ecs
                    .stop_service_deployment(service_deployment_arn)
                    .await?;
                None
            }
            RollbackPath::StopCodeDeployDeployment { deployment_id }
            | RollbackPath::StopOtherCodeDeployDeployment { deployment_id } => {
                self.ports.codedeploy.stop_deployment(deployment_id).await?;
                None
            }
            RollbackPath::CodeDeployRedeploy => {
                let target = codedeploy.as_ref().ok_or_else(|| {
                    PortError::new(
                        "CreateDeployment",
                        crate::ports::PortErrorKind::Other,
                        "no CodeDeploy deployment group for the service",
                    )
                })?;
                let why = format!("rollback of {}", service.key);
                Some(deploy_through_codedeploy(&self.ports, target, to, &why).await?)
            }
        };
        Ok(Rolled::Back(route))
    }

    /// Whether the images `to` runs can be pulled: ECR's status of each (`DescribeImages`).
    /// Images not known beforehand are read from the revision.
    pub(super) async fn pullable(
        &self,
        to: &str,
        images: Option<&[String]>,
    ) -> Result<Pullable, PortError> {
        let images = match images {
            Some(images) => images.to_vec(),
            None => {
                let td = self.ports.ecs.describe_task_definition(to).await?;
                images_of(&td.containers, None)
            }
        };
        let kept: Vec<KeptImage> = images.iter().filter_map(|i| KeptImage::of(i)).collect();
        crate::app::pins::pullable_now(&self.ports, kept).await
    }

    /// The lease renewed just before the change, so that a lock taken over meanwhile stops it.
    async fn renewed(&self, service: &ServiceView, locked: &Locked) -> Result<(), PortError> {
        let mut held = locked.clone();
        renew_before_acting(
            &*self.ports.store,
            &*self.ports.clock,
            &service.key,
            &mut held,
        )
        .await
    }

    /// What to do about a CodeDeploy deployment deckhand did not start that holds the group:
    /// `GetDeployment` says what it deploys, and a task definition other than the bad one is
    /// read for the bad digest. `None`: it ended meanwhile.
    async fn someone_elses(
        &self,
        id: &str,
        ours: Option<&str>,
        bad: &str,
        locked: &Locked,
    ) -> Result<Option<Blocked>, PortError> {
        let Some(running) = self.ports.codedeploy.deployment(id).await? else {
            return Ok(None);
        };
        let pins_bad_digest = self.pins_bad_digest(&running, bad, locked).await;
        Ok(Some(rollback_while_busy(
            &running,
            ours,
            bad,
            pins_bad_digest,
        )))
    }

    /// Whether the running deployment's task definition pins the digest of deckhand's
    /// deployment of `bad`. A revision that cannot be read counts as not pinning it: the
    /// deployment is then judged by its revision alone.
    async fn pins_bad_digest(
        &self,
        running: &RunningDeployment,
        bad: &str,
        locked: &Locked,
    ) -> bool {
        let digest = locked
            .state
            .deployment
            .as_ref()
            .filter(|d| d.to == bad)
            .map(|d| d.digest.to_string());
        let (Some(digest), Some(td)) = (digest, running.task_definition.as_deref()) else {
            return false;
        };
        if td == bad {
            return true;
        }
        match self.ports.ecs.describe_task_definition(td).await {
            Ok(view) => view
                .containers
                .iter()
                .any(|c| ImageRef::parse(&c.image).and_then(|i| i.digest) == Some(digest.as_str())),
            Err(e) => {
                tracing::warn!(error = %e, task_definition = td, "could not read what the other deployment deploys");
                false
            }
        }
    }
}
