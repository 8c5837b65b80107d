use super::*;
use crate::domain::pair_move::{PairPhase, blue_to_green};

#[test]
fn the_gate_is_an_approval_or_a_check_function_by_name_or_arn() {
    assert_eq!(parse_gate(" approve "), Ok(TrafficGate::Approve));
    assert_eq!(
        parse_gate("check=smoke-web_1"),
        Ok(TrafficGate::Check {
            function: "smoke-web_1".into()
        })
    );
    let arn = "arn:aws:lambda:eu-west-1:123456789012:function:smoke:live";
    assert_eq!(
        parse_gate(&format!("check={arn}")),
        Ok(TrafficGate::Check {
            function: arn.into()
        })
    );
    for bad in [
        "",
        "approved",
        "check=",
        "check=smoke test",
        "check=arn:aws:lambda:eu-west-1:1234:function:smoke",
        "check=arn:aws:s3:::bucket",
        &format!("check={}", "x".repeat(65)),
    ] {
        assert!(parse_gate(bad).is_err(), "{bad}");
    }
}

#[test]
fn only_an_answer_of_success_true_passes() {
    let read = |error: Option<&str>, body: &str| read_check_answer("smoke", error, body.as_bytes());
    assert_eq!(read(None, r#"{"success": true}"#), CheckVerdict::Passed);
    assert_eq!(
        read(
            None,
            r#"{"success": false, "reason": "GET /health answered 503"}"#
        ),
        CheckVerdict::Failed(
            "check function smoke answered failure: GET /health answered 503".into()
        )
    );
    for body in [r#"{"success": "true"}"#, "true", "", r#"{"ok": true}"#] {
        assert!(
            matches!(read(None, body), CheckVerdict::Failed(_)),
            "{body}"
        );
    }
    let CheckVerdict::Failed(why) = read(
        Some("Unhandled"),
        r#"{"errorType": "Runtime.ExitError", "errorMessage": "Task timed out after 60.00 seconds"}"#,
    ) else {
        panic!("a function error never passes");
    };
    assert!(why.contains("failed (Unhandled): Task timed out"), "{why}");
    let CheckVerdict::Failed(long) = read(
        None,
        &format!(r#"{{"success": false, "reason": "{}"}}"#, "y".repeat(1000)),
    ) else {
        panic!()
    };
    assert!(long.len() < 400, "{}", long.len());
}

#[test]
fn the_question_names_the_side_about_to_go_live_and_its_test_rule() {
    let m = blue_to_green(&[100]);
    let q = check_question(&m, &ServiceState::default());
    assert_eq!(q["service"], "prod/web-green");
    assert_eq!(q["live"], "prod/web-blue");
    assert_eq!(q["targetGroup"], "tg-green");
    assert_eq!(q["testTraffic"], "test-rule");
    let mut state = ServiceState::default();
    assert_eq!(fail_gated(&mut state, "rejected", chrono::Utc::now()), None);
    let mut gated = m.clone();
    gated.phase = PairPhase::Gated;
    state.pair = Some(gated);
    assert_eq!(
        fail_gated(&mut state, "no deployment", chrono::Utc::now()),
        None
    );
}
