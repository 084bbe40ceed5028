//! The truck eOSAGO line: MUST's hooks in (authenticated, stored, queued) and the
//! runner that drives each process through MUST.

pub mod hook_auth;
pub mod hook_intake;
pub mod runner;
