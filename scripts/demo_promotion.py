"""`make demo`'s act "staging to production": two accounts on the emulator, each with its own
deckhand. This account (the demo's, 123456789012) is staging and holds the registry; account
222222222222 is production, where prod/orders is tagged deckhand:promote-from = staging's
demo/orders. The stacks' rules and bus policies are installed from template.yaml with each one's
parameters (PromoteToAccounts in staging, PromoteFromAccounts and RegistryAccounts in production);
EventBridge carries staging's announcement across as AWS does (scripts/emulator_events.py), and
production reads the registry's image through its repository policy (scripts/emulator_accounts.py).
The deploy function's rules send to an SQS queue standing in for it: the act reads what
EventBridge delivered there and invokes production's deploy function with it.
"""

import json
import os
import urllib.request
from datetime import datetime, timedelta, timezone

import boto3

import demo as d

PRODUCTION = "222222222222"
PROD_KEY = f"demo.acct{PRODUCTION}"


def post(endpoint, path, body):
    request = urllib.request.Request(f"{endpoint}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read() or b"{}")


class Production:
    """Account 222222222222: a cluster, prod/orders, deckhand's table and topic."""

    def __init__(self, endpoint):
        session = boto3.session.Session(aws_access_key_id=PROD_KEY, aws_secret_access_key="demo",
                                        region_name=d.REGION)
        client = lambda name: session.client(name, endpoint_url=endpoint)  # noqa: E731
        self.ecs, self.ddb, self.sns, self.sqs, self.events = (
            client(n) for n in ("ecs", "dynamodb", "sns", "sqs", "events"))
        self.topic_arn = None
        self.queue_url = None

    def seed(self, image, upstream):
        self.ddb.create_table(
            TableName=d.TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.topic_arn = self.sns.create_topic(Name="deckhand")["TopicArn"]
        self.queue_url = self.sqs.create_queue(QueueName="deckhand-deploy-events")["QueueUrl"]
        self.ecs.create_cluster(clusterName="prod")
        self.ecs.register_task_definition(
            family="orders", networkMode="bridge", cpu="256", memory="512",
            containerDefinitions=[{"name": "orders", "image": image, "essential": True}])
        self.ecs.create_service(cluster="prod", serviceName="orders", taskDefinition="orders:1", desiredCount=2,
                                tags=[{"key": "deckhand:deploy", "value": "any"},
                                      {"key": "deckhand:promote-from", "value": upstream}])

    def running(self):
        service = self.ecs.describe_services(cluster="prod", services=["orders"])["services"][0]
        td = self.ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        return f"{td['family']}:{td['revision']} ({td['containerDefinitions'][0]['image']})"

    def delivered(self):
        """What EventBridge delivered to production's deploy function since last asked."""
        events = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return events
            for m in messages:
                events.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])


def production_functions(endpoint, topic_arn):
    """Production's three functions, signed as account 222222222222, on a `cargo lambda watch` of
    their own (the binaries are built already)."""
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_REGION=d.REGION, AWS_ACCESS_KEY_ID=PROD_KEY,
               AWS_SECRET_ACCESS_KEY="demo", DECKHAND_TABLE=d.TABLE, DECKHAND_TOPIC_ARN=topic_arn,
               DECKHAND_CLUSTERS="prod", DECKHAND_PROMOTE_FROM_ACCOUNTS=d.ACCOUNT,
               DECKHAND_REGISTRY_ACCOUNTS=d.ACCOUNT, RUST_LOG="warn")
    return d.watching(env, "demo-production-watch.log")


