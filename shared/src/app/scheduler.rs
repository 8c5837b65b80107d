//! The `scheduler` function: reconcile puts opted-in services to sleep off-hours and wakes
//! them exactly as they were; operators keep one awake or asleep for a while.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::Value;
use tracing::{Instrument, info, info_span, warn};

use super::Ports;
use crate::config::Config;
use crate::domain::fleet::ServiceView;
use crate::domain::service::ServiceKey;
use crate::domain::settings::{ScheduleSettings, TAG_AWAKE, TAG_DEPLOY};
use crate::domain::sleep::Observed;
use crate::domain::state::{Capacity, OperatorOverride, ServiceState};
use crate::events::EventError;
use crate::events::scheduler::{SchedulerEvent, parse_scheduler_event};
use crate::ports::{PortError, TaggedService};
use crate::report::Summary;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("bad event: {0}")]
    BadEvent(#[from] EventError),
    /// Nothing was changed: the services could not be listed or described.
    #[error("could not find the services: {0}")]
    Discovery(PortError),
    /// Some services could not be handled; the others were. The next reconcile retries them.
    #[error("{}", .0.failure_message())]
    ServicesFailed(Summary),
}

impl SchedulerError {
    /// The Lambda error type, for diagnostics and alarms.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::BadEvent(_) => "deckhand.BadEvent",
            Self::Discovery(_) => "deckhand.DiscoveryFailed",
            Self::ServicesFailed(_) => "deckhand.ServicesFailed",
        }
    }
}

/// How long a change started just before the deadline may still take: a lock, a scalable
/// target, a desired count and a commit under throttling, well inside one minute; and never
/// more than a fifth of the invocation (a short timeout, as `cargo lambda watch` gives).
const CHANGE_IN_FLIGHT: std::time::Duration = std::time::Duration::from_secs(60);

/// The instant after which no change starts, for an invocation that times out at `deadline`
/// (Lambda's, in wall-clock time). Measured on the monotonic clock from now: the clock port
/// may be set to any instant (a test, a replayed event), Lambda's deadline is real time.
fn stop_starting_at(deadline: DateTime<Utc>) -> tokio::time::Instant {
    let remaining = (deadline - Utc::now()).to_std().unwrap_or_default();
    let margin = CHANGE_IN_FLIGHT.min(remaining / 5);
    tokio::time::Instant::now() + remaining.saturating_sub(margin)
}
/// The reason given for a service the reconcile left for the next one.
const DEFERRED: &str = "not started: this reconcile reached the end of its invocation; the next reconcile goes on with it";

/// Services asleep first: when a fleet takes longer than one invocation, waking late costs
/// people their morning, sleeping late only money. Otherwise in the order found.
fn most_urgent_first(subjects: &mut [Subject]) {
    subjects.sort_by_key(|s| s.state.sleep.is_none());
}

/// How an invocation may act.
#[derive(Clone, Copy, Debug)]
struct Mode {
    /// `DECKHAND_DRY_RUN`: decide, record and notify, change nothing in ECS.
    dry_run: bool,
    /// `dryRun` in the request: decide and report, write nothing at all.
    plan: bool,
    /// After this instant no new change starts: the invocation's deadline less the time a
    /// change in flight may still need.
    stop_starting_at: Option<tokio::time::Instant>,
}

/// Both sides of every pair whose traffic moves, or whose new side is in its guard window,
/// with why in words: neither side sleeps meanwhile.
fn pairs_moving(states: &BTreeMap<ServiceKey, ServiceState>) -> BTreeMap<ServiceKey, String> {
    use crate::domain::pair_move::PairPhase;
    let mut moving = BTreeMap::new();
    for m in states.values().filter_map(|s| s.pair.as_ref()) {
        if matches!(
            m.phase,
            PairPhase::Gated | PairPhase::Shifting | PairPhase::Guarding | PairPhase::Reviving
        ) {
            let why = format!(
                "the traffic of its pair moves from {} to {} ({}% on {}); not put to sleep before the move ends",
                m.from,
                m.to,
                m.percent(),
                m.to
            );
            moving.insert(m.from.clone(), why.clone());
            moving.insert(m.to.clone(), why);
        }
    }
    moving
}

/// The services a reconcile looks at.
struct Discovered {
    /// Scheduled (`deckhand:awake`) or kept asleep: their schedule is applied.
    scheduled: BTreeSet<ServiceKey>,
    /// Deployed by deckhand (`deckhand:deploy`): their known-good revision is checked.
    deployed: BTreeSet<ServiceKey>,
}

/// One service as the reconcile found it.
pub(super) struct Subject {
    service: ServiceView,
    capacity: Option<Capacity>,
    state: ServiceState,
    /// The traffic of the pair it is a side of moves: why, in words.
    pair_moving: Option<String>,
}

