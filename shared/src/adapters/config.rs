//! Configuration from the environment, read once per container.

use thiserror::Error;

use super::spans::AwsCalls;

#[derive(Debug, Error)]
#[error("environment variable {0} is not set")]
pub struct MissingVar(pub &'static str);

/// A required environment variable.
pub fn var(name: &'static str) -> Result<String, MissingVar> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or(MissingVar(name))
}

#[derive(Debug, Error)]
#[error("environment variable {name} must be a whole number, not {value:?}")]
pub struct NotANumber {
    pub name: &'static str,
    pub value: String,
}

/// An optional numeric setting: `default` when unset, an error when malformed.
pub fn number(name: &'static str, default: u64) -> Result<u64, NotANumber> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(value) => value.trim().parse().map_err(|_| NotANumber { name, value }),
    }
}

#[derive(Debug, Error)]
#[error("environment variable {name} must be one of {allowed:?}, not {value:?}")]
pub struct NotAChoice {
    pub name: &'static str,
    pub allowed: &'static [&'static str],
    pub value: String,
}

/// An optional `true`/`false` setting, `false` when unset.
pub fn flag(name: &'static str) -> Result<bool, NotAChoice> {
    Ok(choice(name, &["false", "true"])? == "true")
}

/// An optional setting among `allowed` (the first when unset).
pub fn choice(name: &'static str, allowed: &'static [&'static str]) -> Result<&'static str, NotAChoice> {
    match std::env::var(name) {
        Err(_) => Ok(allowed[0]),
        Ok(value) => allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(value.trim()))
            .copied()
            .ok_or(NotAChoice { name, allowed, value }),
    }
}

/// An optional comma-separated list; empty when unset.
pub fn list(name: &'static str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The shared AWS SDK configuration (endpoint, region and credentials from the
/// environment), with one HTTP client for every AWS client a function makes: one TLS
/// set-up and one connection pool per container, not one per client (the SDK's default
/// builds its own for each). The client is the SDK's default otherwise: rustls on
/// aws-lc, proxies from the environment.
pub async fn aws() -> aws_config::SdkConfig {
    use aws_smithy_http_client::{proxy::ProxyConfig, tls, ConnectorBuilder};
    let http = aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    });
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http).load().await
}

// Every client spans each call (`spans::AwsCalls`).
// DynamoDB, SQS and SSM calls carry small JSON bodies: the stalled-stream guard (a
// timer beside every body poll, firing after 20 s without progress) is work on every
// call for a stall the function's own timeout (30 s) and the sender's retry already
// cover. S3 keeps it: a policy PDF's upload is a stream that can stall.

fn small_calls() -> aws_config::stalled_stream_protection::StalledStreamProtectionConfig {
    aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled()
}

pub fn dynamodb(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
        .stalled_stream_protection(small_calls())
        .interceptor(AwsCalls)
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

pub fn sqs(sdk: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::config::Builder::from(sdk)
        .stalled_stream_protection(small_calls())
        .interceptor(AwsCalls)
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

pub fn ssm(sdk: &aws_config::SdkConfig) -> aws_sdk_ssm::Client {
    let conf = aws_sdk_ssm::config::Builder::from(sdk)
        .stalled_stream_protection(small_calls())
        .interceptor(AwsCalls)
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}

pub fn kms(sdk: &aws_config::SdkConfig) -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::config::Builder::from(sdk)
        .stalled_stream_protection(small_calls())
        .interceptor(AwsCalls)
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

#[derive(Debug, Error)]
pub enum TableConfigError {
    #[error(transparent)]
    Missing(#[from] MissingVar),
    #[error(transparent)]
    Malformed(#[from] NotANumber),
}

/// The table (`TABLE_NAME`) with the retentions every function that writes to it keeps:
/// kept input for `KEPT_INPUT_DAYS`, an ended process for `PROCESS_RETENTION_DAYS`.
pub fn table(sdk: &aws_config::SdkConfig) -> Result<crate::adapters::dynamodb::Table, TableConfigError> {
    const DAY: u64 = 86_400;
    Ok(crate::adapters::dynamodb::Table::new(dynamodb(sdk), var("TABLE_NAME")?)
        .keeping_input_for(std::time::Duration::from_secs(number("KEPT_INPUT_DAYS", 90)? * DAY))
        .keeping_ended_processes_for(std::time::Duration::from_secs(
            number("PROCESS_RETENTION_DAYS", 1827)? * DAY,
        )))
}

/// S3 with path-style addressing when `S3_FORCE_PATH_STYLE=true` (emulators need it).
pub fn s3(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let path_style = std::env::var("S3_FORCE_PATH_STYLE").is_ok_and(|v| v == "true");
    let conf =
        aws_sdk_s3::config::Builder::from(sdk).force_path_style(path_style).interceptor(AwsCalls).build();
    aws_sdk_s3::Client::from_conf(conf)
}
