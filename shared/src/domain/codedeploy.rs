//! Services whose deployment controller is `CODE_DEPLOY`: ECS refuses them a new task
//! definition through `UpdateService`, so deckhand asks CodeDeploy for a deployment instead
//! (`CreateDeployment` with an AppSpec naming the new revision). Which deployment group deploys
//! the service, the AppSpec, and CodeDeploy's statuses are decided here.

use std::fmt;

use serde_json::{Value, json};

use super::fleet::{Placement, ServiceView};
use super::service::ServiceKey;
use super::settings::TagProblem;
use super::strategy::DeploymentController;

/// `APPLICATION/GROUP`: the deployment group that deploys the service, when its `ecsServices`
/// cannot be searched or should not be.
pub const TAG_CODEDEPLOY: &str = "deckhand:codedeploy";
/// `STAGE=FUNCTION ...`: the Lambda hooks of the AppSpec, as the team's own AppSpec names them.
pub const TAG_CODEDEPLOY_HOOKS: &str = "deckhand:codedeploy-hooks";

/// The lifecycle events an AppSpec of an ECS deployment may hook (CodeDeploy User Guide,
/// "AppSpec 'hooks' section for an Amazon ECS deployment").
pub const ECS_HOOK_STAGES: [&str; 5] = [
    "BeforeInstall",
    "AfterInstall",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
];

/// A CodeDeploy application and one of its deployment groups.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeploymentGroup {
    pub application: String,
    pub name: String,
}

impl DeploymentGroup {
    pub fn new(application: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            application: application.into(),
            name: name.into(),
        }
    }

    /// The value of `deckhand:codedeploy`.
    pub fn from_tag(value: &str) -> Result<Self, TagProblem> {
        let problem = |message: &str| TagProblem {
            tag: TAG_CODEDEPLOY.into(),
            value: value.into(),
            message: message.into(),
        };
        let (application, group) = value
            .trim()
            .split_once('/')
            .ok_or_else(|| problem("expected APPLICATION/GROUP"))?;
        if application.is_empty() || group.is_empty() || group.contains('/') {
            return Err(problem("expected APPLICATION/GROUP"));
        }
        Ok(Self::new(application, group))
    }
}

impl fmt::Display for DeploymentGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.application, self.name)
    }
}

/// A deployment group as CodeDeploy describes it: the ECS services it deploys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    pub group: DeploymentGroup,
    pub services: Vec<ServiceKey>,
}

/// A Lambda function CodeDeploy calls at a lifecycle event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    pub stage: String,
    pub function: String,
}

/// The value of `deckhand:codedeploy-hooks`: `STAGE=FUNCTION` pairs, space-separated, each
/// stage once.
pub fn parse_hooks(value: &str) -> Result<Vec<Hook>, TagProblem> {
    let problem = |message: String| TagProblem {
        tag: TAG_CODEDEPLOY_HOOKS.into(),
        value: value.into(),
        message,
    };
    let mut hooks: Vec<Hook> = Vec::new();
    for pair in value.split_whitespace() {
        let Some((stage, function)) = pair.split_once('=') else {
            return Err(problem(format!("`{pair}` is not STAGE=FUNCTION")));
        };
        if !ECS_HOOK_STAGES.contains(&stage) {
            return Err(problem(format!(
                "`{stage}` is not a lifecycle event of an ECS deployment (one of {})",
                ECS_HOOK_STAGES.join(", ")
            )));
        }
        if function.is_empty() {
            return Err(problem(format!("`{stage}` names no function")));
        }
        if hooks.iter().any(|h| h.stage == stage) {
            return Err(problem(format!("`{stage}` is named twice")));
        }
        hooks.push(Hook {
            stage: stage.into(),
            function: function.into(),
        });
    }
    Ok(hooks)
}

/// What a deployment of the service through CodeDeploy needs: its group, the container and
/// port its load balancer sends traffic to, and the AppSpec's hooks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeDeployTarget {
    pub group: DeploymentGroup,
    pub container_name: String,
    pub container_port: i32,
    pub hooks: Vec<Hook>,
    /// Where the service's tasks run now: the new task set runs there too.
    pub placement: Placement,
}

