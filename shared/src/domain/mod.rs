//! The domain: pure types and rules, no I/O.

pub mod bank;
pub mod bima;
pub mod ids;
pub mod links;
pub mod loan;
pub mod must;
pub mod outcome;
pub mod products;
pub mod truck;
pub mod validation;
pub mod workflow;
