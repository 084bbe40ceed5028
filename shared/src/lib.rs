//! polis: the insurance-integration hub's library.
//!
//! - [`domain`]: processes, hooks, events and insurer payloads; pure, no AWS.
//! - [`ports`]: the small interfaces the services need from the outside world.
//! - [`adapters`]: DynamoDB, SQS, S3 and the insurers' HTTP APIs behind those ports.
//! - [`services`]: what each Lambda does, written against the ports.

pub mod adapters;
pub mod clock;
pub mod domain;
pub mod keys;
pub mod ports;
pub mod services;
pub mod telemetry;