/// The group that deploys `service`: the one `deckhand:codedeploy` names (which must name the
/// service among its `ecsServices`), else the one group whose `ecsServices` name it. `groups`
/// are what CodeDeploy described: the tagged group, or every group naming the service.
pub fn choose_target(
    service: &ServiceView,
    groups: &[GroupView],
) -> Result<CodeDeployTarget, TagProblem> {
    let tagged = service
        .tags
        .get(TAG_CODEDEPLOY)
        .map(|v| DeploymentGroup::from_tag(v))
        .transpose()?;
    let deploying: Vec<&GroupView> = groups
        .iter()
        .filter(|g| g.services.contains(&service.key))
        .collect();
    let group = match (&tagged, deploying.as_slice()) {
        (Some(tagged), _) => match groups.iter().find(|g| &g.group == tagged) {
            None => {
                return Err(codedeploy_problem(
                    service,
                    format!("CodeDeploy has no deployment group {tagged}"),
                ));
            }
            Some(g) if !g.services.contains(&service.key) => {
                return Err(codedeploy_problem(
                    service,
                    format!(
                        "the deployment group {tagged} deploys {}, not {}",
                        names(&g.services),
                        service.key
                    ),
                ));
            }
            Some(g) => g.group.clone(),
        },
        (None, [one]) => one.group.clone(),
        (None, []) => {
            return Err(codedeploy_problem(
                service,
                format!(
                    "no CodeDeploy deployment group names {} among its ECS services; tag {TAG_CODEDEPLOY} = APPLICATION/GROUP",
                    service.key
                ),
            ));
        }
        (None, several) => {
            let several: Vec<String> = several.iter().map(|g| g.group.to_string()).collect();
            return Err(codedeploy_problem(
                service,
                format!(
                    "several deployment groups name {}: {}; tag {TAG_CODEDEPLOY} with the one to use",
                    service.key,
                    several.join(", ")
                ),
            ));
        }
    };
    let Some(container) = &service.load_balanced else {
        return Err(codedeploy_problem(
            service,
            "the service has no load balancer with a container name and port, which the AppSpec needs"
                .into(),
        ));
    };
    let hooks = match service.tags.get(TAG_CODEDEPLOY_HOOKS) {
        Some(value) => parse_hooks(value)?,
        None => Vec::new(),
    };
    Ok(CodeDeployTarget {
        group,
        container_name: container.name.clone(),
        container_port: container.port,
        hooks,
        placement: service.placement.clone(),
    })
}

