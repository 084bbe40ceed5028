//! The truck eOSAGO line: the bank's request and our notices (`bank`), and the
//! process that runs it through MUST (`process`).

pub mod bank;
pub mod process;
