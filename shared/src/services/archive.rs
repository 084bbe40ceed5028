//! Files from the partners into the archive bucket, whatever their type: a PDF
//! mostly, a scan or an archive sometimes. Each is stored once under a key fixed
//! by its process and source, with its SHA-256, size and content type.

use sha2::{Digest, Sha256};

use super::engine::EffectFailure;
use crate::domain::bank::ArchivedFile;
use crate::ports::{Download, InfraError, ObjectStore, StoredObject};

/// Files larger than this are not archived (a policy PDF is tens of kilobytes): they are
/// marked pending for a person, never read whole into memory.
pub const MAX_FILE_BYTES: u64 = 20 * 1024 * 1024;

/// Give up on a file after this many failed attempts (deliveries) and mark it pending.
pub const ARCHIVE_ATTEMPTS: u32 = 5;

/// What a file is, from its first bytes, else from what the partner said; and the
/// extension its key gets. A PDF is recognised with `%PDF-` anywhere in the first
/// 1024 bytes, as readers do.
pub fn sniff(bytes: &[u8], declared: Option<&str>) -> (String, &'static str) {
    let head = &bytes[..bytes.len().min(1024)];
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    // Formats that announce themselves at the first byte win over a `%PDF-` further on
    // (a ZIP holding an uncompressed PDF has one within its first kilobyte).
    let (kind, ext) = if starts(&[0xFF, 0xD8, 0xFF]) {
        ("image/jpeg", "jpg")
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        ("image/png", "png")
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        ("image/tiff", "tif")
    } else if starts(b"PK\x03\x04") {
        ("application/zip", "zip")
    } else if head.windows(5).any(|w| w == b"%PDF-") {
        ("application/pdf", "pdf")
    } else {
        return match declared.filter(|d| is_media_type(d)) {
            Some(d) => (d.to_owned(), "bin"),
            None => ("application/octet-stream".into(), "bin"),
        };
    };
    (kind.into(), ext)
}

/// A `type/subtype` of safe characters (it goes into S3 metadata and our notices).
fn is_media_type(text: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    text.len() <= 100 && text.split_once('/').is_some_and(|(a, b)| ok(a) && ok(b))
}

