//! The credit-life line: the runner that insures each issued loan with BIMA.

pub mod runner;