fn names(services: &[ServiceKey]) -> String {
    match services {
        [] => "no ECS service".into(),
        services => services
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A problem of the service's CodeDeploy set-up, reported on `deckhand:codedeploy` when the
/// service has it, else on `deckhand:deploy`.
fn codedeploy_problem(service: &ServiceView, message: String) -> TagProblem {
    let tag = if service.tags.contains_key(TAG_CODEDEPLOY) {
        TAG_CODEDEPLOY
    } else {
        super::settings::TAG_DEPLOY
    };
    TagProblem {
        tag: tag.into(),
        value: service.tags.get(tag).cloned().unwrap_or_default(),
        message,
    }
}

/// The AppSpec of a deployment of `task_definition` (CodeDeploy User Guide, "AppSpec File
/// example for an Amazon ECS deployment" and "AppSpec 'resources' section for Amazon ECS
/// deployments"), as the JSON `AppSpecContent` carries. The service's capacity provider
/// strategy, platform version and network go into `TargetService.Properties`: CodeDeploy
/// starts the new task set with what the AppSpec says, and without them with no capacity
/// provider strategy and the `LATEST` platform version. The network is given whole or not at
/// all, as the page requires (`AssignPublicIp` `DISABLED` where ECS says nothing, its default).
pub fn appspec(task_definition: &str, target: &CodeDeployTarget) -> String {
    let mut properties = json!({
        "TaskDefinition": task_definition,
        "LoadBalancerInfo": {
            "ContainerName": target.container_name,
            "ContainerPort": target.container_port,
        },
    });
    let placement = &target.placement;
    if let Some(version) = &placement.platform_version {
        properties["PlatformVersion"] = json!(version);
    }
    if let Some(network) = &placement.network {
        properties["NetworkConfiguration"] = json!({
            "AwsvpcConfiguration": {
                "Subnets": network.subnets,
                "SecurityGroups": network.security_groups,
                "AssignPublicIp": network.assign_public_ip.as_deref().unwrap_or("DISABLED"),
            }
        });
    }
    if !placement.capacity_provider_strategy.is_empty() {
        let strategy: Vec<Value> = placement
            .capacity_provider_strategy
            .iter()
            .map(|i| json!({"Base": i.base, "CapacityProvider": i.capacity_provider, "Weight": i.weight}))
            .collect();
        properties["CapacityProviderStrategy"] = Value::Array(strategy);
    }
    let mut spec = json!({
        "version": 0.0,
        "Resources": [{
            "TargetService": {
                "Type": "AWS::ECS::Service",
                "Properties": properties,
            },
        }],
    });
    if !target.hooks.is_empty() {
        let hooks: Vec<Value> = target
            .hooks
            .iter()
            .map(|h| json!({ h.stage.as_str(): h.function }))
            .collect();
        spec["Hooks"] = Value::Array(hooks);
    }
    spec.to_string()
}

/// The revision the service runs, as far as deckhand's deployment `deployed` (its `to`) is
/// concerned: ECS's `taskDefinition` names the primary task set, so during a CodeDeploy
/// deployment the new revision runs in a task set of its own and counts as running.
pub fn running_revision<'a>(service: &'a ServiceView, deployed: Option<&'a str>) -> &'a str {
    match deployed {
        Some(to)
            if service.controller == DeploymentController::CodeDeploy
                && service.task_sets.iter().any(|t| t == to) =>
        {
            to
        }
        _ => &service.task_definition,
    }
}

/// A CodeDeploy deployment still running: created, queued, in progress, baking, or ready
/// (waiting to reroute traffic). `Succeeded`, `Failed` and `Stopped` ended.
pub fn in_progress(status: &str) -> bool {
    matches!(
        status,
        "Created" | "Queued" | "InProgress" | "Baking" | "Ready"
    )
}

/// `CodeDeploy Deployment State-change Notification`, the part deckhand reads: it names the
/// group, not the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeDeployEvent {
    pub event_id: String,
    pub group: DeploymentGroup,
    pub deployment_id: String,
    /// CodeDeploy's word: `START`, `SUCCESS`, `FAILURE`, `STOP`, `READY`, ...
    pub state: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// What a `CodeDeploy Deployment State-change Notification` says of a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeDeployState {
    Succeeded,
    /// `FAILURE`, or `STOP`: the deployment did not reach its revision.
    Failed,
    /// `START`, `READY` and others: the deployment goes on.
    Other,
}

impl CodeDeployState {
    pub fn parse(state: &str) -> Self {
        match state {
            "SUCCESS" => Self::Succeeded,
            "FAILURE" | "STOP" => Self::Failed,
            _ => Self::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fleet::LoadBalancedContainer;

    fn service(tags: &[(&str, &str)]) -> ServiceView {
        ServiceView {
            key: ServiceKey::new("prod", "web"),
            arn: "arn:aws:ecs:eu-west-1:123456789012:service/prod/web".into(),
            task_definition: "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:1".into(),
            desired_count: 2,
            running_count: 2,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            deployments: Vec::new(),
            controller: DeploymentController::CodeDeploy,
            target_groups: Vec::new(),
            strategy: Default::default(),
            load_balanced: Some(LoadBalancedContainer {
                name: "web".into(),
                port: 8080,
            }),
            task_sets: Vec::new(),
            placement: Default::default(),
            early_success: None,
            service_revisions: Vec::new(),
        }
    }

    fn group(app: &str, name: &str, services: &[(&str, &str)]) -> GroupView {
        GroupView {
            group: DeploymentGroup::new(app, name),
            services: services
                .iter()
                .map(|(c, s)| ServiceKey::new(*c, *s))
                .collect(),
        }
    }

    #[test]
    fn the_group_whose_ecs_services_name_the_service_deploys_it() {
        let groups = [
            group("shop", "api", &[("prod", "api")]),
            group("shop", "web", &[("prod", "web")]),
        ];
        let target = choose_target(&service(&[]), &groups).unwrap();
        assert_eq!(target.group, DeploymentGroup::new("shop", "web"));
        assert_eq!(
            (target.container_name.as_str(), target.container_port),
            ("web", 8080)
        );
        assert!(target.hooks.is_empty());
    }

    #[test]
    fn the_tag_chooses_and_must_name_a_group_that_deploys_the_service() {
        let groups = [group("shop", "web-prod", &[("prod", "web")])];
        let tagged = service(&[(TAG_CODEDEPLOY, "shop/web-prod")]);
        assert_eq!(
            choose_target(&tagged, &groups).unwrap().group.to_string(),
            "shop/web-prod"
        );
        let other = [group("shop", "web-prod", &[("prod", "api")])];
        let e = choose_target(&tagged, &other).unwrap_err();
        assert_eq!(e.tag, TAG_CODEDEPLOY);
        assert!(e.message.contains("deploys prod/api, not prod/web"), "{e}");
        let e = choose_target(&tagged, &[]).unwrap_err();
        assert!(
            e.message.contains("no deployment group shop/web-prod"),
            "{e}"
        );
        for bad in ["shop", "/web", "shop/", "a/b/c", ""] {
            let e = choose_target(&service(&[(TAG_CODEDEPLOY, bad)]), &groups).unwrap_err();
            assert_eq!(e.tag, TAG_CODEDEPLOY, "{bad}");
            assert!(e.message.contains("APPLICATION/GROUP"), "{bad}: {e}");
        }
    }

    #[test]
    fn no_group_several_groups_or_no_load_balancer_is_a_problem_of_the_deploy_tag() {
        let e = choose_target(&service(&[]), &[]).unwrap_err();
        assert_eq!(e.tag, crate::domain::settings::TAG_DEPLOY);
        assert!(e.message.contains("tag deckhand:codedeploy"), "{e}");
        let two = [
            group("a", "web", &[("prod", "web")]),
            group("b", "web", &[("prod", "web")]),
        ];
        let e = choose_target(&service(&[]), &two).unwrap_err();
        assert!(e.message.contains("a/web, b/web"), "{e}");
        let mut bare = service(&[]);
        bare.load_balanced = None;
        let e = choose_target(&bare, &[group("a", "web", &[("prod", "web")])]).unwrap_err();
        assert!(e.message.contains("container name and port"), "{e}");
    }

    #[test]
    fn hooks_name_ecs_lifecycle_events_once_each() {
        let hooks = parse_hooks("BeforeAllowTraffic=check AfterAllowTestTraffic=arn:aws:lambda:eu-west-1:1:function:smoke").unwrap();
        assert_eq!(hooks.len(), 2);
        assert_eq!(
            hooks[1].function,
            "arn:aws:lambda:eu-west-1:1:function:smoke"
        );
        for bad in [
            "BeforeAllowTraffic",
            "ApplicationStart=x",
            "BeforeAllowTraffic=",
            "BeforeAllowTraffic=a BeforeAllowTraffic=b",
        ] {
            let e = parse_hooks(bad).unwrap_err();
            assert_eq!(e.tag, TAG_CODEDEPLOY_HOOKS, "{bad}");
        }
        assert_eq!(parse_hooks("").unwrap(), Vec::new());
    }

    #[test]
    fn the_appspec_names_the_revision_the_container_and_the_hooks() {
        let mut target = choose_target(
            &service(&[(TAG_CODEDEPLOY_HOOKS, "BeforeAllowTraffic=check")]),
            &[group("shop", "web", &[("prod", "web")])],
        )
        .unwrap();
        let arn = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7";
        let spec: Value = serde_json::from_str(&appspec(arn, &target)).unwrap();
        let properties = &spec["Resources"][0]["TargetService"]["Properties"];
        assert_eq!(
            spec["Resources"][0]["TargetService"]["Type"],
            "AWS::ECS::Service"
        );
        assert_eq!(properties["TaskDefinition"], arn);
        assert_eq!(properties["LoadBalancerInfo"]["ContainerName"], "web");
        assert_eq!(properties["LoadBalancerInfo"]["ContainerPort"], 8080);
        assert_eq!(spec["Hooks"], json!([{"BeforeAllowTraffic": "check"}]));
        target.hooks.clear();
        let spec: Value = serde_json::from_str(&appspec(arn, &target)).unwrap();
        assert!(spec.get("Hooks").is_none());
        // A service that says nothing of where it runs: CodeDeploy keeps what it has.
        let properties = &spec["Resources"][0]["TargetService"]["Properties"];
        for absent in [
            "PlatformVersion",
            "NetworkConfiguration",
            "CapacityProviderStrategy",
        ] {
            assert!(properties.get(absent).is_none(), "{absent}: {properties}");
        }
    }

    #[test]
    fn the_appspec_keeps_where_the_service_runs() {
        use crate::domain::fleet::{AwsVpc, CapacityProviderItem, Placement};
        let mut s = service(&[]);
        s.placement = Placement {
            capacity_provider_strategy: vec![
                CapacityProviderItem {
                    capacity_provider: "FARGATE_SPOT".into(),
                    weight: 3,
                    base: 0,
                },
                CapacityProviderItem {
                    capacity_provider: "FARGATE".into(),
                    weight: 1,
                    base: 1,
                },
            ],
            platform_version: Some("1.4.0".into()),
            network: Some(AwsVpc {
                subnets: vec!["subnet-a".into(), "subnet-b".into()],
                security_groups: vec!["sg-1".into()],
                assign_public_ip: None,
            }),
        };
        let target = choose_target(&s, &[group("shop", "web", &[("prod", "web")])]).unwrap();
        let spec: Value = serde_json::from_str(&appspec("web:7", &target)).unwrap();
        let properties = &spec["Resources"][0]["TargetService"]["Properties"];
        assert_eq!(properties["PlatformVersion"], "1.4.0");
        assert_eq!(
            properties["CapacityProviderStrategy"],
            json!([
                {"Base": 0, "CapacityProvider": "FARGATE_SPOT", "Weight": 3},
                {"Base": 1, "CapacityProvider": "FARGATE", "Weight": 1}
            ])
        );
        // All of the network or none of it: ECS's default where it says nothing.
        assert_eq!(
            properties["NetworkConfiguration"],
            json!({"AwsvpcConfiguration": {"Subnets": ["subnet-a", "subnet-b"],
                "SecurityGroups": ["sg-1"], "AssignPublicIp": "DISABLED"}})
        );
    }

    #[test]
    fn a_task_set_of_deckhands_revision_counts_as_running_only_for_codedeploy() {
        let to = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:2";
        let mut s = service(&[]);
        assert_eq!(running_revision(&s, Some(to)), s.task_definition);
        s.task_sets = vec![s.task_definition.clone(), to.to_owned()];
        assert_eq!(running_revision(&s, Some(to)), to);
        assert_eq!(running_revision(&s, None), s.task_definition);
        s.controller = DeploymentController::External;
        assert_eq!(running_revision(&s, Some(to)), s.task_definition);
    }

    #[test]
    fn statuses_and_states_read_as_codedeploy_writes_them() {
        for s in ["Created", "Queued", "InProgress", "Baking", "Ready"] {
            assert!(in_progress(s), "{s}");
        }
        for s in ["Succeeded", "Failed", "Stopped"] {
            assert!(!in_progress(s), "{s}");
        }
        assert_eq!(
            CodeDeployState::parse("SUCCESS"),
            CodeDeployState::Succeeded
        );
        assert_eq!(CodeDeployState::parse("FAILURE"), CodeDeployState::Failed);
        assert_eq!(CodeDeployState::parse("STOP"), CodeDeployState::Failed);
        assert_eq!(CodeDeployState::parse("START"), CodeDeployState::Other);
    }
}
