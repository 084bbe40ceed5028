//! The end-to-end harness: the MUST and BIMA simulators and the local cloud
//! (real function binaries from `template.yaml`) against the AWS emulator, plus
//! helpers that act as the bank: put documents in S3, send events, read
//! notifications, watch a process, ask for a customer's products.

mod bank;
mod inspect;
pub mod operator;
mod stack;

pub use bank::kinds;
pub use inspect::{attribute_json, done_calls, is_settled, must_call_of, stage_of, ENDED};
pub use stack::{
    workspace_root, BoxError, Harness, HookAuthMode, Partner, Partners, Ports, StackOptions, StackTimings,
    BIMA_CLIENT_ID, BIMA_CLIENT_SECRET, CHOICE_REMINDER_MINUTES, HOOK_SECRET, MUST_LOGIN, MUST_PASSWORD,
    NEW_PATH_TOKEN, NEW_SIGNING_SECRET, OLD_PATH_TOKEN, OLD_SIGNING_SECRET, SCHEDULE_EVERY,
};
