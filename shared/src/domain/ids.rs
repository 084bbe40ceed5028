//! Identifiers that end up inside DynamoDB keys, S3 keys and URLs.
//!
//! Each is validated once, at the edge, so nothing downstream has to worry
//! about `/`, `..`, `#` or whitespace reaching a key or a path.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why an identifier was refused; the message is safe to return to a caller.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{what} must be 1 to {max} characters of A-Z, a-z, 0-9, '-' or '_' (got {len} characters{detail})")]
pub struct InvalidId {
    pub what: &'static str,
    pub max: usize,
    pub len: usize,
    pub detail: &'static str,
}

fn validate(what: &'static str, max: usize, raw: &str) -> Result<(), InvalidId> {
    let refuse = |detail| InvalidId { what, max, len: raw.chars().count(), detail };
    if raw.is_empty() || raw.len() > max {
        return Err(refuse(""));
    }
    if raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(())
    } else {
        Err(refuse(", with a character outside that set"))
    }
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, InvalidId> {
                validate($what, $max, raw).map(|()| Self(raw.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(raw: String) -> Result<Self, InvalidId> {
                validate($what, $max, &raw).map(|()| Self(raw))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

identifier!(
    /// Our id of one truck-eOSAGO process: the bank's request id.
    ProcessId, "processId", 64
);
identifier!(
    /// MUST's id of a scoring process (`{scoringId}` in every hook path).
    ScoringId, "scoringId", 64
);
identifier!(
    /// MUST's id of an uploaded or issued file (`GET /api/blob/{blobId}`).
    BlobId, "blobId", 128
);
identifier!(
    /// The bank's id of a customer.
    CustomerId, "customerId", 64
);
identifier!(
    /// BIMA's id of a policy (it becomes part of an S3 key).
    PolicyId, "policy_id", 64
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuid_like_ids() {
        let id = ScoringId::parse("3fa85f64-5717-4562-b3fc-2c963f66afa6").unwrap();
        assert_eq!(id.as_str(), "3fa85f64-5717-4562-b3fc-2c963f66afa6");
    }

    #[test]
    fn refuses_path_tricks_and_key_separators() {
        for bad in ["", "../etc", "a/b", "a#b", "a b", "a%2F", "ü", &"x".repeat(65)] {
            let err = ScoringId::parse(bad).unwrap_err();
            assert_eq!(err.what, "scoringId", "{bad:?}");
        }
    }

    #[test]
    fn deserialisation_validates_too() {
        let ok: ProcessId = serde_json::from_str("\"REQ-1\"").unwrap();
        assert_eq!(ok.as_str(), "REQ-1");
        assert!(serde_json::from_str::<ProcessId>("\"a/b\"").is_err());
    }
}
