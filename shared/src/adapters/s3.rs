//! S3: the bank's inbound documents and our archive of policy files.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use crate::ports::{InfraError, ObjectStore, StoredObject};

/// The object metadata key that carries a file's SHA-256 (hex).
pub const SHA256_METADATA: &str = "sha256";

#[derive(Clone)]
pub struct Buckets {
    client: Client,
}

impl Buckets {
    pub fn new(client: Client) -> Buckets {
        Buckets { client }
    }
}

fn call_error(e: impl std::error::Error + Send + Sync + 'static) -> InfraError {
    InfraError::call("s3", aws_sdk_s3::error::DisplayErrorContext(e))
}

impl ObjectStore for Buckets {
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, InfraError> {
        let out = self.client.get_object().bucket(bucket).key(key).send().await.map_err(call_error)?;
        let bytes = out.body.collect().await.map_err(call_error)?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn put_new(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        sha256: &str,
    ) -> Result<Option<StoredObject>, InfraError> {
        // A conditional write: one request when the key is free, which it is but
        // after a crash between an earlier attempt's write and its state write.
        let put = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .if_none_match("*")
            .content_type(content_type)
            .metadata(SHA256_METADATA, sha256)
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match put {
            Ok(_) => Ok(None),
            // 412: the key holds an object; 409: another write of it raced this one.
            Err(e) if e.raw_response().is_some_and(|r| matches!(r.status().as_u16(), 409 | 412)) => {
                let out =
                    self.client.head_object().bucket(bucket).key(key).send().await.map_err(call_error)?;
                Ok(Some(StoredObject {
                    size: out.content_length().unwrap_or(0).max(0) as u64,
                    sha256: out.metadata().and_then(|m| m.get(SHA256_METADATA)).cloned(),
                }))
            }
            Err(e) => Err(call_error(e)),
        }
    }
}

impl crate::ports::Presigner for Buckets {
    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        ttl: std::time::Duration,
    ) -> Result<String, InfraError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(ttl).map_err(call_error)?;
        let request =
            self.client.get_object().bucket(bucket).key(key).presigned(config).await.map_err(call_error)?;
        Ok(request.uri().to_owned())
    }
}
