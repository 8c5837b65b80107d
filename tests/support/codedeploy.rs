//! A stack's services deployed by CodeDeploy, as the emulator models it
//! (scripts/emulator_codedeploy.py): the service and its deployment group, the group's
//! deployments, CodeDeploy's end of one, and the event CodeDeploy sends then.

use aws_sdk_codedeploy::types::{ComputePlatform, DeploymentStatus, EcsService};
use aws_sdk_ecs::types::{DeploymentController, DeploymentControllerType, LoadBalancer};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::harness::{ACCOUNT, REGION, Stack, default_network, ecs_tags, emulator_post};

impl Stack {
    fn codedeploy(&self) -> aws_sdk_codedeploy::Client {
        aws_sdk_codedeploy::Client::new(&self.sdk)
    }

    /// This stack's CodeDeploy application (one per stack: the emulator is shared).
    pub fn codedeploy_application(&self) -> String {
        format!("shop-{}", self.id)
    }

    /// A `CODE_DEPLOY` service, container `web` on port 8080 behind a target group, and the
    /// deployment group `GROUP` of the stack's ECS application whose `ecsServices` name it.
    pub async fn create_codedeploy_service(
        &self,
        name: &str,
        group: &str,
        task_definition: &str,
        tags: &[(&str, &str)],
    ) {
        self.create_codedeploy_service_placed(name, group, task_definition, tags, false)
            .await;
    }

    /// The same; `placed`: on FARGATE_SPOT (weight 3) with one task on FARGATE (base 1),
    /// platform version 1.4.0, in the default VPC's subnets and security group without public
    /// IPs, as a cost-conscious team runs it.
    pub async fn create_codedeploy_service_placed(
        &self,
        name: &str,
        group: &str,
        task_definition: &str,
        tags: &[(&str, &str)],
        placed: bool,
    ) {
        use aws_sdk_ecs::types::{
            AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, NetworkConfiguration,
        };
        let mut create = self.ecs.create_service();
        if placed {
            let (subnets, security_group) = default_network(self.emulator_url());
            let item = |provider: &str, weight: i32, base: i32| {
                CapacityProviderStrategyItem::builder()
                    .capacity_provider(provider)
                    .weight(weight)
                    .base(base)
                    .build()
                    .expect("a capacity provider")
            };
            create = create
                .capacity_provider_strategy(item("FARGATE_SPOT", 3, 0))
                .capacity_provider_strategy(item("FARGATE", 1, 1))
                .platform_version("1.4.0")
                .network_configuration(
                    NetworkConfiguration::builder()
                        .awsvpc_configuration(
                            AwsVpcConfiguration::builder()
                                .set_subnets(Some(subnets))
                                .security_groups(security_group)
                                .assign_public_ip(AssignPublicIp::Disabled)
                                .build()
                                .expect("an awsvpc configuration"),
                        )
                        .build(),
                );
        }
        create
            .cluster(&self.cluster)
            .service_name(name)
            .task_definition(task_definition)
            .desired_count(2)
            .deployment_controller(
                DeploymentController::builder()
                    .r#type(DeploymentControllerType::CodeDeploy)
                    .build()
                    .expect("a controller type"),
            )
            .load_balancers(
                LoadBalancer::builder()
                    .target_group_arn(format!(
                        "arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/{name}-blue/1"
                    ))
                    .container_name("web")
                    .container_port(8080)
                    .build(),
            )
            .set_tags(Some(ecs_tags(tags)))
            .send()
            .await
            .expect("create a CODE_DEPLOY service");
        let client = self.codedeploy();
        let application = self.codedeploy_application();
        // The application may exist from an earlier service of the stack.
        let _ = client
            .create_application()
            .application_name(&application)
            .compute_platform(ComputePlatform::Ecs)
            .send()
            .await;
        client
            .create_deployment_group()
            .application_name(&application)
            .deployment_group_name(group)
            .service_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/codedeploy"))
            .ecs_services(
                EcsService::builder()
                    .cluster_name(&self.cluster)
                    .service_name(name)
                    .build(),
            )
            .send()
            .await
            .expect("create a deployment group");
    }

    /// The ids of the group's deployments still running.
    pub async fn codedeploy_running(&self, group: &str) -> Vec<String> {
        self.codedeploy()
            .list_deployments()
            .application_name(self.codedeploy_application())
            .deployment_group_name(group)
            .include_only_statuses(DeploymentStatus::InProgress)
            .send()
            .await
            .expect("list deployments")
            .deployments()
            .to_vec()
    }

    /// Every deployment of the group, running or ended.
    pub async fn codedeploy_deployments(&self, group: &str) -> Vec<String> {
        self.codedeploy()
            .list_deployments()
            .application_name(self.codedeploy_application())
            .deployment_group_name(group)
            .send()
            .await
            .expect("list deployments")
            .deployments()
            .to_vec()
    }

