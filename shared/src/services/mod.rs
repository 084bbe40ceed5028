//! What each Lambda does, written against [`crate::ports`].

//!
//! Shared machinery: the [`engine`] every runner drives its process with, the
//! [`archive`] of partner files, [`keep`] for what a person must see, [`replay`] of
//! it, an operator's [`timeline`] of a process, SQS [`batch`]es and [`retry`]; then each product line's own services
//! ([`truck`], [`loan`]) and what faces the bank ([`bank_intake`], [`products`]).

pub mod archive;
pub mod bank_intake;
pub mod batch;
pub mod engine;
pub mod keep;
pub mod loan;
pub mod products;
pub mod replay;
pub mod retry;
#[cfg(test)]
pub(crate) mod test_support;
pub mod timeline;
pub mod truck;
pub mod watchdog;

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