def stamp(at):
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def staging_to_production(demo, lambda_port, morning):
    d.heading("Staging to production: demo/orders here (staging, which also holds the registry) proves a "
              f"digest; prod/orders in account {PRODUCTION} takes only what it proved")
    demo.ecr.create_repository(repositoryName="orders")
    for tag in ("v1", "v2"):
        demo.ecr.put_image(repositoryName="orders", imageManifest=d.manifest(f"orders-{tag}"), imageTag=tag)
    digest = lambda tag: demo.ecr.describe_images(  # noqa: E731
        repositoryName="orders", imageIds=[{"imageTag": tag}])["imageDetails"][0]["imageDigest"]
    first = f"{d.REGISTRY}/orders@{digest('v1')}"
    demo.ecs.register_task_definition(family="orders", networkMode="bridge", cpu="256", memory="512",
                                      containerDefinitions=[{"name": "orders", "image": first, "essential": True}])
    demo.ecs.create_service(cluster="demo", serviceName="orders", taskDefinition="orders:1", desiredCount=2,
                            tags=[{"key": "deckhand:deploy", "value": "tag=v2"}])
    # The registry opens the repository to production, as docs/organisations.md shows.
    demo.ecr.set_repository_policy(repositoryName="orders", policyText=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Sid": "deckhand", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{PRODUCTION}:root"},
            "Action": ["ecr:DescribeImages", "ecr:BatchGetImage", "ecr:DescribeImageScanFindings",
                       "ecr:GetRepositoryPolicy"]}]}))
    production = Production(demo.endpoint)
    production.seed(first, f"{d.ACCOUNT}/demo/orders")
    staging_queue = boto3.session.Session(aws_access_key_id="demo", aws_secret_access_key="demo",
                                          region_name=d.REGION).client("sqs", endpoint_url=demo.endpoint)
    staging_queue_arn = "arn:aws:sqs:{}:{}:{}".format(
        d.REGION, d.ACCOUNT, staging_queue.create_queue(QueueName="deckhand-deploy-events")["QueueUrl"].rsplit("/", 1)[1])
    installed = post(demo.endpoint, "/_deckhand/events/stacks/staging", {
        "account": d.ACCOUNT, "parameters": {"PromoteToAccounts": PRODUCTION}, "deployQueueArn": staging_queue_arn})
    print("staging's stack (PromoteToAccounts=" + PRODUCTION + "): "
          + ", ".join(n for n in installed["installed"] if "Forward" in n))
    installed = post(demo.endpoint, "/_deckhand/events/stacks/production", {
        "account": PRODUCTION,
        "parameters": {"PromoteFromAccounts": d.ACCOUNT, "RegistryAccounts": d.ACCOUNT},
        "deployQueueArn": f"arn:aws:sqs:{d.REGION}:{PRODUCTION}:deckhand-deploy-events"})
    print(f"production's stack (PromoteFromAccounts={d.ACCOUNT}, RegistryAccounts={d.ACCOUNT}): "
          + ", ".join(n for n in installed["installed"] if "KnownGood" in n or "Accept" in n))
    print(f"prod/orders runs {production.running()}; tags deckhand:deploy = any, "
          f"deckhand:promote-from = {d.ACCOUNT}/demo/orders")

    with production_functions(demo.endpoint, production.topic_arn) as prod_port:
        d.heading("CI pushes orders:v2 to the registry: staging deploys it; production, promoted, ignores the push")
        push = json.loads((d.ROOT / "events" / "ecr-push.json").read_text())
        now = datetime.now(timezone.utc)
        push.update(id="5a1e0c2d-7b3f-4e8a-9c6d-1f2e3a4b5c6d", time=stamp(now),
                    resources=[f"arn:aws:ecr:{d.REGION}:{d.ACCOUNT}:repository/orders"])
        push["detail"] = dict(push["detail"], **{"repository-name": "orders", "image-tag": "v2",
                                                 "image-digest": digest("v2")})
        d.expect(d.invoke_with(lambda_port, "deploy", "ecr-push.json", push, "(orders:v2, staging)"), "deployed")
        d.expect(d.invoke_with(prod_port, "deploy", "ecr-push.json", push, f"(orders:v2, account {PRODUCTION})"),
                 "ignored")

        d.heading("ECS completes staging's deployment; a reconcile after its guard window finds it proven")
        completed = json.loads((d.ROOT / "events" / "ecs-deployment-completed.json").read_text())
        d.time.sleep(1)
        now = datetime.now(timezone.utc)
        completed.update(id="6b2f1d3e-8c4a-4f9b-8d7e-2a3b4c5d6e7f", time=stamp(now),
                         resources=[f"arn:aws:ecs:{d.REGION}:{d.ACCOUNT}:service/demo/orders"])
        completed["detail"] = dict(completed["detail"], updatedAt=stamp(now),
                                   deploymentId=demo.ecs_deployment_id("orders") or completed["detail"]["deploymentId"])
        d.expect(d.invoke_with(lambda_port, "deploy", "ecs-deployment-completed.json", completed,
                               "(demo/orders, time: now)"), "completed")
        proven = (datetime.strptime(morning, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
                  + timedelta(minutes=1))
        reconcile = json.loads((d.ROOT / "events" / "schedule-reconcile.json").read_text())
        reconcile["at"] = stamp(max(proven, now + timedelta(minutes=31)))
        summary = d.invoke_with(lambda_port, "scheduler", "schedule-reconcile.json", reconcile,
                                f"(at: {reconcile['at']})")
        orders = [s for s in summary["services"] if s["service"] == "demo/orders"]
        if not orders or "announced as known-good" not in orders[0]["reason"]:
            raise SystemExit(f"demo/orders was not announced: {summary}")

        d.heading(f"EventBridge carries the announcement to account {PRODUCTION}; its rule hands it to deploy")
        delivered = [e for e in production.delivered() if e["detail"]["service"].endswith("/demo/orders")]
        if len(delivered) != 1:
            raise SystemExit(f"expected one announcement in production, got {delivered}")
        event = delivered[0]
        print(f"  {event['detail-type']} from account {event['account']} (source {event['source']}): "
              + json.dumps(event["detail"]))
        d.expect(d.invoke_with(prod_port, "deploy", "known-good.json", event, f"(account {PRODUCTION})"),
                 "deployed")
        print(f"prod/orders runs {production.running()}")

        d.heading("A Deckhand Known-Good put inside production itself, naming staging's service: a forgery")
        production.events.put_events(Entries=[{
            "Source": "deckhand", "DetailType": "Deckhand Known-Good", "Resources": [event["detail"]["service"]],
            "Detail": json.dumps(dict(event["detail"], revision="orders:9"))}])
        forged = production.delivered()
        d.expect(d.invoke_with(prod_port, "deploy", "known-good.json", forged[0], f"(put in {PRODUCTION})"),
                 "ignored")
        print(f"prod/orders still runs {production.running()}")
