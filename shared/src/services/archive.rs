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
