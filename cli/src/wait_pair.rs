//! `deckhand wait` on a pair of services behind one ALB: a push goes to the idle side, and a
//! pipeline waits for the whole move, not for ECS completing the idle side: it ends once all
//! the production traffic is on the digest, or the move failed or went back.

use deckhand::app::Ports;
use deckhand::domain::image::Digest;
use deckhand::domain::pair::PairSettings;
use deckhand::domain::pair_move::PairPhase;
use deckhand::domain::service::{ServiceKey, revision_name};
use deckhand::domain::state::ServiceState;
use deckhand::ports::PortErrorKind;

use crate::wait::{Ending, Progress};

/// The services to read for `service`: itself, and the other side of its pair when its tags
/// name one (`DescribeServices`, once, as the wait starts). A role that may not describe
/// services (a `PipelinePolicy` older than waits on pairs) reads the service alone.
pub async fn sides(
    ports: &Ports,
    service: &ServiceKey,
) -> Result<Vec<ServiceKey>, deckhand::ports::PortError> {
    let described = match ports
        .ecs
        .describe_services(std::slice::from_ref(service))
        .await
    {
        Ok(described) => described,
        Err(e) if e.kind == PortErrorKind::Other && e.message.contains("AccessDenied") => {
            eprintln!(
                "deckhand: cannot describe {service} ({e}): waiting on it alone, not on a pair it may be a side of"
            );
            return Ok(vec![service.clone()]);
        }
        Err(e) => return Err(e),
    };
    let partner = described
        .first()
        .and_then(|view| PairSettings::from_tags(&view.tags).ok().flatten())
        .map(|settings| ServiceKey::new(service.cluster(), &settings.partner));
    Ok(std::iter::once(service.clone()).chain(partner).collect())
}

/// Where the pair's move of `digest` stands, from the state of the side it deployed to;
/// `None` when that state holds no move of it.
pub fn pair_progress(state: &ServiceState, digest: &Digest) -> Option<Progress> {
    let m = state.pair.as_ref()?;
    let d = state.deployment.as_ref().filter(|d| &d.digest == digest)?;
    let to = revision_name(&d.to);
    Some(match m.phase {
        PairPhase::Deploying => Progress::Pending(format!(
            "ECS deploys {to} to {}, the idle side of the pair; no traffic moved yet",
            m.to
        )),
        PairPhase::Gated => Progress::Pending(format!(
            "{} runs {to} and waits at its traffic gate; no production traffic yet",
            m.to
        )),
        PairPhase::Shifting => Progress::Pending(format!(
            "{}% of the traffic on {} ({to}), {}% still on {}",
            m.percent(),
            m.to,
            100 - m.percent(),
            m.from
        )),
        PairPhase::Guarding | PairPhase::Done => Progress::Ended(
            Ending::Completed,
            format!(
                "all the traffic on {} ({to}), moved from {}{}",
                m.to,
                m.from,
                d.guard_until
                    .map(|u| format!(
                        "; an alarm before {} moves it back",
                        u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ))
                    .unwrap_or_default()
            ),
        ),
        PairPhase::FlippedBack | PairPhase::Reviving => Progress::Ended(
            Ending::Failed,
            format!(
                "the traffic went back to {}{}",
                m.from,
                d.rollback
                    .as_ref()
                    .map(|r| format!(" after {}", r.alarm))
                    .unwrap_or_default()
            ),
        ),
        PairPhase::Failed => Progress::Ended(
            Ending::Failed,
            format!(
                "the deployment of {to} to {} failed and moved no traffic{}",
                m.to,
                state
                    .is_quarantined(digest)
                    .map(|q| format!(" ({}); the digest is quarantined", q.reason))
                    .unwrap_or_default()
            ),
        ),
    })
}

/// One reading of every side: the pair's move when a side holds it, else the first end any
/// side reached, else what the side that handled the push says.
pub fn combined(readings: Vec<(Option<Progress>, Progress)>) -> Progress {
    let mut plain = Vec::new();
    for (pair, side) in readings {
        if let Some(pair) = pair {
            return pair;
        }
        plain.push(side);
    }
    if let Some(end) = plain.iter().find(|p| matches!(p, Progress::Ended(..))) {
        return end.clone();
    }
    let handled = plain
        .iter()
        .position(
            |p| !matches!(p, Progress::Pending(r) if r.starts_with("deckhand has not handled")),
        )
        .unwrap_or(0);
    plain
        .into_iter()
        .nth(handled)
        .unwrap_or_else(|| Progress::Pending(String::new()))
}
