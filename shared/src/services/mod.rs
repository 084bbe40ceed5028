//! What each Lambda does, written against [`crate::ports`].

pub mod archive;
pub mod bank_intake;
pub mod batch;
pub mod engine;
pub mod hook_auth;
pub mod hook_intake;
pub mod loan_runner;
pub mod products;
pub mod quarantine;
pub mod retry;
pub mod truck_runner;

use thiserror::Error;

use crate::ports::{CallError, InfraError};

/// A message that could not be handled now; the queue will deliver it again.
#[derive(Debug, Error)]
pub enum RetryLater {
    #[error(transparent)]
    Infra(#[from] InfraError),
    #[error("{0}")]
    NotYet(String),
    #[error(transparent)]
    Call(#[from] CallError),
}

/// An HTTP answer, independent of the Lambda event types.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Reply {
    pub fn new(status: u16, body: serde_json::Value) -> Reply {
        Reply { status, body }
    }
}
