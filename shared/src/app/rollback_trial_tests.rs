//! A trial for one service (`deckhand:dry-run`): the rollback its alarm would lead to is
//! rehearsed, while the rest of the stack acts.

use super::*;

#[tokio::test]
async fn a_service_on_trial_rehearses_its_rollback_while_the_stack_acts() {
    let w = world();
    let api = w.service("api", &[("deckhand:dry-run", "on")]);
    let s = rehearsed(&w).await;
    assert!(!s.dry_run, "the stack acts");
    assert_eq!(w.running(&api), "api:1");
    assert_eq!(w.kinds(), ["rollback.skipped"]);
    let history = w.store.all_history();
    let rehearsed = history
        .iter()
        .find(|r| r.action == Action::WouldRollBack)
        .unwrap();
    assert!(rehearsed.dry_run);
    assert!(w.store.load(&api).await.unwrap().quarantine.is_empty());
}

#[tokio::test]
async fn a_service_tagged_off_rolls_back_in_a_stack_in_dry_run() {
    let w = world_of(false, true);
    let api = w.deployed_api(&[("deckhand:dry-run", "off")]).await;
    let s = w
        .alarm("a1", "ALARM", "OK", "2026-11-23T10:13:00Z")
        .await
        .unwrap();
    assert_eq!(s.outcome, Outcome::RolledBack, "{s:?}");
    w.rolled_back_to_api_1(&api).await;
}
