//! Secrets from SSM Parameter Store (SecureString), read once per container at
//! cold start; the template holds only the parameters' names.

use aws_sdk_ssm::Client;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("secret parameter {name} could not be read: {message}")]
    Read { name: String, message: String },
    #[error("secret parameter {0} is empty")]
    Empty(String),
}

/// The decrypted value of the SecureString parameter `name`.
pub async fn read(ssm: &Client, name: &str) -> Result<String, SecretError> {
    let out =
        ssm.get_parameter().name(name).with_decryption(true).send().await.map_err(|e| SecretError::Read {
            name: name.to_owned(),
            message: aws_sdk_ssm::error::DisplayErrorContext(e).to_string(),
        })?;
    out.parameter()
        .and_then(|p| p.value())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| SecretError::Empty(name.to_owned()))
}
