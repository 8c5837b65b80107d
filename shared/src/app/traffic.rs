//! Moving a pair's traffic, for every function that does: read the forward action as it is now
//! (so that everything else of it stays), set the weights, and say so.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Ports;
use crate::domain::pair_move::{PairMove, Shift};
use crate::notification::{Kind, Notification, Severity};
use crate::ports::PortError;

/// Sets the forward action's weights for a shift of the pair's move.
pub(crate) async fn set_traffic(
    ports: &Ports,
    m: &PairMove,
    shift: &Shift,
) -> Result<(), PortError> {
    let forward = ports.traffic.forward(&m.traffic).await?;
    ports.traffic.set_weights(&forward, &shift.weights).await
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
