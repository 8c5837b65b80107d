//! A moto server shared by every test in this binary, and per-test stacks on it.
//!
//! The server (`scripts/emulator.py`) applies each request atomically, as AWS does, and stops
//! when its standard input closes, which happens when this test process exits however it exits:
//! no server outlives the tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_ecs::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_ecs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_ecs::types::{ContainerDefinition, Tag, TaskDefinition, TaskDefinitionField};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use chrono::{DateTime, SecondsFormat, Utc};
use deckhand::adapters::aws::{Clients, DynamoStore};
use deckhand::app::Ports;
use deckhand::config::{Config, DEFAULT_GUARD};
use deckhand::ports::{Clock, SystemClock};
use serde_json::{Value, json};

use crate::proxy::Proxy;

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

struct Emulator {
    url: String,
    // Held for the life of the process; closing stdin stops the server.
    _process: Mutex<(Child, ChildStdin)>,
}

fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("DECKHAND_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "moto server is needed for the integration tests: run `make venv` (or `make test`) to create .venv \
         with moto[server], or point DECKHAND_PYTHON at a Python that has it"
    );
    venv
}

impl Emulator {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/emulator.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(port.to_string())
            .env("DECKHAND_IAM_LOG", iam_log())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto server");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("moto server output");
        assert_eq!(
            line.trim(),
            "ready",
            "moto server did not start: is moto[server] installed in the Python that runs it?"
        );
        Emulator {
            url: format!("http://127.0.0.1:{port}"),
            _process: Mutex::new((child, stdin)),
        }
    }
}

/// Where the emulators write every action a role of the template was allowed
/// (`scripts/iam_report.py` reads it after the tests).
fn iam_log() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/iam");
    std::fs::create_dir_all(&dir).expect("target/iam");
    dir.join("calls.jsonl")
}

/// The roles of template.yaml. Calls signed as one are evaluated by the emulator against that
/// role's policy, and refused as AWS refuses them when it does not allow them
/// (`scripts/emulator_iam.py`); a stack fails its test if any of its calls was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Deploy,
    Rollback,
    Scheduler,
    /// The command line, with the template's `OperatorPolicy`.
    Operator,
    /// `deckhand wait` in a pipeline, with the template's `PipelinePolicy`.
    Pipeline,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Deploy => "deploy",
            Role::Rollback => "rollback",
            Role::Scheduler => "scheduler",
            Role::Operator => "operator",
            Role::Pipeline => "pipeline",
        }
    }
}

/// The server shared by the tests of this binary.
fn shared_emulator() -> &'static Emulator {
    static EMULATOR: OnceLock<Emulator> = OnceLock::new();
    EMULATOR.get_or_init(Emulator::start)
}

/// A plain HTTP GET against an emulator's own API.
fn emulator_get(url: &str, path: &str) -> Value {
    emulator_ask(url, "GET", path)
}

fn emulator_ask(url: &str, method: &str, path: &str) -> Value {
    let address = url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).expect("connect to moto");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\n\r\n"
    )
    .expect("request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("response");
    let text = String::from_utf8_lossy(&response);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str(body).expect("moto API answers JSON")
}

/// The default VPC and its subnets, from moto's EC2 (query protocol, answered in XML): what an
/// ALB in the emulator needs. The tests need nothing else of EC2, so it is asked by hand.
fn default_subnets(url: &str) -> (String, Vec<String>) {
    let values = ec2_query(
        url,
        "Action=DescribeSubnets&Version=2016-11-15&Filter.1.Name=default-for-az&Filter.1.Value.1=true",
    );
    let vpc = values("vpcId").into_iter().next().expect("a default VPC");
    (vpc, values("subnetId"))
}

/// The default VPC's subnets and its default security group: an awsvpc service's network.
pub fn default_network(url: &str) -> (Vec<String>, String) {
    let (vpc, subnets) = default_subnets(url);
    let values = ec2_query(
        url,
        &format!(
            "Action=DescribeSecurityGroups&Version=2016-11-15&Filter.1.Name=vpc-id&Filter.1.Value.1={vpc}\
             &Filter.2.Name=group-name&Filter.2.Value.1=default"
        ),
    );
    let group = values("groupId")
        .into_iter()
        .next()
        .expect("a default security group");
    (subnets, group)
}

/// One EC2 query, and a reader of the values of a tag in its XML answer.
fn ec2_query(url: &str, body: &str) -> impl Fn(&str) -> Vec<String> + use<> {
    let address = url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).expect("connect to moto");
    write!(
        stream,
        "POST / HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20261201/{REGION}/ec2/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    move |tag: &str| -> Vec<String> {
        response
            .split(&format!("<{tag}>"))
            .skip(1)
            .filter_map(|rest| rest.split('<').next().map(str::to_owned))
            .collect()
    }
}

pub(crate) fn ecs_tags(tags: &[(&str, &str)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect()
}

/// An ALB of the emulator with two target groups and a listener forwarding to the first.
pub struct Alb {
    pub listener: String,
    pub blue: String,
    pub green: String,
}

/// A plain HTTP POST of a JSON body to an emulator's own API; its JSON answer, if any.
pub(crate) fn emulator_post(url: &str, path: &str, body: &Value) -> Value {
    let address = url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).expect("connect to moto");
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let status = response.split_whitespace().nth(1).unwrap_or_default();
    assert!(
        status.starts_with('2'),
        "moto API refused {path}: {response}"
    );
    let answer = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str(answer).unwrap_or(Value::Null)
}

fn function_name(stack: usize, role: Role) -> String {
    format!("deckhand-{stack}-{}", role.name())
}

fn function_arn(account: &str, stack: usize, role: Role) -> String {
    format!(
        "arn:aws:lambda:{REGION}:{account}:function:{}",
        function_name(stack, role)
    )
}

