//! The truck eOSAGO line: MUST's hooks in (authenticated, stored, queued), the
//! runner that drives each process through MUST, and MUST's helper methods for the bank.

pub mod helpers;
pub mod hook_auth;
pub mod hook_intake;
pub mod runner;
