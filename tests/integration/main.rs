//! Integration tests: the functions' use cases through the real AWS SDK against moto server,
//! which the harness starts on a free loopback port and stops when the tests end.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod cli;
mod codedeploy;
mod codedeploy_others;
mod concurrency;
mod deploy;
mod faults;
mod freeze;
mod gate;
mod known_good;
mod pair;
mod pair_gate;
mod pair_setup;
mod payloads;
mod redrive;
mod retention;
mod rollback;
mod scheduler;
mod stages;
mod strategies;
mod targets;
mod traffic;
mod trial;
mod trust;
mod wait;

use testkit::harness;
