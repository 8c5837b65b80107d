//! Implementations of the ports: AWS for the functions, in-memory for tests of the logic.

pub mod aws;
pub mod emf;
pub mod memory;
