//! Pure decisions: no AWS types, no I/O, time passed in.

pub mod artifact;
pub mod codedeploy;
pub mod codedeploy_busy;
pub mod deploy;
pub mod duration;
pub mod fleet;
pub mod image;
pub mod known_good;
pub mod pace;
pub mod pair;
pub mod pair_move;
pub mod pause;
pub mod pin;
pub mod policy;
pub mod retention;
pub mod rollback;
pub mod scan;
pub mod scan_wait;
pub mod schedule;
pub mod service;
pub mod settings;
pub mod sleep;
pub mod state;
pub mod strategy;
pub mod trust;
