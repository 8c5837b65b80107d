//! `deckhand redrive` against moto server's SQS, with the functions behind the emulator's
//! Lambda Invoke: what the failure queue holds, in every shape AWS writes it, goes back to its
//! function as the event itself.

use std::ffi::OsString;
use std::sync::Arc;

use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::Utc;
use deckhand::history::HistoryRecord;
use deckhand::ports::{StateStore as _, SystemClock};
use deckhand::report::Action;
use serde_json::{Value, json};

use crate::harness::{Role, Stack, aws_fixture};

/// Runs `deckhand redrive ARGS` signed with the template's OperatorPolicy: what it printed, and
/// whether it succeeded.
async fn redrive(stack: &Stack, args: &[&str]) -> (String, Result<(), String>) {
    let mut argv: Vec<OsString> = vec![
        "deckhand".into(),
        "--table".into(),
        stack.table.clone().into(),
        "redrive".into(),
        "--queue-url".into(),
        stack.failure_queue_url.clone().into(),
        // The stack's outputs: the only functions a message goes to.
        "--functions".into(),
        stack.function_arn(Role::Deploy).into(),
        stack.function_arn(Role::Rollback).into(),
        stack.function_arn(Role::Scheduler).into(),
    ];
    argv.extend(args.iter().map(OsString::from));
    let mut out = Vec::new();
    let sdk = stack.sdk_as(Role::Operator, &stack.config());
    let result = deckhand_cli::run(argv, &sdk, &mut out)
        .await
        .map_err(|e| e.to_string());
    (String::from_utf8(out).unwrap(), result)
}

/// Puts a message into the stack's failure queue, as Lambda or EventBridge would.
async fn enqueue(stack: &Stack, body: &str, attributes: &[(&str, &str)]) {
    let mut send = aws_sdk_sqs::Client::new(&stack.sdk)
        .send_message()
        .queue_url(&stack.failure_queue_url)
        .message_body(body);
    for (name, value) in attributes {
        send = send.message_attributes(
            *name,
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*value)
                .build()
                .unwrap(),
        );
    }
    send.send().await.unwrap();
}

