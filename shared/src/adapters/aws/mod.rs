//! The AWS adapters, built once per process from the standard AWS configuration.

mod autoscaling;
mod cloudwatch;
mod codedeploy;
mod dynamodb;
mod ecr;
mod ecs;
mod elb;
mod eventbridge;
mod lambda;
mod sns;
mod ssm;

use std::sync::Arc;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ecs::config::retry::{RetryConfig, RetryMode, RetryPartition};

pub use autoscaling::ApplicationAutoscaling;
pub use cloudwatch::CloudWatchAlarms;
pub use codedeploy::CodeDeployGroups;
pub use dynamodb::DynamoStore;
pub use ecr::EcrRegistry;
pub use ecs::{EcsCluster, clone_revision};
pub use elb::ElbTraffic;
pub use eventbridge::{EventBridgeAnnouncer, NoAnnouncer, with_announcer};
pub use lambda::{LambdaChecks, NoChecks, with_checks};
pub use sns::SnsNotifier;
pub use ssm::{NoCalendars, SsmCalendars, with_calendars};

use crate::app::Ports;
use crate::config::Config;

/// The deploy function's ports: every one, with the Lambda client of traffic gates' checks and
/// the Systems Manager client of change calendars, which the other functions do without.
pub fn deploy_ports(ports: Ports, sdk: &aws_config::SdkConfig) -> Ports {
    with_calendars(with_checks(ports, sdk), sdk)
}
use crate::ports::{Clock, PortError, PortErrorKind, SystemClock};

/// The SDK clients deckhand uses, built once per process.
#[derive(Clone, Debug)]
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub tagging: aws_sdk_resourcegroupstagging::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sns: aws_sdk_sns::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub codedeploy: aws_sdk_codedeploy::Client,
}

impl Clients {
    /// From one `SdkConfig`, which honours `AWS_ENDPOINT_URL` and the rest of the standard
    /// configuration.
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self::in_partition(sdk, None)
    }

    /// The same, with the adaptive retry's rate limiter of ECS and Application Auto Scaling
    /// kept apart from the rest of the process under `partition` (the tests give each stack
    /// its own, so that one test's throttling never slows another's calls).
    pub fn in_partition(sdk: &aws_config::SdkConfig, partition: Option<&str>) -> Self {
        // Both throttle per account: their clients retry in the SDK's adaptive mode, which
        // after a throttle also slows this process's next calls of that service down.
        let retry = sdk
            .retry_config()
            .cloned()
            .unwrap_or_else(RetryConfig::standard)
            .with_retry_mode(RetryMode::Adaptive);
        let mut ecs = aws_sdk_ecs::config::Builder::from(sdk).retry_config(retry.clone());
        let mut autoscaling =
            aws_sdk_applicationautoscaling::config::Builder::from(sdk).retry_config(retry);
        if let Some(partition) = partition {
            ecs = ecs.retry_partition(RetryPartition::new(format!("ecs-{partition}")));
            autoscaling = autoscaling
                .retry_partition(RetryPartition::new(format!("autoscaling-{partition}")));
        }
        Self {
            ecs: aws_sdk_ecs::Client::from_conf(ecs.build()),
            tagging: aws_sdk_resourcegroupstagging::Client::new(sdk),
            ecr: aws_sdk_ecr::Client::new(sdk),
            autoscaling: aws_sdk_applicationautoscaling::Client::from_conf(autoscaling.build()),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(sdk),
            codedeploy: aws_sdk_codedeploy::Client::new(sdk),
        }
    }

    /// Every port on AWS, with the machine's clock.
    pub fn ports(&self, config: &Config) -> Ports {
        self.ports_at(config, Arc::new(SystemClock))
    }

    /// Every port on AWS, with `clock`: the store's too, which stamps each lock's release.
    pub fn ports_at(&self, config: &Config, clock: Arc<dyn Clock>) -> Ports {
        // One table holds the state and the image index.
        let dynamodb = self.dynamodb.clone();
        let store = Arc::new(DynamoStore::with_clock(
            dynamodb,
            &config.table,
            clock.clone(),
        ));
        Ports {
            ecs: Arc::new(EcsCluster::new(self.ecs.clone(), self.tagging.clone())),
            ecr: Arc::new(EcrRegistry::new(self.ecr.clone())),
            autoscaling: Arc::new(ApplicationAutoscaling::new(self.autoscaling.clone())),
            alarms: Arc::new(CloudWatchAlarms::new(self.cloudwatch.clone())),
            traffic: Arc::new(ElbTraffic::new(self.elb.clone())),
            codedeploy: Arc::new(CodeDeployGroups::new(self.codedeploy.clone())),
            // Only the deploy function asks a traffic gate's check: it adds them (`with_checks`),
            // and the others carry no Lambda client.
            checks: Arc::new(NoChecks),
            // Only the scheduler announces known-good revisions (`with_announcer`).
            announcer: Arc::new(NoAnnouncer),
            // Only the deploy function reads change calendars (`with_calendars`): the held
            // pushes are its to deploy when a calendar opens.
            calendars: Arc::new(NoCalendars),
            store: store.clone(),
            images: store.clone(),
            pace: store,
            notifier: Arc::new(SnsNotifier::new(
                self.sns.clone(),
                &config.topic_arn,
                config.chat_topic_arn.as_deref(),
                config.environment.as_deref(),
            )),
            // Lambda's `start` puts them in the log; the command line and the tests keep
            // their output for people.
            metrics: Arc::new(crate::adapters::emf::NoMetrics),
            clock,
        }
    }
}

/// Whether a failed request may still have been applied: its answer was lost (connection
/// dropped, timed out, unreadable) or the service failed on its side. Throttling and other
/// client errors were refused before anything happened.
pub(crate) fn may_have_been_applied<E>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ConstructionFailure(_) => false,
        SdkError::ServiceError(e) => e.raw().status().is_server_error(),
        SdkError::DispatchFailure(e) => !e.is_user(),
        _ => true,
    }
}

/// The wait before attempt `attempt` (2, 3, ...) of a call deckhand retries itself: the SDK's
/// standard backoff, exponential from one second to twenty with full jitter.
pub(crate) fn backoff(attempt: u32) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let ceiling_ms = 1_000u64
        .saturating_mul(1 << attempt.saturating_sub(2).min(5))
        .min(20_000);
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    std::time::Duration::from_millis(random % (ceiling_ms + 1))
}

/// Maps an SDK error to a port error, keeping the service's code and message.
pub fn port_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let kind = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            PortErrorKind::Transient
        }
        SdkError::ServiceError(e) => match e.err().code() {
            // A write that met another transaction on the same item (a lock taken while its
            // holder commits): the item is free a moment later.
            Some(code)
                if code.contains("Throttl")
                    || code == "ServiceUnavailable"
                    || code == "TransactionConflictException" =>
            {
                PortErrorKind::Transient
            }
            Some(code) if code.contains("NotFound") => PortErrorKind::NotFound,
            // ECS's answer to a change the resource's state no longer allows (a pause hook
            // someone else answered, a deployment that ended).
            Some("ConflictException") => PortErrorKind::Conflict,
            _ if e.raw().status().is_server_error() => PortErrorKind::Transient,
            _ => PortErrorKind::Other,
        },
        _ => PortErrorKind::Other,
    };
    let message = match err.as_service_error() {
        Some(service_error) => format!(
            "{}: {}",
            service_error.code().unwrap_or("error"),
            service_error.message().unwrap_or("no message")
        ),
        None => DisplayErrorContext(&err).to_string(),
    };
    PortError::new(operation, kind, message)
}
