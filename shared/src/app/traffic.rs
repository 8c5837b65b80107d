//! Moving a pair's traffic, for every function that does: read the forward action as it is now
//! (so that everything else of it stays), set the weights, and say so.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Ports;
use tracing::warn;

use crate::domain::pair_move::{PairMove, Shift, TestTraffic};
use crate::notification::{Kind, Notification, Severity};
use crate::ports::PortError;

/// Sets the forward action's weights for a shift of the pair's move, then points the pair's
/// test traffic at the side that is idle after it. Production traffic first: a flip back is
/// what an alarm waits for. A test rule that cannot be set is logged and set again by the next
/// move; it never undoes the production shift.
pub(crate) async fn set_traffic(
    ports: &Ports,
    m: &PairMove,
    shift: &Shift,
) -> Result<(), PortError> {
    let forward = ports.traffic.forward(&m.traffic).await?;
    ports.traffic.set_weights(&forward, &shift.weights).await?;
    if let Some(test) = m.test_traffic_after(shift)
        && let Err(e) = set_test_traffic(ports, &test).await
    {
        warn!(rule = %test.rule, error = %e, "could not point the test traffic at the idle side");
    }
    Ok(())
}

/// Points a test rule's forward action at one side; nothing is written when it already is.
pub(crate) async fn set_test_traffic(ports: &Ports, test: &TestTraffic) -> Result<(), PortError> {
    let forward = ports.traffic.forward(&test.rule).await?;
    if test.holds(&forward) {
        return Ok(());
    }
    ports.traffic.set_weights(&forward, &test.weights).await
}

/// `traffic.shifted`: who has how much now, and why.
pub(crate) fn shifted(m: &PairMove, shift: &Shift, why: &str, at: DateTime<Utc>) -> Notification {
    let severity = if shift.step.is_none() {
        Severity::Warning
    } else {
        Severity::Info
    };
    Notification::new(
        Kind::TrafficShifted,
        severity,
        m.to.to_string(),
        format!(
            "{}% of the traffic on {} now, {}% on {}: {why}",
            shift.percent,
            m.to,
            100 - shift.percent,
            m.from
        ),
        at,
        json!({
            "traffic": m.traffic,
            "from": m.from.to_string(),
            "to": m.to.to_string(),
            "percent": shift.percent,
            "step": shift.step.map(|s| s + 1),
            "steps": m.steps,
            "weights": shift.weights,
        }),
    )
}
