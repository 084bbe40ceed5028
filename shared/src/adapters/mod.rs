//! Adapters: the ports over AWS and the insurers' HTTP APIs.

pub mod bima_http;
pub mod config;
pub mod dynamodb;
pub mod http_auth;
pub mod kms;
pub mod memory;
pub mod must_http;
pub mod s3;
pub mod secrets;
pub mod spans;
pub mod sqs;
