//! Field-by-field validation that reports every problem at once, so a sender
//! can fix a message in one round trip.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// JSON path of the field, e.g. `owner.inn` or `documents[2].s3Key`.
    pub field: String,
    pub problem: String,
}

#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), problem: problem.into() });
    }

    /// Records a problem when `ok` is false.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, problem: impl Into<String>) {
        if !ok {
            self.add(field, problem);
        }
    }

    pub fn into_result(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// Decodes `value` into `T`; the error names the field at fault and what was wrong
/// with it, never the value itself (serde quotes it, and a tax id or a phone number
/// sent as a number would reach a log line and a kept item's reason).
pub fn decode<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        FieldError {
            field: if field == "." { "$".into() } else { field },
            problem: without_values(e.inner()),
        }
    })
}

/// A decoding error said without the value it quotes: `invalid type: integer `123`,
/// expected a string` becomes `invalid type: integer, expected a string`.
pub fn without_values(e: &serde_json::Error) -> String {
    let text = e.to_string();
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some((unexpected, expected)) =
            text.strip_prefix(prefix).and_then(|r| r.split_once(", expected "))
        {
            let kind = unexpected.split([' ', '`', '"']).next().filter(|k| !k.is_empty()).unwrap_or("value");
            return format!("{prefix}{kind}, expected {expected}");
        }
    }
    for prefix in ["unknown variant ", "unknown field "] {
        if let Some((_, expected)) = text.strip_prefix(prefix).and_then(|r| r.split_once(", expected ")) {
            return format!("{prefix}(not shown), expected {expected}");
        }
    }
    text
}

pub fn is_digits(s: &str, lengths: &[usize]) -> bool {
    lengths.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY-MM-DD` with a real month and a day that exists in it.
pub fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1900..=2200).contains(&y) && (1..=days).contains(&d)
}

/// An S3 object key we are willing to read: relative, no `..` segment, printable.
pub fn is_safe_object_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 512
        && !key.starts_with('/')
        && !key.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..")
        && key.chars().all(|c| !c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(is_iso_date("2024-02-29"));
        assert!(!is_iso_date("2023-02-29"));
        assert!(!is_iso_date("2023-13-01"));
        assert!(!is_iso_date("2023-1-01"));
        assert!(!is_iso_date("２０２３-01-01"));
    }

    #[test]
    fn object_keys() {
        assert!(is_safe_object_key("inbound/REQ-1/sts.pdf"));
        for bad in ["", "/abs", "a/../b", "a//b", "a/./b", "a\nb"] {
            assert!(!is_safe_object_key(bad), "{bad:?}");
        }
    }
}