/// The bodies of the messages in the queue, left visible.
async fn bodies(stack: &Stack) -> Vec<String> {
    let answer = aws_sdk_sqs::Client::new(&stack.sdk)
        .receive_message()
        .queue_url(&stack.failure_queue_url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let mut bodies: Vec<String> = answer
        .messages()
        .iter()
        .filter_map(|m| m.body.clone())
        .collect();
    bodies.sort();
    bodies
}

/// Lambda's on-failure record of an invocation of `function` with `event` (the corpus's
/// record, with this stack's function and event).
fn on_failure_record(function: &str, event: &Value) -> String {
    let message = aws_fixture("lambda-on-failure-record");
    let mut record: Value = serde_json::from_str(message["Body"].as_str().unwrap()).unwrap();
    record["requestContext"]["functionArn"] = json!(format!("{function}:$LATEST"));
    record["requestPayload"] = event.clone();
    record.to_string()
}

#[tokio::test]
async fn the_failure_queue_goes_back_to_the_functions_and_keeps_only_what_fails_again() {
    let stack = Stack::new().await;
    let _functions = stack.serve_functions(Arc::new(SystemClock));
    let td = stack
        .simple_task_definition(&format!("redrive-{}", stack.id), "main-41")
        .await;
    stack
        .create_service("web", &td, &[("deckhand:deploy", "prefix=main-")])
        .await;
    let digest = stack.push_image("main-42").await;
    let deploy = stack.function_arn(Role::Deploy);
    let scheduler = stack.function_arn(Role::Scheduler);

    // The push that failed every attempt, in Lambda's record.
    let push = stack.push_event("push-42", Utc::now(), "main-42", &digest);
    enqueue(&stack, &on_failure_record(&deploy, &push), &[]).await;
    // A push the rule could not deliver: the event itself, the target in an attribute.
    stack.retag(&digest, "dev-7").await;
    let other = stack.push_event("push-dev", Utc::now(), "dev-7", &digest);
    enqueue(
        &stack,
        &other.to_string(),
        &[
            (
                "RULE_ARN",
                "arn:aws:events:us-east-1:123456789012:rule/deckhand-EcrPush",
            ),
            ("TARGET_ARN", &deploy),
            ("ERROR_CODE", "THROTTLING"),
            ("ERROR_MESSAGE", "Rate Exceeded."),
        ],
    )
    .await;
    // A reconcile the schedule could not deliver: not replayed.
    enqueue(
        &stack,
        r#"{"action":"reconcile","at":"2026-11-23T19:00:00Z"}"#,
        &[
            (
                "SCHEDULE_ARN",
                "arn:aws:scheduler:us-east-1:123456789012:schedule/default/reconcile",
            ),
            ("TARGET_ARN", &scheduler),
            ("ERROR_CODE", "AWS.Scheduler.InternalServerError"),
        ],
    )
    .await;
    // An event that still fails (it names no repository), and a message of unknown origin.
    let mut broken = push.clone();
    broken["detail"]
        .as_object_mut()
        .unwrap()
        .remove("repository-name");
    let broken_record = on_failure_record(&deploy, &broken);
    enqueue(&stack, &broken_record, &[]).await;
    enqueue(&stack, "hello", &[]).await;
    // A message whoever may send to the queue made up: a function of the account that is not
    // the stack's, handed a wake.
    let forged = on_failure_record(
        &format!(
            "arn:aws:lambda:us-east-1:123456789012:function:payroll-{}",
            stack.id
        ),
        &json!({"action": "wake", "service": format!("{}/web", stack.cluster), "for": "2h"}),
    );
    enqueue(&stack, &forged, &[]).await;

    let (dry, result) = redrive(&stack, &["--dry-run"]).await;
    assert_eq!(result, Ok(()), "{dry}");
    assert!(
        dry.contains("3 would-redrive") && dry.contains("1 would-drop"),
        "{dry}"
    );
    assert!(stack.running_task_definition("web").await.ends_with(":1"));
    assert_eq!(bodies(&stack).await.len(), 6, "a dry run deletes nothing");

    let (printed, result) = redrive(&stack, &[]).await;
    assert_eq!(
        result,
        Err("3 message(s) left in the failure queue".to_owned()),
        "{printed}"
    );
    let line = |words: &str| {
        printed
            .lines()
            .find(|l| l.contains(words))
            .unwrap_or_else(|| panic!("no line with {words:?} in:\n{printed}"))
    };
    let name = |role: Role| format!("deckhand-{}-{}", stack.id, role.name());
    assert!(line("ECR Image Action push-42").starts_with("redriven"));
    assert!(
        line("ECR Image Action push-42").contains(&format!("-> {}: deployed", name(Role::Deploy)))
    );
    assert!(line("push-dev").starts_with("redriven"));
    assert!(line("push-dev").contains("ignored"));
    assert!(
        line("push-dev")
            .contains("never delivered by deckhand-EcrPush (THROTTLING: Rate Exceeded.)")
    );
    assert!(line("reconcile").starts_with("dropped"));
    assert!(line("reconcile").contains(&name(Role::Scheduler)));
    assert!(
        line("failed-again").contains("detail.repository-name"),
        "{printed}"
    );
    assert!(line("unreadable").contains("(body): not JSON"));
    assert!(
        line("refused").contains("is not one of the stack's functions"),
        "{printed}"
    );
    assert!(
        printed.ends_with("1 dropped, 1 failed-again, 2 redriven, 1 refused, 1 unreadable\n"),
        "{printed}"
    );

    // The push was deployed by the deploy function, pinned by digest, and recorded.
    let running = stack.running_task_definition("web").await;
    assert!(running.ends_with(":2"), "{running}");
    let (definition, _) = stack.task_definition(&running).await;
    let image = definition.container_definitions()[0].image().unwrap();
    assert!(image.ends_with(&format!("@{digest}")), "{image}");
    let history: Vec<HistoryRecord> = stack
        .store()
        .history(&stack.service_key("web"), 10)
        .await
        .unwrap();
    assert!(
        history.iter().any(|r| r.action == Action::Deployed),
        "{history:?}"
    );
    // What failed again and what nobody can read are still there, visible.
    let mut left = vec![broken_record, "hello".to_owned(), forged];
    left.sort();
    assert_eq!(bodies(&stack).await, left);

    // A second run sends the same event again: it fails again, nothing else changes.
    let (again, result) = redrive(&stack, &[]).await;
    assert!(result.is_err(), "{again}");
    assert!(
        again.ends_with("1 failed-again, 1 refused, 1 unreadable\n"),
        "{again}"
    );
    assert_eq!(bodies(&stack).await.len(), 3);
}

#[tokio::test]
async fn an_empty_queue_says_so() {
    let stack = Stack::new().await;
    let (printed, result) = redrive(&stack, &[]).await;
    assert_eq!(result, Ok(()));
    assert_eq!(printed, "the failure queue is empty\n");
}
