//! Test support: a moto server and the stacks the tests build on it, deckhand's functions behind
//! its Lambda Invoke, and a proxy that counts and faults the AWS calls on their way to it. Used
//! by the integration tests and the end-to-end benchmark.

// Support code of tests and benchmarks: a failed unwrap is a failed run, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod check_function;
mod codedeploy;
pub mod functions;
pub mod harness;
pub mod proxy;
mod service_deployments;
