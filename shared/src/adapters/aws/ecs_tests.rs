use aws_sdk_ecs::types::{
    Compatibility, ContainerCondition, ContainerDefinition, ContainerDependency, CpuArchitecture,
    EfsVolumeConfiguration, EphemeralStorage, HealthCheck, KeyValuePair, LogConfiguration,
    LogDriver, NetworkMode, OsFamily, PortMapping, ProxyConfiguration, ProxyConfigurationType,
    RuntimePlatform, Secret, TaskDefinitionPlacementConstraint,
    TaskDefinitionPlacementConstraintType, Volume,
};

use super::*;

const APP: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:main-41";
const SIDECAR: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/envoy:v1.30";
const PINNED: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web@sha256:97981bd7144a472103576073091e95ce92d542e16987942124c4ef9904aa33f3";

fn maximal() -> TaskDefinition {
    let app = ContainerDefinition::builder()
        .name("web")
        .image(APP)
        .essential(true)
        .cpu(256)
        .memory_reservation(512)
        .port_mappings(PortMapping::builder().container_port(8080).build())
        .environment(
            KeyValuePair::builder()
                .name("DATABASE_URL")
                .value("postgres://user:hunter2@db/app")
                .build(),
        )
        .secrets(
            Secret::builder()
                .name("API_KEY")
                .value_from("arn:aws:secretsmanager:eu-west-1:123456789012:secret:api")
                .build()
                .unwrap(),
        )
        .log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", "/ecs/web")
                .build()
                .unwrap(),
        )
        .health_check(
            HealthCheck::builder()
                .command("CMD-SHELL")
                .command("curl -f localhost:8080/health")
                .interval(10)
                .build()
                .unwrap(),
        )
        .depends_on(
            ContainerDependency::builder()
                .container_name("envoy")
                .condition(ContainerCondition::Healthy)
                .build()
                .unwrap(),
        )
        .build();
    let sidecar = ContainerDefinition::builder()
        .name("envoy")
        .image(SIDECAR)
        .essential(true)
        .build();
    TaskDefinition::builder()
        .task_definition_arn("arn:aws:ecs:eu-west-1:123456789012:task-definition/web:41")
        .family("web")
        .revision(41)
        .task_role_arn("arn:aws:iam::123456789012:role/web-task")
        .execution_role_arn("arn:aws:iam::123456789012:role/web-exec")
        .network_mode(NetworkMode::Awsvpc)
        .container_definitions(app)
        .container_definitions(sidecar)
        .volumes(
            Volume::builder()
                .name("data")
                .efs_volume_configuration(
                    EfsVolumeConfiguration::builder()
                        .file_system_id("fs-1234")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .placement_constraints(
            TaskDefinitionPlacementConstraint::builder()
                .r#type(TaskDefinitionPlacementConstraintType::MemberOf)
                .expression("attribute:ecs.availability-zone in [eu-west-1a]")
                .build(),
        )
        .requires_compatibilities(Compatibility::Fargate)
        .cpu("512")
        .memory("1024")
        .pid_mode(aws_sdk_ecs::types::PidMode::Task)
        .ipc_mode(aws_sdk_ecs::types::IpcMode::None)
        .proxy_configuration(
            ProxyConfiguration::builder()
                .r#type(ProxyConfigurationType::Appmesh)
                .container_name("envoy")
                .properties(
                    KeyValuePair::builder()
                        .name("AppPorts")
                        .value("8080")
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .ephemeral_storage(EphemeralStorage::builder().size_in_gib(50).build())
        .runtime_platform(
            RuntimePlatform::builder()
                .cpu_architecture(CpuArchitecture::Arm64)
                .operating_system_family(OsFamily::Linux)
                .build(),
        )
        .enable_fault_injection(true)
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .build()
}

fn client() -> aws_sdk_ecs::Client {
    let config = aws_sdk_ecs::Config::builder()
        .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
        .region(aws_sdk_ecs::config::Region::new("eu-west-1"))
        .build();
    aws_sdk_ecs::Client::from_conf(config)
}

#[test]
fn a_clone_changes_only_the_chosen_image() {
    let td = maximal();
    let tags = vec![Tag::builder().key("team").value("payments").build()];
    let changes = vec![ImageChange {
        container: "web".into(),
        from: APP.into(),
        to: PINNED.into(),
    }];
    let builder = clone_revision(client().register_task_definition(), &td, &tags, &changes);
    let input = builder.as_input();

    assert_eq!(input.get_family(), &td.family);
    assert_eq!(input.get_task_role_arn(), &td.task_role_arn);
    assert_eq!(input.get_execution_role_arn(), &td.execution_role_arn);
    assert_eq!(input.get_network_mode(), &td.network_mode);
    assert_eq!(input.get_volumes(), &td.volumes);
    assert_eq!(input.get_placement_constraints(), &td.placement_constraints);
    assert_eq!(
        input.get_requires_compatibilities(),
        &td.requires_compatibilities
    );
    assert_eq!(input.get_cpu(), &td.cpu);
    assert_eq!(input.get_memory(), &td.memory);
    assert_eq!(input.get_pid_mode(), &td.pid_mode);
    assert_eq!(input.get_ipc_mode(), &td.ipc_mode);
    assert_eq!(input.get_proxy_configuration(), &td.proxy_configuration);
    assert_eq!(input.get_ephemeral_storage(), &td.ephemeral_storage);
    assert_eq!(input.get_runtime_platform(), &td.runtime_platform);
    assert_eq!(
        input.get_enable_fault_injection(),
        &td.enable_fault_injection
    );
    assert_eq!(input.get_tags(), &Some(tags));

    let containers = input.get_container_definitions().as_ref().unwrap();
    let original = td.container_definitions.as_ref().unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0].image(), Some(PINNED));
    let mut expected_app = original[0].clone();
    expected_app.image = Some(PINNED.into());
    assert_eq!(
        containers[0], expected_app,
        "every other field of the changed container survives"
    );
    assert_eq!(containers[1], original[1], "other containers are untouched");
}

#[test]
fn absent_fields_stay_absent() {
    let td = TaskDefinition::builder()
        .family("bare")
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image(APP)
                .build(),
        )
        .build();
    let builder = clone_revision(client().register_task_definition(), &td, &[], &[]);
    let input = builder.as_input();
    assert_eq!(input.get_volumes(), &None);
    assert_eq!(input.get_tags(), &None);
    assert_eq!(input.get_cpu(), &None);
    assert_eq!(
        input.get_container_definitions().as_ref().unwrap()[0].image(),
        Some(APP)
    );
}
