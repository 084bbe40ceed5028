//! Files MUST has for us, by the names its documents give them: a blob (`blobId`,
//! `policyBlobId` in `fleet-api.md`, `paymentInvoiceBlobId`), a download key
//! (`paymentInvoiceDownloadKey` for `GET /download?key=`, `UI-Api.md`) or a link
//! (`policyLink`, `UI-Api.md`).

use serde::{Deserialize, Deserializer, Serialize};
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

/// Reads a list of files in today's form or as versions before it stored them: bare blob ids
/// (`blob_ids`), so processes and kept events written by those stay readable.
pub fn files_or_blob_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<MustFile>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Id(BlobId),
        File(MustFile),
    }
    let stored = Vec::<Stored>::deserialize(d)?;
    Ok(stored
        .into_iter()
        .map(|s| match s {
            Stored::Id(blob_id) => MustFile::Blob { blob_id },
            Stored::File(file) => file,
        })
        .collect())
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

    #[test]
    fn files_stored_as_bare_blob_ids_read_back_as_blobs() {
        #[derive(Deserialize)]
        struct Stored {
            #[serde(alias = "blob_ids", deserialize_with = "files_or_blob_ids")]
            files: Vec<MustFile>,
        }
        let old: Stored = serde_json::from_str(r#"{"blob_ids": ["b-1"]}"#).unwrap();
        let new: Stored = serde_json::from_str(
            r#"{"files": [{"by": "blob", "blobId": "b-1"}, {"by": "link", "url": "u"}]}"#,
        )
        .unwrap();
        assert_eq!(old.files, [MustFile::from(BlobId::parse("b-1").unwrap())]);
        assert_eq!(new.files[..1], old.files[..]);
        assert!(serde_json::from_str::<Stored>(r#"{"files": [""]}"#).is_err(), "an id is still checked");
    }
}
