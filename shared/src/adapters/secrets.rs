//! Secrets from SSM Parameter Store (SecureString): read at cold start, and those that
//! rotate re-read after a short time; the template holds only the parameters' names.

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

/// A secret that rotates: re-read once `ttl` has passed since the last read, so a new value
/// reaches running containers without a redeploy. A failed re-read keeps the value in force
/// (and is tried again at the next request after the next `ttl`).
pub struct RotatingSecret {
    ssm: Client,
    name: String,
    ttl: std::time::Duration,
    next_read: std::sync::Mutex<std::time::Instant>,
}

impl RotatingSecret {
    /// For a secret just read (its next read after `ttl`).
    pub fn new(ssm: Client, name: String, ttl: std::time::Duration) -> RotatingSecret {
        let next_read = std::sync::Mutex::new(std::time::Instant::now() + ttl);
        RotatingSecret { ssm, name, ttl, next_read }
    }

    /// The secret's value when it is due to be read again (read now), else `None`.
    pub async fn due(&self) -> Option<String> {
        {
            let mut next = self.next_read.lock().unwrap_or_else(|e| e.into_inner());
            let now = std::time::Instant::now();
            if now < *next {
                return None;
            }
            // One request re-reads; the others go on with the value in force.
            *next = now + self.ttl;
        }
        match read(&self.ssm, &self.name).await {
            Ok(value) => Some(value),
            Err(e) => {
                tracing::warn!(error = %e, "secret not re-read; the one in force stays");
                None
            }
        }
    }
}
