//! Retention in small steps: a few revisions per completed deployment, each recorded as it is
//! deregistered, and revisions others registered passed over without blocking deckhand's own.

use super::*;

#[tokio::test]
async fn retention_works_a_few_revisions_at_a_time_past_the_ones_others_registered() {
    let w = world(&[
        ("deckhand:deploy", "prefix=main-"),
        ("deckhand:keep-revisions", "2"),
    ]);
    // A long history registered by a pipeline before deckhand: web:2..=web:31.
    for n in 2..=31 {
        w.ecs
            .add_task_definition("web", &[("web", &format!("{HOST}/web:old-{n}"))]);
    }
    let t0 = at(0);
    for (i, d) in "23456789abcd".chars().enumerate() {
        let start = t0 + chrono::TimeDelta::minutes(2 * i as i64);
        deploy_and_complete(&w, i + 32, d, start).await;
    }

    let records: Vec<HistoryRecord> = w
        .store
        .all_history()
        .into_iter()
        .filter(|r| r.action == Action::Deregistered)
        .collect();
    assert!(
        records.iter().all(|r| r.deregistered.len() == 1),
        "one record per revision, written as it goes"
    );
    let mut per_event: HashMap<&str, usize> = HashMap::new();
    for record in &records {
        *per_event.entry(record.cause.as_str()).or_default() += 1;
    }
    assert!(per_event.values().all(|n| *n <= 5), "{per_event:?}");
    let deregistered: Vec<i32> = records
        .iter()
        .filter_map(|r| r.deregistered[0].rsplit(':').next()?.parse().ok())
        .collect();
    // deckhand's own, oldest first; the pipeline's are never touched.
    assert_eq!(deregistered, (32..=41).collect::<Vec<_>>());
    let mut expected: Vec<i32> = (1..=31).collect();
    expected.extend([42, 43]);
    assert_eq!(w.ecs.active("web"), expected);
    // The pipeline's revisions were described once each, not at every completion.
    assert!(
        w.ecs.calls("DescribeTaskDefinition") < 30 + 2 * 12 + 12,
        "{} descriptions",
        w.ecs.calls("DescribeTaskDefinition")
    );
}

#[tokio::test]
async fn a_backlog_of_revisions_is_trimmed_five_at_a_time() {
    let w = world(&[
        ("deckhand:deploy", "prefix=main-"),
        ("deckhand:keep-revisions", "2"),
    ]);
    let t0 = at(0);
    // ECS refuses every deregistration for a while: a backlog builds up.
    w.ecs.fail("DeregisterTaskDefinition");
    for (i, d) in "23456789ab".chars().enumerate() {
        let start = t0 + chrono::TimeDelta::minutes(2 * i as i64);
        deploy_and_complete(&w, i + 2, d, start).await;
    }
    assert_eq!(w.ecs.active("web"), (1..=11).collect::<Vec<_>>());
    w.ecs.heal("DeregisterTaskDefinition");

    let next = deploy_and_complete(&w, 12, 'c', t0 + chrono::TimeDelta::minutes(30)).await;
    assert!(
        next.services[0]
            .reason
            .contains("deregistered web:2, web:3, web:4, web:5, web:6"),
        "{next:?}"
    );
    let mut expected = vec![1];
    expected.extend(7..=12);
    assert_eq!(w.ecs.active("web"), expected, "five, oldest first");
    let records = |cause: &str| {
        w.store
            .all_history()
            .into_iter()
            .filter(|r| r.action == Action::Deregistered && r.cause == cause)
            .count()
    };
    assert_eq!(records("done-12"), 5, "one record each");

    deploy_and_complete(&w, 13, 'd', t0 + chrono::TimeDelta::minutes(32)).await;
    assert_eq!(w.ecs.active("web"), [1, 12, 13]);
}
