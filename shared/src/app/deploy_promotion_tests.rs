//! Promotion (`deckhand:promote-from`): a `Deckhand Known-Good` announcement from the upstream
//! deploys its digest to the services promoted from it, and nothing else does.

use super::*;

const STAGING: &str = "111111111111";

fn promoting(from: &[&str]) -> Config {
    Config {
        topic_arn: "arn:aws:sns:eu-west-1:123456789012:deckhand".into(),
        promote_from_accounts: from.iter().map(|a| (*a).to_owned()).collect(),
        ..config(false)
    }
}

/// `demo/web` promoted from `upstream`, running `web:main-1`; ECR holds digest `b` of `web`.
fn promoted(config: Config, upstream: &str) -> World {
    promoted_with(config, upstream, "tag=release")
}

/// The same, with `policy` as its `deckhand:deploy`.
fn promoted_with(config: Config, upstream: &str, policy: &str) -> World {
    let w = world_with(config);
    let td = w
        .ecs
        .add_task_definition("web", &[("web", &format!("{HOST}/web:main-1"))]);
    w.ecs.add_service(
        &web(),
        &td,
        &[
            ("deckhand:deploy", policy),
            ("deckhand:promote-from", upstream),
        ],
    );
    w.ecr
        .push("web", &digest('b').parse().unwrap(), Some("main-2"));
    w
}

fn announcement(account: &str, service_account: &str, d: char) -> Value {
    json!({"version": "0", "id": "kg-1", "detail-type": "Deckhand Known-Good", "source": "deckhand",
           "account": account, "time": at(5).to_rfc3339(), "region": "eu-west-1",
           "resources": [format!("arn:aws:ecs:eu-west-1:{service_account}:service/staging/web")],
           "detail": {"service": format!("arn:aws:ecs:eu-west-1:{service_account}:service/staging/web"),
                      "revision": "web:8", "at": at(4).to_rfc3339(), "deployment": "ecs-svc/9",
                      "images": [{"container": "web", "image": format!("{HOST}/web@{}", digest(d))}]}})
}

/// The announcement handled by the deploy function: its summary.
async fn announced(w: &World, account: &str, service_account: &str, d: char) -> Summary {
    w.function
        .handle(&announcement(account, service_account, d))
        .await
        .unwrap()
}

/// The reasons the summary gives: its own and each service's.
fn reason_of(summary: &Summary) -> String {
    summary
        .reason
        .iter()
        .chain(summary.services.iter().map(|s| &s.reason))
        .cloned()
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn the_upstreams_known_good_digest_deploys_without_a_push() {
    let w = promoted(promoting(&[STAGING]), "111111111111/staging/web");
    let summary = announced(&w, STAGING, STAGING, 'b').await;
    assert_eq!(summary.outcome, Outcome::Deployed, "{summary:?}");
    let reason = &summary.services[0].reason;
    assert!(
        reason.contains("promoted: 111111111111/staging/web proved it with web:8"),
        "{reason}"
    );
    // Pinned by digest, though the policy (tag=release) matches no tag of it.
    assert_eq!(
        running_image(&w, "web"),
        format!("{HOST}/web@{}", digest('b'))
    );
}

#[tokio::test]
async fn a_push_to_a_promoted_service_is_ignored_and_says_why() {
    let w = promoted(promoting(&[STAGING]), "111111111111/staging/web");
    let summary = w
        .function
        .handle(&w.pushed(push_event("e1", 1, Some("release"), 'c')))
        .await
        .unwrap();
    assert_eq!(summary.outcome, Outcome::Ignored, "{summary:?}");
    assert!(
        summary.services[0]
            .reason
            .contains("takes only digests that 111111111111/staging/web proved"),
        "{summary:?}"
    );
    assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));
    let history = w.store.history(&web(), 10).await.unwrap();
    assert_eq!(history[0].action, Action::Ignored);
}

#[tokio::test]
async fn an_announcement_that_does_not_count_changes_nothing() {
    let cases = [
        // From an account the stack does not take promotions from.
        (
            &[][..],
            STAGING,
            STAGING,
            'b',
            "account 111111111111, not the stack's own",
        ),
        // Put inside this account, claiming to speak for staging's service.
        (
            &[STAGING][..],
            "123456789012",
            STAGING,
            'b',
            "only its own services",
        ),
        // Another upstream's announcement, of this account.
        (
            &[STAGING][..],
            "123456789012",
            "123456789012",
            'b',
            "but the service takes promotions from 111111111111/staging/web",
        ),
        // A digest ECR does not hold.
        (
            &[STAGING][..],
            STAGING,
            STAGING,
            'f',
            "ECR does not confirm",
        ),
    ];
    for (trusted, account, service_account, d, why) in cases {
        let w = promoted(promoting(trusted), "111111111111/staging/web");
        let summary = announced(&w, account, service_account, d).await;
        assert_eq!(summary.outcome, Outcome::Ignored, "{summary:?}");
        assert!(reason_of(&summary).contains(why), "{why}: {summary:?}");
        assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));
        assert_eq!(w.ecs.calls("UpdateService"), 0);
    }
}

#[tokio::test]
async fn a_promotion_meets_the_gates_of_a_push() {
    // Paused by an operator: recorded, not deployed.
    let w = promoted(promoting(&[STAGING]), "111111111111/staging/web");
    let mut state = w.store.load(&web()).await.unwrap();
    state.paused = Some(crate::domain::state::Paused {
        at: at(1),
        by: "ops".into(),
    });
    w.store.put_state(&web(), state);
    let summary = announced(&w, STAGING, STAGING, 'b').await;
    assert_eq!(summary.outcome, Outcome::Skipped, "{summary:?}");
    assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));
    // `off` holds it too.
    let w = promoted_with(promoting(&[STAGING]), "111111111111/staging/web", "off");
    let summary = announced(&w, STAGING, STAGING, 'b').await;
    assert_ne!(summary.outcome, Outcome::Deployed, "{summary:?}");
    assert_eq!(running_image(&w, "web"), format!("{HOST}/web:main-1"));
}

#[tokio::test]
async fn the_newest_announcement_of_an_upstream_is_kept_for_the_operator() {
    let w = promoted(promoting(&[STAGING]), "111111111111/staging/web");
    announced(&w, STAGING, STAGING, 'b').await;
    let upstream = "111111111111/staging/web";
    let kept = w.store.announcement(upstream).await.unwrap().unwrap();
    assert_eq!(kept["detail"]["revision"], json!("web:8"));
    // An older announcement delivered late does not replace it.
    let mut older = announcement(STAGING, STAGING, 'c');
    older["id"] = json!("kg-0");
    older["detail"]["revision"] = json!("web:7");
    older["detail"]["at"] = json!(at(1).to_rfc3339());
    w.function.handle(&older).await.unwrap();
    let kept = w.store.announcement(upstream).await.unwrap().unwrap();
    assert_eq!(kept["detail"]["revision"], json!("web:8"));
    // One that does not count is not kept.
    let w = promoted(promoting(&[]), "111111111111/staging/web");
    announced(&w, STAGING, STAGING, 'b').await;
    assert_eq!(w.store.announcement(upstream).await.unwrap(), None);
}
