//! The fleet a benchmark runs against: `size` services on a moto server of their own, 100 per
//! cluster, each with a task-definition family and an ECR repository of its own, opted in to
//! deploys (any tag), rollback (by its metric) and the office-hours schedule (UTC, daily
//! 07:00-19:00); every tenth autoscaled. Service 0 is the one pushes and alarms are for.

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
use aws_sdk_ecs::types::ContainerDefinition;
use chrono::{DateTime, Days, SecondsFormat, TimeZone, Utc};
use futures::{StreamExt, stream};
use serde_json::{Value, json};
use testkit::harness::{ACCOUNT, REGION, Stack};

const PER_CLUSTER: usize = 100;
const SETUP_CONCURRENCY: usize = 16;
/// Service 0's repository, the one pushes go to.
const PUSHED_REPOSITORY: &str = "app-0";

pub struct Fleet {
    pub stack: Stack,
    pub clusters: Vec<String>,
    /// 22:00 and 07:00 UTC, tomorrow and the day after: asleep, then awake.
    pub night: DateTime<Utc>,
    pub morning: DateTime<Utc>,
    pushes: std::sync::atomic::AtomicUsize,
}

fn service_name(i: usize) -> String {
    format!("svc-{i:04}")
}

impl Fleet {
    pub async fn create(size: usize) -> Self {
        let stack = Stack::isolated().await;
        // The release binaries run here publish no chat message.
        stack.without_chat();
        let clusters = stack
            .create_clusters("bench", size.div_ceil(PER_CLUSTER))
            .await;
        stack
            .ecr
            .create_repository()
            .repository_name(PUSHED_REPOSITORY)
            .send()
            .await
            .expect("create repository");
        // Service 0, the one pushes deploy and alarms roll back, runs an image ECR holds, pinned
        // by digest: a rollback goes back to it and ECR confirms it can be pulled.
        let layer = format!("sha256:{:064x}", 0xdec0_ba5e_u64);
        let baseline = push_image(&stack, "base", &layer).await;
        let baseline = &baseline;
        let stack_ref = &stack;
        let clusters_ref = &clusters;
        stream::iter(0..size)
            .for_each_concurrent(SETUP_CONCURRENCY, |i| async move {
                let cluster = &clusters_ref[i / PER_CLUSTER];
                let image = match i {
                    0 => format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/app-0@{baseline}"),
                    _ => format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/app-{i}:v1"),
                };
                let td = stack_ref
                    .register(
                        stack_ref
                            .ecs
                            .register_task_definition()
                            .family(format!("app-{i}"))
                            .container_definitions(
                                ContainerDefinition::builder()
                                    .name("app")
                                    .image(image)
                                    .memory(256)
                                    .build(),
                            ),
                    )
                    .await;
                let tags = [
                    ("deckhand:deploy", "any"),
                    ("deckhand:awake", "daily 07:00-19:00"),
                    ("deckhand:timezone", "UTC"),
                ];
                stack_ref
                    .create_service_in(cluster, &service_name(i), &td, 2, &tags)
                    .await;
                if i % 10 == 0 {
                    stack_ref
                        .autoscale_in(cluster, &service_name(i), 1, 4)
                        .await;
                }
            })
            .await;
        aws_sdk_cloudwatch::Client::new(&stack.sdk)
            .put_metric_alarm()
            .alarm_name("svc-0000-5xx")
            .namespace("AWS/ApplicationELB")
            .metric_name("HTTPCode_Target_5XX_Count")
            .statistic(Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(5.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .dimensions(
                Dimension::builder()
                    .name("ClusterName")
                    .value(&clusters[0])
                    .build(),
            )
            .dimensions(
                Dimension::builder()
                    .name("ServiceName")
                    .value(service_name(0))
                    .build(),
            )
            .send()
            .await
            .expect("put metric alarm");
        let tomorrow = Utc::now().date_naive() + Days::new(1);
        let at = |date: chrono::NaiveDate, hour| {
            Utc.from_utc_datetime(&date.and_hms_opt(hour, 0, 0).unwrap_or_default())
        };
        Self {
            night: at(tomorrow, 22),
            morning: at(tomorrow + Days::new(1), 7),
            stack,
            clusters,
            pushes: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The environment of a function process, as Lambda and deckhand's template set it,
    /// with AWS reached through `endpoint`.
    pub fn environment(&self, function: &str, endpoint: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_FUNCTION_NAME", format!("deckhand-{function}")),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_ENDPOINT_URL", endpoint.to_owned()),
            ("DECKHAND_TABLE", self.stack.table.clone()),
            ("DECKHAND_TOPIC_ARN", self.stack.topic_arn.clone()),
            ("DECKHAND_CLUSTERS", self.clusters.join(" ")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// A push of a new digest to service 0's repository, now: ECR takes the image, then its
    /// event is what the deploy function is handed.
    pub async fn push(&self) -> Value {
        let n = self
            .pushes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let layer = format!("sha256:{:064x}", 0xdec0_0000_u64 + n as u64);
        let tag = format!("v{n}");
        let digest = push_image(&self.stack, &tag, &layer).await;
        json!({
            "version": "0", "id": format!("bench-push-{n}"), "detail-type": "ECR Image Action",
            "source": "aws.ecr", "account": ACCOUNT, "region": REGION,
            "time": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            "resources": [format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{PUSHED_REPOSITORY}")],
            "detail": {"result": "SUCCESS", "repository-name": PUSHED_REPOSITORY, "image-digest": digest,
                       "action-type": "PUSH", "image-tag": tag}
        })
    }

    /// Service 0's alarm going into ALARM now, as EventBridge delivers it.
    pub fn alarm(&self, n: usize) -> Value {
        let now = Utc::now();
        json!({
            "version": "0", "id": format!("bench-alarm-{n}"),
            "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
            "account": ACCOUNT, "region": REGION,
            "time": now.to_rfc3339_opts(SecondsFormat::Secs, true),
            "resources": [format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:svc-0000-5xx")],
            "detail": {
                "alarmName": "svc-0000-5xx",
                "state": {"value": "ALARM", "reason": "bench",
                          "timestamp": now.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()},
                "previousState": {"value": "OK", "reason": "bench",
                                  "timestamp": now.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()},
                "configuration": {"metrics": [{"id": "m1", "metricStat": {
                    "metric": {"namespace": "AWS/ApplicationELB", "name": "HTTPCode_Target_5XX_Count",
                               "dimensions": {"ClusterName": self.clusters[0], "ServiceName": service_name(0)}},
                    "period": 60, "stat": "Sum"}, "returnData": true}]}
            }
        })
    }

    pub fn reconcile(&self, at: DateTime<Utc>) -> Value {
        json!({"action": "reconcile", "at": at.to_rfc3339_opts(SecondsFormat::Secs, true)})
    }
}

/// Pushes an image of one layer to the pushed repository under `tag`; returns its digest.
async fn push_image(stack: &Stack, tag: &str, layer: &str) -> String {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 100, "digest": layer},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100, "digest": layer}],
    });
    stack
        .ecr
        .put_image()
        .repository_name(PUSHED_REPOSITORY)
        .image_manifest(manifest.to_string())
        .image_manifest_media_type("application/vnd.docker.distribution.manifest.v2+json")
        .image_tag(tag)
        .send()
        .await
        .expect("put image")
        .image()
        .and_then(|i| i.image_id())
        .and_then(|i| i.image_digest())
        .expect("the pushed digest")
        .to_owned()
}
