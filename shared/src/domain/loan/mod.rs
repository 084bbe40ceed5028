//! The credit-life line: the bank's issued loan (`bank`), and the process that
//! insures it with BIMA (`process`).

pub mod bank;
pub mod process;