/// The functions' own SDK configuration, pointed at `url`.
pub async fn sdk_config(url: &str) -> aws_config::SdkConfig {
    sdk_in_account(url, ACCOUNT).await
}

/// The part of an access key ID that tells the emulator another account than its default
/// (scripts/emulator_accounts.py); nothing for the default one.
fn account_flag(account: &str) -> String {
    if account == ACCOUNT {
        String::new()
    } else {
        format!(".acct{account}")
    }
}

/// The tests' own SDK configuration in `account`, pointed at `url`.
pub async fn sdk_in_account(url: &str, account: &str) -> aws_config::SdkConfig {
    deckhand::lambda::sdk_loader()
        .endpoint_url(url)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            format!("testing{}", account_flag(account)),
            "testing",
            None,
            None,
            "tests",
        ))
        .load()
        .await
}

/// One test's own table, topic, cluster and repository, so tests run in parallel on one server.
pub struct Stack {
    pub id: usize,
    /// The AWS account the stack is in: the emulator's default one, or another
    /// (`Stack::in_account`), signed for by the credentials.
    pub account: String,
    pub sdk: aws_config::SdkConfig,
    pub ecs: aws_sdk_ecs::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub table: String,
    pub topic_arn: String,
    /// The chat topic (the template's ChatTopic): every notification again, for Chatbot.
    pub chat_topic_arn: String,
    pub cluster: String,
    pub repository: String,
    /// The stack's failure queue (the template's FailureQueue).
    pub failure_queue_url: String,
    /// The template's parameters the stack was made with.
    pub parameters: Value,
    url: String,
    /// A server of this stack's own, stopped when the stack is dropped.
    _own_emulator: Option<Emulator>,
    /// Some of this stack's ports publish without the chat topic (the counted ones): the chat
    /// topic then holds fewer messages than the JSON one, each of them still checked.
    chat_partly: AtomicBool,
}

impl Stack {
    /// A stack on the shared server.
    pub async fn new() -> Self {
        Self::on(shared_emulator().url.clone(), None).await
    }

    /// A stack in `account`, on the shared server, with the template's `parameters` (which the
    /// emulator's IAM evaluates its roles with, and its rules are installed with).
    pub async fn in_account(account: &str, parameters: Value) -> Self {
        Self::in_account_on(shared_emulator().url.clone(), None, account, parameters).await
    }

    /// A stack on a server of its own: for a test whose load or listings must not meet the
    /// others' (the Tagging API pages through every service on the server).
    pub async fn isolated() -> Self {
        let emulator = Emulator::start();
        Self::on(emulator.url.clone(), Some(emulator)).await
    }

    async fn on(url: String, own: Option<Emulator>) -> Self {
        Self::in_account_on(url, own, ACCOUNT, json!({})).await
    }