/// Stores a downloaded file in S3 under `{stem}.{ext}` with its SHA-256 in the metadata,
/// once: when an earlier attempt stored it already (and died before recording it),
/// that object is the archived file.
pub async fn archive_file<O: ObjectStore + Sync>(
    objects: &O,
    bucket: &str,
    stem: &str,
    source_id: &str,
    file: Download,
) -> Result<ArchivedFile, EffectFailure> {
    let (content_type, ext) = sniff(&file.bytes, file.content_type.as_deref());
    let key = format!("{stem}.{ext}");
    let sha256 = hex::encode(Sha256::digest(&file.bytes));
    let size = file.bytes.len() as u64;
    let (size, sha256) = match objects.put_new(bucket, &key, file.bytes, &content_type, &sha256).await? {
        None => (size, sha256),
        Some(StoredObject { size, sha256: Some(stored) }) => (size, stored),
        Some(StoredObject { sha256: None, .. }) => {
            return Err(InfraError::Corrupt(format!("{key} is in the archive without its SHA-256")).into());
        }
    };
    tracing::info!(source = source_id, size, sha256 = %sha256, content_type = %content_type, "archived");
    Ok(ArchivedFile {
        blob_id: source_id.to_owned(),
        bucket: bucket.to_owned(),
        key,
        size,
        sha256,
        content_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryObjects;
    use crate::services::RetryLater;

    fn download(bytes: &[u8], declared: Option<&str>) -> Download {
        Download { bytes: bytes.to_vec(), content_type: declared.map(str::to_owned) }
    }

    fn sha256_of(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[tokio::test]
    async fn a_pdf_is_stored_once_under_its_stem_with_its_digest_size_and_type() {
        let objects = MemoryObjects::default();
        let bytes = b"%PDF-1.4 policy";
        let file = archive_file(&objects, "archive", "policies/REQ-1/b-1", "b-1", download(bytes, None))
            .await
            .unwrap();
        let expected = ArchivedFile {
            blob_id: "b-1".into(),
            bucket: "archive".into(),
            key: "policies/REQ-1/b-1.pdf".into(),
            size: bytes.len() as u64,
            sha256: sha256_of(bytes),
            content_type: "application/pdf".into(),
        };
        assert_eq!(file, expected);
        let stored = objects.object("archive", "policies/REQ-1/b-1.pdf").expect("the file is in the bucket");
        assert_eq!(stored.bytes, bytes);
        assert_eq!(
            (stored.content_type.as_str(), stored.sha256.as_str()),
            ("application/pdf", file.sha256.as_str())
        );
        assert_eq!(objects.keys("archive"), ["policies/REQ-1/b-1.pdf"]);
    }

    #[tokio::test]
    async fn a_file_the_bytes_do_not_name_keeps_the_declared_type_under_a_bin_key() {
        let objects = MemoryObjects::default();
        let file = archive_file(
            &objects,
            "archive",
            "drafts/REQ-1/b-2",
            "b-2",
            download(b"hello", Some("text/plain")),
        )
        .await
        .unwrap();
        assert_eq!((file.key.as_str(), file.content_type.as_str()), ("drafts/REQ-1/b-2.bin", "text/plain"));
        let file = archive_file(
            &objects,
            "archive",
            "drafts/REQ-1/b-3",
            "b-3",
            download(&[0xFF, 0xD8, 0xFF, 0xE0], Some("application/pdf")),
        )
        .await
        .unwrap();
        assert_eq!(
            (file.key.as_str(), file.content_type.as_str()),
            ("drafts/REQ-1/b-3.jpg", "image/jpeg"),
            "the bytes win over the label"
        );
        assert_eq!(objects.object("archive", "drafts/REQ-1/b-3.jpg").unwrap().content_type, "image/jpeg");
    }

    #[tokio::test]
    async fn a_file_an_earlier_attempt_stored_is_adopted_not_written_again() {
        let objects = MemoryObjects::default();
        let first = b"%PDF-1.4 first attempt";
        let earlier = archive_file(&objects, "archive", "policies/REQ-1/b-1", "b-1", download(first, None))
            .await
            .unwrap();
        // The attempt died before recording it; the retry downloads different bytes.
        let again =
            archive_file(&objects, "archive", "policies/REQ-1/b-1", "b-1", download(b"%PDF-1.4 retry", None))
                .await
                .unwrap();
        assert_eq!(again, earlier, "the stored object is the archived file");
        assert_eq!((again.size, again.sha256.as_str()), (first.len() as u64, sha256_of(first).as_str()));
        assert_eq!(objects.writes(), 1);
        assert_eq!(objects.object("archive", "policies/REQ-1/b-1.pdf").unwrap().bytes, first);
    }

    #[tokio::test]
    async fn an_object_in_the_way_without_its_digest_is_an_error_to_retry_not_a_file() {
        let objects = MemoryObjects::default();
        objects.put("archive", "policies/REQ-1/b-1.pdf", b"%PDF-1.4 foreign".to_vec());
        let result =
            archive_file(&objects, "archive", "policies/REQ-1/b-1", "b-1", download(b"%PDF-1.4 ours", None))
                .await;
        match result {
            Err(EffectFailure::Later(RetryLater::Infra(InfraError::Corrupt(why)))) => {
                assert!(why.contains("policies/REQ-1/b-1.pdf"), "{why}")
            }
            other => panic!("expected a corrupt-archive error, got {other:?}"),
        }
        assert_eq!(objects.object("archive", "policies/REQ-1/b-1.pdf").unwrap().bytes, b"%PDF-1.4 foreign");
    }

    #[test]
    fn files_are_recognised_by_their_bytes_first() {
        assert_eq!(sniff(b"%PDF-1.7\n...", None), ("application/pdf".into(), "pdf"));
        let mut late = vec![b' '; 700];
        late.extend_from_slice(b"%PDF-1.4");
        assert_eq!(sniff(&late, Some("application/octet-stream")).1, "pdf", "%PDF- within 1024 bytes");
        let mut too_late = vec![b' '; 1030];
        too_late.extend_from_slice(b"%PDF-1.4");
        assert_eq!(sniff(&too_late, None).1, "bin");
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10], Some("application/pdf")).0, "image/jpeg");
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n....", None).1, "png");
        assert_eq!(sniff(b"PK\x03\x04....", None).1, "zip");
        assert_eq!(sniff(b"PK\x03\x04..policy.pdf%PDF-1.4", None).1, "zip", "a ZIP holding a PDF is a ZIP");
        assert_eq!(sniff(b"hello", Some("text/plain")), ("text/plain".into(), "bin"));
        assert_eq!(sniff(b"hello", Some("text/plain\r\nX-Evil: 1")).0, "application/octet-stream");
    }
}