    /// CodeDeploy ends the deployment: `Succeeded` (its task set becomes primary) or `Failed`.
    pub fn end_codedeploy_deployment(&self, deployment_id: &str, status: &str) {
        emulator_post(
            self.emulator_url(),
            "/_deckhand/codedeploy/deployments/end",
            &json!({"deploymentId": deployment_id, "status": status}),
        );
    }

    /// The deployment fails and CodeDeploy's automatic rollback starts: its id.
    pub fn fail_with_codedeploy_rollback(&self, deployment_id: &str) -> String {
        let answer = emulator_post(
            self.emulator_url(),
            "/_deckhand/codedeploy/deployments/end",
            &json!({"deploymentId": deployment_id, "status": "Failed", "rollback": true}),
        );
        answer["rollbackDeploymentId"]
            .as_str()
            .unwrap_or_else(|| panic!("a rollback deployment: {answer}"))
            .to_owned()
    }

    /// A deployment of the group that deckhand did not start (a pipeline's), of
    /// `task_definition`: its id.
    pub async fn deploy_elsewhere(&self, group: &str, task_definition: &str) -> String {
        use aws_sdk_codedeploy::types::{AppSpecContent, RevisionLocation, RevisionLocationType};
        let appspec = json!({"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service",
            "Properties": {"TaskDefinition": task_definition,
                "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080}}}}]});
        self.codedeploy()
            .create_deployment()
            .application_name(self.codedeploy_application())
            .deployment_group_name(group)
            .revision(
                RevisionLocation::builder()
                    .revision_type(RevisionLocationType::AppSpecContent)
                    .app_spec_content(
                        AppSpecContent::builder()
                            .content(appspec.to_string())
                            .build(),
                    )
                    .build(),
            )
            .description("the pipeline's deployment")
            .send()
            .await
            .expect("a deployment of the pipeline")
            .deployment_id()
            .expect("its id")
            .to_owned()
    }

    /// The service's task sets, as ECS describes them.
    async fn described_task_sets(&self, service: &str) -> Vec<aws_sdk_ecs::types::TaskSet> {
        let described = self
            .ecs
            .describe_services()
            .cluster(&self.cluster)
            .services(service)
            .send()
            .await
            .expect("describe services");
        described
            .services()
            .iter()
            .flat_map(|s| s.task_sets().to_vec())
            .collect()
    }

    /// Where the task set of `task_definition` runs: its capacity provider strategy
    /// (`PROVIDER:WEIGHT:BASE`), platform version, launch type and awsvpc network, as ECS
    /// describes it.
    pub async fn task_set_placement(&self, service: &str, task_definition: &str) -> Value {
        let task_set = self
            .described_task_sets(service)
            .await
            .into_iter()
            .find(|t| t.task_definition() == Some(task_definition))
            .expect("a task set of the revision");
        let network = task_set
            .network_configuration()
            .and_then(|n| n.awsvpc_configuration());
        json!({
            "capacityProviderStrategy": task_set.capacity_provider_strategy().iter()
                .map(|i| format!("{}:{}:{}", i.capacity_provider(), i.weight(), i.base()))
                .collect::<Vec<_>>(),
            "platformVersion": task_set.platform_version(),
            "launchType": task_set.launch_type().map(|l| l.as_str()),
            "subnets": network.map(|n| n.subnets().len()),
            "securityGroups": network.map(|n| n.security_groups().to_vec()),
            "assignPublicIp": network.and_then(|n| n.assign_public_ip()).map(|a| a.as_str()),
        })
    }

    /// The task definitions of the service's task sets.
    pub async fn task_sets(&self, service: &str) -> Vec<String> {
        self.described_task_sets(service)
            .await
            .iter()
            .filter_map(|t| t.task_definition().map(str::to_owned))
            .collect()
    }

    /// CodeDeploy's `Deployment State-change Notification` for a deployment of the group.
    pub fn codedeploy_event(
        &self,
        id: &str,
        group: &str,
        deployment_id: &str,
        state: &str,
        at: DateTime<Utc>,
    ) -> Value {
        let mut event = crate::harness::sample_event("codedeploy-deployment-success");
        let application = self.codedeploy_application();
        event["id"] = json!(id);
        event["time"] = json!(at.to_rfc3339_opts(SecondsFormat::Secs, true));
        event["resources"] = json!([
            format!("arn:aws:codedeploy:{REGION}:{ACCOUNT}:application:{application}"),
            format!("arn:aws:codedeploy:{REGION}:{ACCOUNT}:deploymentgroup:{application}/{group}"),
        ]);
        event["detail"]["application"] = json!(application);
        event["detail"]["deploymentGroup"] = json!(group);
        event["detail"]["deploymentId"] = json!(deployment_id);
        event["detail"]["state"] = json!(state);
        event
    }
}
