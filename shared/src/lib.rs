//! deckhand's library: the pure domain, the ports, their AWS and in-memory adapters, and the
//! use cases the Lambda functions run.

pub mod adapters;
pub mod app;
pub mod chat;
pub mod config;
pub mod domain;
pub mod events;
pub mod history;
pub mod lambda;
pub mod metrics;
pub mod notification;
pub mod ports;
pub mod report;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod properties;