    async fn in_account_on(
        url: String,
        own: Option<Emulator>,
        account: &str,
        parameters: Value,
    ) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let id = NEXT.fetch_add(1, Ordering::SeqCst);
        let sdk = sdk_in_account(&url, account).await;
        let (table, cluster, repository) = (
            format!("deckhand-{id}"),
            format!("cluster-{id}"),
            format!("web-{id}"),
        );
        create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await;
        let topic = aws_sdk_sns::Client::new(&sdk)
            .create_topic()
            .name(format!("deckhand-{id}"))
            .send()
            .await
            .expect("create topic");
        let topic_arn = topic.topic_arn().expect("topic arn").to_owned();
        let chat_topic_arn = aws_sdk_sns::Client::new(&sdk)
            .create_topic()
            .name(format!("deckhand-chat-{id}"))
            .send()
            .await
            .expect("create the chat topic")
            .topic_arn
            .expect("chat topic arn");
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        ecs.create_cluster()
            .cluster_name(&cluster)
            .send()
            .await
            .expect("create cluster");
        let ecr = aws_sdk_ecr::Client::new(&sdk);
        ecr.create_repository()
            .repository_name(&repository)
            .send()
            .await
            .expect("create repository");
        let queue_name = format!("deckhand-failures-{id}");
        let failure_queue_url = aws_sdk_sqs::Client::new(&sdk)
            .create_queue()
            .queue_name(&queue_name)
            .send()
            .await
            .expect("create the failure queue")
            .queue_url
            .expect("a queue url");
        let function = |role: Role| json!({"Ref": function_name(id, role), "Arn": function_arn(account, id, role)});
        // What the template's Ref and GetAtt name, for the emulator's evaluation of its policies
        // (the emulator has no KMS: the key exists only as the ARN the policies name).
        let key_arn =
            format!("arn:aws:kms:{REGION}:{account}:key/00000000-0000-0000-0000-{id:012}");
        emulator_post(
            &url,
            &format!("/_deckhand/iam/stacks/{id}"),
            &json!({
                "@parameters": parameters,
                "Table": {"Ref": table, "Arn": format!("arn:aws:dynamodb:{REGION}:{account}:table/{table}")},
                "Topic": {"Ref": topic_arn, "TopicName": format!("deckhand-{id}")},
                "ChatTopic": {"Ref": chat_topic_arn, "TopicName": format!("deckhand-chat-{id}")},
                "TopicKey": {"Ref": key_arn.rsplit('/').next(), "Arn": key_arn},
                "FailureQueue": {
                    "Ref": failure_queue_url,
                    "Arn": format!("arn:aws:sqs:{REGION}:{account}:{queue_name}"),
                    "QueueName": queue_name,
                },
                "DeployFunction": function(Role::Deploy),
                "RollbackFunction": function(Role::Rollback),
                "SchedulerFunction": function(Role::Scheduler),
            }),
        );
        Self {
            id,
            account: account.to_owned(),
            parameters,
            ecs,
            ecr,
            table,
            topic_arn,
            chat_topic_arn,
            cluster,
            repository,
            failure_queue_url,
            sdk,
            url,
            _own_emulator: own,
            chat_partly: AtomicBool::new(false),
        }
    }

    /// The ARN of this stack's function run as `role` (deploy, rollback or scheduler).
    pub fn function_arn(&self, role: Role) -> String {
        function_arn(&self.account, self.id, role)
    }

    /// Tells the emulator that this stack's function of `role` runs at `url`.
    pub fn run_function_at(&self, role: Role, url: &str) {
        self.run_named_function_at(&function_name(self.id, role), url, &json!({}));
    }

    /// Tells the emulator's Lambda that the function `name` of this account runs at `url`,
    /// carrying `tags` (which IAM's `aws:ResourceTag` reads).
    pub fn run_named_function_at(&self, name: &str, url: &str, tags: &Value) {
        emulator_post(
            &self.url,
            &format!("/_deckhand/lambda/functions/{name}"),
            &json!({"url": url, "tags": tags}),
        );
    }

    /// Serves this stack's three functions behind the emulator's Lambda Invoke, until dropped.
    pub fn serve_functions(&self, clock: Arc<dyn Clock>) -> crate::functions::FunctionHost {
        crate::functions::FunctionHost::start(self, clock)
    }

    /// The SDK configuration of one of the template's roles: calls signed with it are evaluated
    /// against the role's policy, with the scan gate's statements when `config` has the gate.
    pub fn sdk_as(&self, role: Role, config: &Config) -> aws_config::SdkConfig {
        let gate = if config.require_scan.is_some() {
            ".gate"
        } else {
            ""
        };
        let chat = if config.chat_topic_arn.is_some() {
            ".chat"
        } else {
            ""
        };
        let key = format!(
            "deckhand.{}.{}{gate}{chat}{}",
            role.name(),
            self.id,
            account_flag(&self.account)
        );
        self.sdk
            .to_builder()
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::new(key, "testing", None, None, "role"),
            ))
            .build()
    }

    pub fn config(&self) -> Config {
        Config {
            table: self.table.clone(),
            topic_arn: self.topic_arn.clone(),
            chat_topic_arn: Some(self.chat_topic_arn.clone()),
            clusters: Some(vec![self.cluster.clone()]),
            timezone: chrono_tz::Tz::UTC,
            guard: DEFAULT_GUARD,
            concurrency: deckhand::config::DEFAULT_CONCURRENCY,
            require_scan: None,
            scan_wait: deckhand::domain::scan::DEFAULT_SCAN_WAIT,
            dry_run: false,
            environment: Some("staging".into()),
            // As the template's Globals pass its parameters on.
            registry_accounts: self.accounts_parameter("RegistryAccounts"),
            promote_from_accounts: self.accounts_parameter("PromoteFromAccounts"),
            change_calendar: self.parameters["ChangeCalendar"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
        }
    }

    /// The accounts a parameter of the stack names (comma-separated, as CloudFormation takes a
    /// CommaDelimitedList).
    fn accounts_parameter(&self, name: &str) -> Vec<String> {
        self.parameters[name]
            .as_str()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Installs the stack's EventBridge rules and event bus policies in its account, from
    /// template.yaml with the stack's parameters (scripts/emulator_events.py); the deploy
    /// function's rules send to a queue of the stack's that stands for it.
    pub async fn install_rules(&self) -> Vec<String> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let url = sqs
            .create_queue()
            .queue_name(format!("deckhand-{}-deploy-events", self.id))
            .send()
            .await
            .expect("create the deploy function's stand-in queue")
            .queue_url
            .expect("a queue url");
        let arn = |url: &str| {
            let name = url.rsplit('/').next().unwrap_or_default();
            format!("arn:aws:sqs:{REGION}:{}:{name}", self.account)
        };
        let answer = emulator_post(
            &self.url,
            &format!("/_deckhand/events/stacks/{}", self.id),
            &json!({"account": self.account, "parameters": self.parameters,
                    "deployQueueArn": arn(&url), "failureQueueArn": arn(&self.failure_queue_url)}),
        );
        answer["installed"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect()
    }

    /// The events EventBridge delivered to the deploy function's rules since last asked, as
    /// the function would receive them.
    pub async fn delivered_events(&self) -> Vec<Value> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let url = sqs
            .get_queue_url()
            .queue_name(format!("deckhand-{}-deploy-events", self.id))
            .send()
            .await
            .expect("the stand-in queue (install_rules first)")
            .queue_url
            .expect("a queue url");
        let mut events = Vec::new();
        loop {
            let received = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive the delivered events");
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return events;
            }
            for message in messages {
                events
                    .push(serde_json::from_str(message.body().unwrap_or("{}")).expect("an event"));
                if let Some(handle) = message.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(&url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("delete a delivered event");
                }
            }
        }
    }

    /// The ports of a function signed as its role, with the stack's configuration.
    pub fn ports(&self, role: Role, clock: Arc<dyn Clock>) -> Ports {
        self.ports_with(role, &self.config(), clock)
    }

    /// The ports of a function signed as its role, for `config`.
    pub fn ports_with(&self, role: Role, config: &Config, clock: Arc<dyn Clock>) -> Ports {
        let partition = format!("stack-{}", self.id);
        let sdk = self.sdk_as(role, config);
        let ports = Clients::in_partition(&sdk, Some(&partition)).ports_at(config, clock);
        // As the Lambda binaries build theirs: only the deploy function asks gate checks.
        match role {
            Role::Deploy => deckhand::adapters::aws::deploy_ports(ports, &sdk),
            Role::Scheduler => deckhand::adapters::aws::with_announcer(ports, &sdk),
            _ => ports,
        }
    }

    /// Ports whose every AWS call is logged, by service and operation.
    pub fn counted_ports(&self, role: Role) -> (Ports, CallLog) {
        self.counted_ports_with(role, &self.config())
    }

    pub fn counted_ports_with(&self, role: Role, config: &Config) -> (Ports, CallLog) {
        let log = CallLog::default();
        let partition = format!("stack-{}", self.id);
        let base = Clients::in_partition(&self.sdk_as(role, config), Some(&partition));
        let clients = Clients {
            ecs: aws_sdk_ecs::Client::from_conf(
                base.ecs
                    .config()
                    .to_builder()
                    .interceptor(log.clone())
                    .build(),
            ),
            tagging: aws_sdk_resourcegroupstagging::Client::from_conf(
                base.tagging
                    .config()
                    .to_builder()
                    .interceptor(log.clone())
                    .build(),
            ),
            ecr: aws_sdk_ecr::Client::from_conf(
                base.ecr
                    .config()
                    .to_builder()
                    .interceptor(log.clone())
                    .build(),
            ),
            autoscaling: aws_sdk_applicationautoscaling::Client::from_conf(
                base.autoscaling
                    .config()
                    .to_builder()
                    .interceptor(log.clone())
                    .build(),
            ),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                base.cloudwatch
                    .config()
                    .to_builder()
                    .interceptor(log.clone())
                    .build(),
            ),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                base.dynamodb
                    .config()
                    .to_builder()
                    .interceptor(log.clone())
                    .build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                base.sns
                    .config()
                    .to_builder()
                    .interceptor(log.clone())
                    .build(),
            ),
            elb: aws_sdk_elasticloadbalancingv2::Client::from_conf(
                base.elb
                    .config()
                    .to_builder()
                    .interceptor(log.clone())
                    .build(),
            ),
            codedeploy: aws_sdk_codedeploy::Client::from_conf(
                base.codedeploy
                    .config()
                    .to_builder()
                    .interceptor(log.clone())
                    .build(),
            ),
        };
        let ports = clients.ports(&self.counted(config));
        let ports = match role {
            Role::Deploy => {
                deckhand::adapters::aws::deploy_ports(ports, &self.sdk_as(role, config))
            }
            Role::Scheduler => {
                deckhand::adapters::aws::with_announcer(ports, &self.sdk_as(role, config))
            }
            _ => ports,
        };
        (ports, log)
    }

    /// Functions run outside these ports publish without the chat topic (the benchmark's
    /// release binaries): the chat topic then holds fewer messages than the JSON one.
    pub fn without_chat(&self) {
        self.chat_partly.store(true, Ordering::SeqCst);
    }

    /// Calls are counted as a stack without a chat topic makes them: the figures pinned in the
    /// tests, the benchmark and the README are those of the default template (with a channel,
    /// the chat Publish runs beside the JSON one).
    fn counted(&self, config: &Config) -> Config {
        self.chat_partly.store(true, Ordering::SeqCst);
        Config {
            chat_topic_arn: None,
            ..config.clone()
        }
    }

    /// Ports whose clients reach the emulator through `proxy`, with the functions' own SDK
    /// settings (retries included).
    pub async fn ports_through(&self, role: Role, proxy: &Proxy, clock: Arc<dyn Clock>) -> Ports {
        let sdk = sdk_config(&proxy.url())
            .await
            .to_builder()
            .credentials_provider(
                self.sdk_as(role, &self.config())
                    .credentials_provider()
                    .expect("a role's credentials"),
            )
            .build();
        let partition = format!("stack-{}", self.id);
        Clients::in_partition(&sdk, Some(&partition)).ports_at(&self.counted(&self.config()), clock)
    }

    /// The emulator this stack lives on.
    pub fn emulator_url(&self) -> &str {
        &self.url
    }

    /// The client secrets ELB keeps for the OIDC actions of a listener or rule, which it never
    /// returns (scripts/emulator_elb.py).
    pub fn elb_client_secrets(&self, arn: &str) -> Value {
        emulator_get(
            &self.url,
            &format!("/_deckhand/elb/client-secrets?arn={arn}"),
        )
    }

    /// Applies the repository's lifecycle policy once, as ECR's evaluator does
    /// (scripts/emulator_registry.py): the digests it expired and archived.
    pub fn run_lifecycle(&self) -> (Vec<String>, Vec<String>) {
        let out = emulator_post(
            &self.url,
            "/_deckhand/ecr/lifecycle",
            &json!({"repositoryName": self.repository, "account": self.account, "region": REGION}),
        );
        let digests = |field: &str| -> Vec<String> {
            out[field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str().map(str::to_owned))
                .collect()
        };
        (digests("expired"), digests("archived"))
    }

    /// Moves an image to ECR's archive storage class: it cannot be pulled until restored.
    pub async fn archive(&self, digest: &str) {
        self.ecr
            .update_image_storage_class()
            .repository_name(&self.repository)
            .image_id(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(digest)
                    .build(),
            )
            .target_storage_class(aws_sdk_ecr::types::TargetStorageClass::Archive)
            .send()
            .await
            .expect("archive the image");
    }

    /// ECR ends the restore of an archived image (ACTIVATING becomes ACTIVE).
    pub fn finish_restore(&self, digest: &str) {
        emulator_post(
            &self.url,
            "/_deckhand/ecr/activate",
            &json!({"repositoryName": self.repository, "imageDigest": digest, "account": self.account, "region": REGION}),
        );
    }

    /// The repository's lifecycle policy.
    pub async fn put_lifecycle_policy(&self, policy: &Value) {
        self.ecr
            .put_lifecycle_policy()
            .repository_name(&self.repository)
            .lifecycle_policy_text(policy.to_string())
            .send()
            .await
            .expect("put lifecycle policy");
    }

    /// The tags on a digest; none when ECR no longer has it.
    pub async fn tags_of(&self, digest: &str) -> Option<Vec<String>> {
        let out = self
            .ecr
            .describe_images()
            .repository_name(&self.repository)
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(digest)
                    .build(),
            )
            .send()
            .await;
        match out {
            Ok(out) => out.image_details().first().map(|d| d.image_tags().to_vec()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_image_not_found_exception()) =>
            {
                None
            }
            Err(e) => panic!("describe images: {e:?}"),
        }
    }

    pub fn system_ports(&self, role: Role) -> Ports {
        self.ports(role, Arc::new(SystemClock))
    }

    /// Takes the refusals so far, which the test expected: they no longer fail it.
    pub fn take_refused_calls(&self) -> Vec<String> {
        let refused = emulator_ask(
            &self.url,
            "DELETE",
            &format!("/_deckhand/iam/refused/{}", self.id),
        );
        serde_json::from_value(refused).expect("a list of refusals")
    }

    /// The calls of this stack's roles that the emulator refused because template.yaml does not
    /// allow them.
    pub fn refused_calls(&self) -> Vec<String> {
        let refused = emulator_get(&self.url, &format!("/_deckhand/iam/refused/{}", self.id));
        serde_json::from_value(refused).expect("a list of refusals")
    }

    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&self.sdk), &self.table)
    }

    pub fn image(&self, reference: &str) -> String {
        format!(
            "{}.dkr.ecr.{REGION}.amazonaws.com/{}{reference}",
            self.account, self.repository
        )
    }

    /// Pushes an image and returns its digest (moto derives it from the layer digests).
    pub async fn push_image(&self, tag: &str) -> String {
        self.push_layer(tag, &format!("{}:{tag}", self.repository))
            .await
    }

    /// Pushes an image of one layer derived from `seed` under `tag`.
    async fn push_layer(&self, tag: &str, seed: &str) -> String {
        let layer = format!("sha256:{:064x}", hash(seed));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 100, "digest": layer},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100, "digest": layer}],
        });
        self.put_manifest(&manifest, Some(tag)).await
    }

    /// Pushes a tag onto an image the repository holds (`docker tag` and `docker push`).
    pub async fn retag(&self, digest: &str, tag: &str) {
        let image = self
            .ecr
            .batch_get_image()
            .repository_name(&self.repository)
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(digest)
                    .build(),
            )
            .send()
            .await
            .expect("batch get image");
        let manifest: Value = serde_json::from_str(
            image.images()[0]
                .image_manifest()
                .expect("the image's manifest"),
        )
        .expect("a JSON manifest");
        assert_eq!(self.put_manifest(&manifest, Some(tag)).await, digest);
    }

    /// Pushes any manifest (an index, a signature) under an optional tag and returns the
    /// digest ECR gives it.
    ///
    /// Pushing what the repository already holds under that tag changes nothing, as `docker
    /// push` of an image already there: ECR refuses the PutImage (ImageAlreadyExistsException),
    /// and the digest is the one it holds.
    pub async fn put_manifest(&self, manifest: &Value, tag: Option<&str>) -> String {
        let result = self
            .ecr
            .put_image()
            .repository_name(&self.repository)
            .image_manifest(manifest.to_string())
            .set_image_manifest_media_type(manifest["mediaType"].as_str().map(str::to_owned))
            .set_image_tag(tag.map(str::to_owned))
            .send()
            .await;
        let out = match result {
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_image_already_exists_exception()) =>
            {
                let tag = tag.expect("only a tagged push can repeat one");
                let images = self
                    .ecr
                    .describe_images()
                    .repository_name(&self.repository)
                    .image_ids(
                        aws_sdk_ecr::types::ImageIdentifier::builder()
                            .image_tag(tag)
                            .build(),
                    )
                    .send()
                    .await
                    .expect("describe images");
                return images.image_details()[0]
                    .image_digest()
                    .expect("digest")
                    .to_owned();
            }
            other => other.expect("put image"),
        };
        out.image()
            .and_then(|i| i.image_id())
            .and_then(|id| id.image_digest())
            .expect("digest")
            .to_owned()
    }

    pub async fn register(
        &self,
        builder: aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder,
    ) -> String {
        builder
            .send()
            .await
            .expect("register task definition")
            .task_definition()
            .and_then(|td| td.task_definition_arn())
            .expect("arn")
            .to_owned()
    }

    /// A one-container task definition running the image pushed as `web:TAG`, pinned by its
    /// digest as a pipeline that pins its baseline registers it (a baseline that names a tag
    /// is a case of its own: `tagged_task_definition`).
    pub async fn simple_task_definition(&self, family: &str, tag: &str) -> String {
        let digest = self.push_image(tag).await;
        self.web_task_definition(family, &format!("@{digest}"))
            .await
    }

    /// A one-container task definition that names `web:TAG` (no digest): ECS resolves the tag
    /// each time it deploys it.
    pub async fn tagged_task_definition(&self, family: &str, tag: &str) -> String {
        self.web_task_definition(family, &format!(":{tag}")).await
    }

    /// A one-container task definition running `web` + `reference` (`:TAG` or `@DIGEST`).
    pub async fn web_task_definition(&self, family: &str, reference: &str) -> String {
        self.register(
            self.ecs
                .register_task_definition()
                .family(family)
                .container_definitions(
                    ContainerDefinition::builder()
                        .name("web")
                        .image(self.image(reference))
                        .memory(256)
                        .build(),
                ),
        )
        .await
    }

    /// Pushes an image of its own (distinct layers per `build`) under `tag`, as CI pushes
    /// `latest` on every build, and returns its digest.
    pub async fn push_build(&self, tag: &str, build: &str) -> String {
        self.push_layer(tag, &format!("{}:{tag}:{build}", self.repository))
            .await
    }

    pub async fn create_service(&self, name: &str, task_definition: &str, tags: &[(&str, &str)]) {
        self.create_service_in(&self.cluster, name, task_definition, 2, tags)
            .await
    }

    /// A service in any cluster, with `desired` tasks and these tags.
    pub async fn create_service_in(
        &self,
        cluster: &str,
        name: &str,
        task_definition: &str,
        desired: i32,
        tags: &[(&str, &str)],
    ) {
        self.ecs
            .create_service()
            .cluster(cluster)
            .service_name(name)
            .task_definition(task_definition)
            .desired_count(desired)
            .set_tags(Some(ecs_tags(tags)))
            .send()
            .await
            .expect("create service");
    }

    /// A service behind a load balancer target group (container `web`, port 8080).
    pub async fn create_service_behind(
        &self,
        name: &str,
        task_definition: &str,
        target_group: &str,
        tags: &[(&str, &str)],
    ) {
        self.ecs
            .create_service()
            .cluster(&self.cluster)
            .service_name(name)
            .task_definition(task_definition)
            .desired_count(2)
            .load_balancers(
                aws_sdk_ecs::types::LoadBalancer::builder()
                    .target_group_arn(target_group)
                    .container_name("web")
                    .container_port(8080)
                    .build(),
            )
            .set_tags(Some(ecs_tags(tags)))
            .send()
            .await
            .expect("create service");
    }

    /// An ALB with target groups `NAME-blue` and `NAME-green` and an HTTP listener whose forward
    /// action knows both and gives blue all the weight (100 and 0), as a pair is set up.
    pub async fn alb(&self, name: &str) -> Alb {
        use aws_sdk_elasticloadbalancingv2::types::{
            Action, ActionTypeEnum, ForwardActionConfig, ProtocolEnum, TargetGroupTuple,
        };
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&self.sdk);
        let (vpc, subnets) = default_subnets(&self.url);
        let name = format!("{name}-{}", self.id);
        let lb = elb
            .create_load_balancer()
            .name(&name)
            .set_subnets(Some(subnets))
            .send()
            .await
            .expect("create load balancer");
        let lb_arn = lb.load_balancers()[0]
            .load_balancer_arn()
            .expect("arn")
            .to_owned();
        let mut groups = Vec::new();
        for color in ["blue", "green"] {
            let tg = elb
                .create_target_group()
                .name(format!("{name}-{color}"))
                .protocol(ProtocolEnum::Http)
                .port(8080)
                .vpc_id(&vpc)
                .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Ip)
                .send()
                .await
                .expect("create target group");
            groups.push(
                tg.target_groups()[0]
                    .target_group_arn()
                    .expect("arn")
                    .to_owned(),
            );
        }
        let listener = elb
            .create_listener()
            .load_balancer_arn(lb_arn)
            .protocol(ProtocolEnum::Http)
            .port(80)
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .forward_config(
                        ForwardActionConfig::builder()
                            .target_groups(
                                TargetGroupTuple::builder()
                                    .target_group_arn(&groups[0])
                                    .weight(100)
                                    .build(),
                            )
                            .target_groups(
                                TargetGroupTuple::builder()
                                    .target_group_arn(&groups[1])
                                    .weight(0)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            // Designated for deckhand: the only listeners its roles may change.
            .tags(designated())
            .send()
            .await
            .expect("create listener");
        Alb {
            listener: listener.listeners()[0]
                .listener_arn()
                .expect("arn")
                .to_owned(),
            blue: groups[0].clone(),
            green: groups[1].clone(),
        }
    }

    /// `count` clusters named `PREFIX-STACKID-N`, created.
    pub async fn create_clusters(&self, prefix: &str, count: usize) -> Vec<String> {
        let clusters: Vec<String> = (0..count)
            .map(|c| format!("{prefix}-{}-{c}", self.id))
            .collect();
        for cluster in &clusters {
            self.ecs
                .create_cluster()
                .cluster_name(cluster)
                .send()
                .await
                .expect("create cluster");
        }
        clusters
    }

    pub fn service_key(&self, name: &str) -> deckhand::domain::service::ServiceKey {
        deckhand::domain::service::ServiceKey::new(&self.cluster, name)
    }

    /// Registers a scalable target for one of this stack's services.
    pub async fn autoscale(&self, service: &str, min: i32, max: i32) {
        self.autoscale_in(&self.cluster, service, min, max).await
    }

    /// Registers a scalable target for a service of any cluster.
    pub async fn autoscale_in(&self, cluster: &str, service: &str, min: i32, max: i32) {
        aws_sdk_applicationautoscaling::Client::new(&self.sdk)
            .register_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_id(format!("service/{cluster}/{service}"))
            .min_capacity(min)
            .max_capacity(max)
            .send()
            .await
            .expect("register scalable target");
    }

    /// Puts a scheduled action on one of this stack's services' scalable target.
    pub async fn schedule_scaling(&self, service: &str, name: &str, schedule: &str, min: i32) {
        aws_sdk_applicationautoscaling::Client::new(&self.sdk)
            .put_scheduled_action()
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .resource_id(format!("service/{}/{service}", self.cluster))
            .scheduled_action_name(name)
            .schedule(schedule)
            .scalable_target_action(
                aws_sdk_applicationautoscaling::types::ScalableTargetAction::builder()
                    .min_capacity(min)
                    .build(),
            )
            .send()
            .await
            .expect("put scheduled action");
    }

    /// The scalable target's (min, max), if the service has one.
    pub async fn capacity(&self, service: &str) -> Option<(i32, i32)> {
        self.capacity_in(&self.cluster, service).await
    }

    pub async fn capacity_in(&self, cluster: &str, service: &str) -> Option<(i32, i32)> {
        let out = aws_sdk_applicationautoscaling::Client::new(&self.sdk)
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_ids(format!("service/{cluster}/{service}"))
            .send()
            .await
            .expect("describe scalable targets");
        out.scalable_targets()
            .first()
            .map(|t| (t.min_capacity(), t.max_capacity()))
    }

    /// A service of any cluster, as ECS describes it.
    pub async fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> aws_sdk_ecs::types::Service {
        let out = self
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .expect("describe services");
        out.services()[0].clone()
    }

    pub async fn desired_count(&self, service: &str) -> i32 {
        self.describe_service(&self.cluster, service)
            .await
            .desired_count()
    }

    /// Scales a service behind deckhand's back, as a person would.
    pub async fn set_desired_count(&self, service: &str, count: i32) {
        self.ecs
            .update_service()
            .cluster(&self.cluster)
            .service(service)
            .desired_count(count)
            .send()
            .await
            .expect("update service");
    }

    /// The image of the first container of the revision the service runs.
    pub async fn running_image(&self, service: &str) -> String {
        let running = self.running_task_definition(service).await;
        let (td, _) = self.task_definition(&running).await;
        td.container_definitions()[0]
            .image()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn running_task_definition(&self, service: &str) -> String {
        self.describe_service(&self.cluster, service)
            .await
            .task_definition()
            .expect("task definition")
            .to_owned()
    }

    pub async fn task_definition(&self, arn: &str) -> (TaskDefinition, Vec<Tag>) {
        let out = self
            .ecs
            .describe_task_definition()
            .task_definition(arn)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .expect("describe task definition");
        (
            out.task_definition.expect("task definition"),
            out.tags.unwrap_or_default(),
        )
    }

    pub async fn revisions(&self, family: &str) -> usize {
        self.ecs
            .list_task_definitions()
            .family_prefix(family)
            .send()
            .await
            .expect("list task definitions")
            .task_definition_arns()
            .len()
    }

    /// The revision numbers of a family with this status, in order.
    pub async fn revision_numbers(
        &self,
        family: &str,
        status: aws_sdk_ecs::types::TaskDefinitionStatus,
    ) -> Vec<i32> {
        let out = self
            .ecs
            .list_task_definitions()
            .family_prefix(family)
            .status(status)
            .send()
            .await
            .expect("list task definitions");
        let mut numbers: Vec<i32> = out
            .task_definition_arns()
            .iter()
            .filter_map(|arn| arn.rsplit_once(':')?.1.parse().ok())
            .collect();
        numbers.sort_unstable();
        numbers
    }

    pub fn push_event(&self, id: &str, at: DateTime<Utc>, tag: &str, digest: &str) -> Value {
        json!({
            "version": "0", "id": id, "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": self.account, "time": at.to_rfc3339_opts(SecondsFormat::Secs, true), "region": REGION,
            "resources": [format!("arn:aws:ecr:{REGION}:{}:repository/{}", self.account, self.repository)],
            "detail": {"result": "SUCCESS", "repository-name": self.repository, "image-digest": digest,
                       "action-type": "PUSH", "image-tag": tag}
        })
    }

    /// The `ECR Image Scan` event of one of this stack's images.
    pub fn scan_event(
        &self,
        id: &str,
        at: DateTime<Utc>,
        digest: &str,
        status: &str,
        counts: Value,
    ) -> Value {
        json!({
            "version": "0", "id": id, "detail-type": "ECR Image Scan", "source": "aws.ecr",
            "account": self.account, "time": at.to_rfc3339_opts(SecondsFormat::Secs, true), "region": REGION,
            "resources": [format!("arn:aws:ecr:{REGION}:{}:repository/{}", self.account, self.repository)],
            "detail": {"scan-status": status, "repository-name": self.repository, "image-digest": digest,
                       "finding-severity-counts": counts, "image-tags": []}
        })
    }

    /// Scans one of this stack's images: from then on ECR's `DescribeImageScanFindings`
    /// reports a completed scan with these finding counts.
    pub async fn scan(&self, digest: &str, counts: Value) {
        let result = json!({
            "registryId": self.account,
            "repositoryName": self.repository,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": "COMPLETE", "description": "The scan was completed successfully."},
            "imageScanFindings": {"findingSeverityCounts": counts, "findings": []},
        });
        emulator_post(
            &self.url,
            "/moto-api/static/ecr/scan-finding-results",
            &json!({"results": [result], "region": REGION}),
        );
        self.ecr
            .start_image_scan()
            .repository_name(&self.repository)
            .image_id(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(digest)
                    .build(),
            )
            .send()
            .await
            .expect("start image scan");
    }

    /// An ECS deployment event for one of this stack's services, built from a sample file.
    pub fn deployment_event(
        &self,
        sample: &str,
        id: &str,
        service: &str,
        at: DateTime<Utc>,
    ) -> Value {
        let mut event = sample_event(sample);
        event["id"] = json!(id);
        event["account"] = json!(self.account);
        event["time"] = json!(at.to_rfc3339_opts(SecondsFormat::Secs, true));
        event["detail"]["updatedAt"] = json!(at.to_rfc3339_opts(SecondsFormat::Millis, true));
        event["resources"] = json!([format!(
            "arn:aws:ecs:{REGION}:{}:service/{}/{service}",
            self.account, self.cluster
        )]);
        event
    }

    /// The messages published on this stack's topic: (subject, body, attributes).
    pub fn notifications(&self) -> Vec<(String, Value, Value)> {
        self.published_on(&self.topic_arn)
    }

    /// The chat topic's messages with their attributes: (subject, body, attributes).
    pub fn chat_notifications(&self) -> Vec<(String, Value, Value)> {
        self.published_on(&self.chat_topic_arn)
    }

    /// The chat messages: (subject, body, attributes).
    pub fn chat_messages(&self) -> Vec<Value> {
        self.published_on(&self.chat_topic_arn)
            .into_iter()
            .map(|(_, body, _)| body)
            .collect()
    }

    /// Every chat message is one Chatbot renders, and, unless some ports published without
    /// the chat topic, each JSON notification has its chat message: same kind, same service.
    pub fn check_chat(&self) -> Result<(), String> {
        let chat = self.chat_messages();
        for m in &chat {
            chat_problem(m).map_or(Ok(()), |p| Err(format!("{p}: {m:#}")))?;
        }
        if self.chat_partly.load(Ordering::SeqCst) {
            return Ok(());
        }
        let thread = |service: &str| match service {
            "*" => "deckhand/reconcile".to_owned(),
            "" | "-" => "deckhand".to_owned(),
            s => s.to_owned(),
        };
        // deckhand's notifications; a test's own messages on the topic are not.
        let mut json: Vec<(String, String)> = self
            .notifications()
            .iter()
            .filter(|(_, b, _)| b["schema"] == "deckhand.notification/1")
            .map(|(_, b, _)| {
                (
                    b["kind"].as_str().unwrap_or_default().to_owned(),
                    thread(b["service"].as_str().unwrap_or_default()),
                )
            })
            .collect();
        let mut rendered: Vec<(String, String)> = chat
            .iter()
            .map(|m| {
                (
                    m["metadata"]["eventType"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    m["metadata"]["threadId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        json.sort();
        rendered.sort();
        if json != rendered {
            return Err(format!(
                "the chat topic does not have one message per notification:\n json: {json:?}\n chat: {rendered:?}"
            ));
        }
        Ok(())
    }

    fn published_on(&self, topic_arn: &str) -> Vec<(String, Value, Value)> {
        let data = emulator_get(&self.url, "/moto-api/data.json");
        let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
        topics
            .iter()
            .filter(|t| t["arn"] == topic_arn)
            .flat_map(|t| {
                t["sent_notifications"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|n| {
                let body =
                    serde_json::from_str(n[1].as_str().unwrap_or("null")).unwrap_or(Value::Null);
                (
                    n[2].as_str().unwrap_or_default().to_owned(),
                    body,
                    n[3].clone(),
                )
            })
            .collect()
    }

    pub fn notification_kinds(&self) -> Vec<String> {
        self.notifications()
            .iter()
            .map(|(_, body, _)| body["kind"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// A test whose deckhand made a call its role's policy does not allow fails, even when deckhand
/// took the refusal in its stride (a notification is best effort): on AWS that call would fail
/// every time.
/// What makes `m` a message Chatbot does not render (the custom-notification schema, 1.0).
fn chat_problem(m: &Value) -> Option<&'static str> {
    let content = &m["content"];
    let metadata = &m["metadata"];
    let text = |v: &Value, max: usize| {
        v.as_str()
            .is_some_and(|s| !s.is_empty() && s.chars().count() <= max)
    };
    if m["version"] != "1.0" || m["source"] != "custom" {
        return Some("not version 1.0 from source custom");
    }
    if content["textType"] != "client-markdown" {
        return Some("textType is not client-markdown");
    }
    if !text(&content["title"], 250) || !text(&content["description"], 3_000) {
        return Some("a title or description empty or too long");
    }
    let steps = content["nextSteps"].as_array();
    if !steps.is_some_and(|s| !s.is_empty() && s.iter().all(|x| text(x, 1_000))) {
        return Some("no next step");
    }
    if !text(&metadata["threadId"], 200) || !text(&metadata["eventType"], 100) {
        return Some("no thread or event type");
    }
    let context = metadata["additionalContext"].as_object();
    if !context.is_some_and(|c| c.values().all(Value::is_string)) {
        return Some("additionalContext is not a map of strings");
    }
    None
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Err(problem) = self.check_chat() {
            if std::thread::panicking() {
                eprintln!("{problem}");
            } else {
                panic!("{problem}");
            }
        }
        let refused = self.refused_calls();
        if refused.is_empty() {
            return;
        }
        let message = format!(
            "template.yaml does not allow {} call(s) this test made:\n{}",
            refused.len(),
            refused.join("\n")
        );
        // A refusal is often why the test failed already: say it beside that failure.
        if std::thread::panicking() {
            eprintln!("{message}");
        } else {
            panic!("{message}");
        }
    }
}

/// Every AWS operation called through the clients it is attached to, once per operation
/// (retries are not counted again).
#[derive(Clone, Debug, Default)]
pub struct CallLog(Arc<Mutex<Vec<String>>>);

impl CallLog {
    pub fn calls(&self) -> Vec<String> {
        self.0.lock().expect("call log").clone()
    }

    pub fn clear(&self) {
        self.0.lock().expect("call log").clear();
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            self.0.lock().expect("call log").push(format!(
                "{}.{}",
                metadata.service(),
                metadata.name()
            ));
        }
        Ok(())
    }
}

/// A payload as AWS sends it, from `tests/fixtures/aws/` (sources in its README).
pub fn aws_fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/aws")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixtures are JSON")
}

/// A sample event from `events/`.
pub fn sample_event(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("sample events are JSON")
}

fn hash(text: &str) -> u128 {
    // FNV-1a, enough to give each test image its own layer digest.
    text.bytes()
        .fold(0x6c62272e07bb014262b821756295c58d_u128, |h, b| {
            (h ^ u128::from(b)).wrapping_mul(0x0000000001000000000000000000013B)
        })
}

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key")
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute")
    };
    client
        .create_table()
        .table_name(name)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table");
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("ttl")
                .build()
                .expect("ttl"),
        )
        .send()
        .await
        .expect("enable ttl");
}

/// The tag that designates a listener or a rule for deckhand (template.yaml, ShiftPairTraffic).
pub fn designated() -> aws_sdk_elasticloadbalancingv2::types::Tag {
    aws_sdk_elasticloadbalancingv2::types::Tag::builder()
        .key("deckhand:traffic")
        .value("managed")
        .build()
}
