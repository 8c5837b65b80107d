//! The use cases: parse an event, ask the domain, apply the plan through the ports.

pub mod deploy;
mod locking;

use std::sync::Arc;

use crate::ports::{Clock, Ecr, Ecs, Notifier, StateStore};

/// The ports a function works through, built once per process.
#[derive(Clone)]
pub struct Ports {
    pub ecs: Arc<dyn Ecs>,
    pub ecr: Arc<dyn Ecr>,
    pub store: Arc<dyn StateStore>,
    pub notifier: Arc<dyn Notifier>,
    pub clock: Arc<dyn Clock>,
}
