//! Files MUST has for us, by the names its documents give them: a blob (`blobId`,
//! `policyBlobId` in `fleet-api.md`, `paymentInvoiceBlobId`), a download key
//! (`paymentInvoiceDownloadKey` for `GET /download?key=`, `UI-Api.md`) or a link
//! (`policyLink`, `UI-Api.md`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::ids::BlobId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "camelCase")]
pub enum MustFile {
    /// `GET /api/blob/{blobId}`.
    #[serde(rename_all = "camelCase")]
    Blob { blob_id: BlobId },
    /// `GET /download?key=`.
    DownloadKey { key: String },
    /// A link to the file; fetched only on MUST's own host (with MUST's token).
    Link { url: String },
}

impl MustFile {
    /// The file's name in our records, notices and archive keys: its blob id, or a digest
    /// of its key or link (either may open the file to anyone holding it).
    pub fn source_id(&self) -> String {
        let digest = |kind: &str, secret: &str| {
            format!("{kind}-{}", &hex::encode(Sha256::digest(secret.as_bytes()))[..16])
        };
        match self {
            MustFile::Blob { blob_id } => blob_id.to_string(),
            MustFile::DownloadKey { key } => digest("key", key),
            MustFile::Link { url } => digest("link", url),
        }
    }
}

impl From<BlobId> for MustFile {
    fn from(blob_id: BlobId) -> MustFile {
        MustFile::Blob { blob_id }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_named_by_its_id_and_a_key_or_link_never_by_itself() {
        let blob = MustFile::from(BlobId::parse("b-1").unwrap());
        assert_eq!(blob.source_id(), "b-1");
        let key = MustFile::DownloadKey { key: "secret-key".into() };
        let link = MustFile::Link { url: "https://must.example/files/secret".into() };
        for (file, prefix, secret) in [(&key, "key-", "secret-key"), (&link, "link-", "secret")] {
            let id = file.source_id();
            assert!(id.starts_with(prefix) && id.len() == prefix.len() + 16, "{id}");
            assert!(!id.contains(secret));
        }
        let json = serde_json::to_value(&blob).unwrap();
        assert_eq!(json, serde_json::json!({"by": "blob", "blobId": "b-1"}));
        assert_eq!(serde_json::from_value::<MustFile>(json).unwrap(), blob);
    }
}