/// What to do under the lock, for one service.
struct Job<'a> {
    key: &'a ServiceKey,
    settings: Option<&'a ScheduleSettings>,
    observed: Observed,
    at: DateTime<Utc>,
    cause: &'a str,
    /// An operator's wake or sleep, to store with the decision.
    set_override: Option<OperatorOverride>,
    /// The service's guard window, for a deployment done while it slept that a wake runs.
    guard: TimeDelta,
    /// The state the reconcile read in its batch, when it did.
    read: Option<&'a ServiceState>,
}

pub struct SchedulerFunction {
    ports: Ports,
    config: Config,
}

impl SchedulerFunction {
    pub fn new(ports: Ports, config: Config) -> Self {
        Self { ports, config }
    }

    pub async fn handle(&self, event: &Value) -> Result<Summary, SchedulerError> {
        self.handle_within(event, None).await
    }

    /// Handles an event in an invocation that ends at `deadline` (Lambda's timeout): a
    /// reconcile starts no change in its last minute, and says which services it left for the
    /// next one.
    pub async fn handle_within(
        &self,
        event: &Value,
        deadline: Option<DateTime<Utc>>,
    ) -> Result<Summary, SchedulerError> {
        if let Some(reason) = self.config.foreign(event) {
            warn!(%reason, "an event of another account or region changes nothing");
            return Ok(Summary::ignored(reason));
        }
        let now = self.ports.clock.now();
        let stop_starting_at = deadline.map(stop_starting_at);
        let failed;
        let mut summary = match parse_scheduler_event(event)? {
            SchedulerEvent::Reconcile {
                at,
                dry_run,
                event_id,
            } => {
                let at = at.unwrap_or(now);
                let cause = event_id.unwrap_or_else(|| format!("reconcile@{}", rfc3339(at)));
                let span =
                    info_span!("reconcile", at = %rfc3339(at), cause = %cause, plan = dry_run);
                let mode = Mode {
                    stop_starting_at,
                    ..self.mode(dry_run)
                };
                let summary = self.reconcile(at, mode, &cause).instrument(span).await?;
                failed = summary.failed_services().next().is_some();
                // Pushes held (a busy CodeDeploy group, a change freeze) or waiting for a scan
                // are the deploy function's own round (`release-held`), on the same schedule.
                summary
            }
            SchedulerEvent::Override {
                service,
                awake,
                until,
                dry_run,
            } => {
                let action = if awake { "wake" } else { "sleep" };
                let cause = format!("{action}#{service}@{}", rfc3339(now));
                let span = info_span!("override", %service, action, cause = %cause);
                let summary = self
                    .operator(&service, awake, until, self.mode(dry_run), &cause)
                    .instrument(span)
                    .await?;
                failed = summary.failed_services().next().is_some();
                summary
            }
        };
        summary.dry_run = self.config.dry_run || summary.dry_run;
        if failed {
            return Err(SchedulerError::ServicesFailed(summary));
        }
        info!(outcome = ?summary.outcome, services = summary.services.len(), "handled");
        Ok(summary)
    }

    fn mode(&self, plan: bool) -> Mode {
        Mode {
            dry_run: self.config.dry_run,
            plan,
            stop_starting_at: None,
        }
    }

    /// Services with a schedule in the managed clusters, and every service deckhand keeps
    /// asleep: a changed tag or cluster list never strands a sleeping service. Beside them, the
    /// services deckhand deploys, whose known-good revisions the reconcile checks.
    async fn discover(&self) -> Result<Discovered, PortError> {
        let (tagged, deployed, sleeping) = futures::try_join!(
            self.ports.ecs.find_services(TAG_AWAKE),
            self.ports.ecs.find_services(TAG_DEPLOY),
            self.ports.store.sleeping()
        )?;
        let managed = |found: &Vec<TaggedService>| -> BTreeSet<ServiceKey> {
            found
                .iter()
                .filter_map(|found| ServiceKey::from_arn(&found.arn))
                .filter(|key| self.config.manages_cluster(key.cluster()))
                .collect()
        };
        let mut scheduled = managed(&tagged);
        scheduled.extend(sleeping);
        Ok(Discovered {
            deployed: managed(&deployed),
            scheduled,
        })
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[path = "scheduler_reconcile.rs"]
mod reconcile;
pub use reconcile::scheduled_scaling_words;

#[path = "scheduler_operator.rs"]
mod operator;

#[path = "scheduler_act.rs"]
mod act;
use act::planned;

#[path = "scheduler_known_good.rs"]
mod known_good;

#[path = "scheduler_pair.rs"]
mod pair;

#[path = "scheduler_index.rs"]
mod index;

#[path = "scheduler_keep.rs"]
mod keep;

#[path = "scheduler_restore.rs"]
mod restore;

#[path = "scheduler_lock.rs"]
mod lock_saving;
use lock_saving::prepared;

#[path = "scheduler_summary.rs"]
mod digest;
use digest::{reconcile_measurements, scale_summary};

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
