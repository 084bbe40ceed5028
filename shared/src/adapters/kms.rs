//! Partner tokens sealed with a KMS key before they reach the table: whoever can read the
//! table (an operator, a backup, a point-in-time export) sees ciphertext; only a role the
//! key's policy names (the functions that call MUST and BIMA) can open it.
//!
//! The ciphertext is bound to its token's name (KMS encryption context), so a sealed MUST
//! token copied into BIMA's item does not open.

use aws_sdk_kms::primitives::Blob;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::ports::{InfraError, TokenStore};

/// The encryption context's key; its value is the token's name (`must`, `bima`).
const CONTEXT_KEY: &str = "polis:token";

/// A [`TokenStore`] that keeps only sealed tokens in `inner`.
#[derive(Clone)]
pub struct SealedTokens<S> {
    inner: S,
    kms: aws_sdk_kms::Client,
    key_id: String,
}

impl<S> SealedTokens<S> {
    pub fn new(inner: S, kms: aws_sdk_kms::Client, key_id: String) -> SealedTokens<S> {
        SealedTokens { inner, kms, key_id }
    }
}

fn kms_error(err: impl std::fmt::Display) -> InfraError {
    InfraError::call("kms", err)
}

impl<S: TokenStore + Sync> TokenStore for SealedTokens<S> {
    async fn load_token(&self, name: &str) -> Result<Option<(String, u64)>, InfraError> {
        let Some((sealed, expires_at_ms)) = self.inner.load_token(name).await? else {
            return Ok(None);
        };
        // A token stored unsealed (before sealing, or by hand) is not one to trust: log in again.
        let Ok(ciphertext) = STANDARD.decode(sealed.as_bytes()) else {
            tracing::warn!(token = name, "stored token is not sealed; a new one will be requested");
            return Ok(None);
        };
        let opened = self
            .kms
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .encryption_context(CONTEXT_KEY, name)
            .send()
            .await;
        match opened {
            Ok(out) => {
                let plaintext = out.plaintext().map(|p| p.as_ref().to_vec()).unwrap_or_default();
                let token = String::from_utf8(plaintext)
                    .map_err(|_| InfraError::Corrupt(format!("sealed token {name} is not text")))?;
                Ok(Some((token, expires_at_ms)))
            }
            // Sealed with another key or for another name: as good as absent.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_invalid_ciphertext_exception()) => {
                tracing::warn!(
                    token = name,
                    "stored token does not open with this key; a new one will be requested"
                );
                Ok(None)
            }
            Err(e) => Err(kms_error(aws_sdk_kms::error::DisplayErrorContext(e))),
        }
    }

    async fn save_token(&self, name: &str, token: &str, expires_at_ms: u64) -> Result<(), InfraError> {
        let sealed = self
            .kms
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(token.as_bytes()))
            .encryption_context(CONTEXT_KEY, name)
            .send()
            .await
            .map_err(|e| kms_error(aws_sdk_kms::error::DisplayErrorContext(e)))?;
        let ciphertext = sealed
            .ciphertext_blob()
            .ok_or_else(|| InfraError::call("kms", "Encrypt returned no ciphertext"))?;
        self.inner.save_token(name, &STANDARD.encode(ciphertext.as_ref()), expires_at_ms).await
    }
}
