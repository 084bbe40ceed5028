//! API Gateway's `AWS_IAM` authorization, locally: a route so marked takes only
//! requests signed with Signature Version 4 by a principal the local stack knows
//! (the emulator's access key), within 15 minutes of now; anything else is 403,
//! as API Gateway answers. [`sign`] is the caller's side, for tests and tools.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{self, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

pub const SERVICE: &str = "execute-api";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// One principal's keys.
#[derive(Debug, Clone)]
pub struct Principal {
    pub access_key: String,
    pub secret_key: String,
}

fn signature(
    principal: &Principal,
    region: &str,
    time: SystemTime,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(Vec<(String, String)>, String), String> {
    let identity =
        Credentials::new(&principal.access_key, &principal.secret_key, None, None, "polis-local").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, signature) =
        http_request::sign(request, &params).map_err(|e| e.to_string())?.into_parts();
    let added = instructions.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    Ok((added, signature))
}

/// The headers (`authorization`, `x-amz-date`) that sign a request to `url`.
pub fn sign(
    principal: &Principal,
    region: &str,
    method: &str,
    url: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    Ok(signature(principal, region, SystemTime::now(), method, url, &[], body)?.0)
}

/// `20261123T131000Z` as a time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d, hh, mm, ss) = (n(0..4)?, n(4..6)?, n(6..8)?, n(9..11)?, n(11..13)?, n(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Checks a request's SigV4 signature; `Err` says why it is refused.
pub fn verify(
    principal: &Principal,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(), String> {
    let header =
        |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    let auth = header("authorization").ok_or("Missing Authentication Token")?;
    let fields = auth.strip_prefix(ALGORITHM).ok_or("not a SigV4 authorization")?;
    let part = |name: &str| {
        fields.split(',').map(str::trim).find_map(|f| f.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
    };
    let (credential, signed, claimed) = match (part("Credential"), part("SignedHeaders"), part("Signature")) {
        (Some(c), Some(s), Some(sig)) => (c, s, sig),
        _ => return Err("authorization lacks Credential, SignedHeaders or Signature".into()),
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, _date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err("malformed credential scope".into());
    };
    if *access_key != principal.access_key {
        return Err("The security token included in the request is invalid".into());
    }
    if *service != SERVICE {
        return Err(format!("credential scope names {service}, not {SERVICE}"));
    }
    let time = header("x-amz-date").and_then(parse_amz_date).ok_or("missing or malformed x-amz-date")?;
    let skew = SystemTime::now().duration_since(time).unwrap_or_else(|e| e.duration());
    if skew > MAX_SKEW {
        return Err("Signature expired".into());
    }
    let names: Vec<&str> = signed.split(';').collect();
    let signed_headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k != "x-amz-date" && k != "authorization" && names.contains(&k.as_str())
        })
        .cloned()
        .collect();
    let (_, expected) = signature(principal, region, time, method, url, &signed_headers, body)?;
    let same = expected.len() == claimed.len()
        && expected.bytes().zip(claimed.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if same {
        Ok(())
    } else {
        Err("The request signature we calculated does not match the signature you provided".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(secret: &str) -> Principal {
        Principal { access_key: "local".into(), secret_key: secret.into() }
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_is_refused() {
        let url = "http://127.0.0.1:3000/api/customers/C-1/products?limit=2";
        let signed = sign(&principal("s3cret"), "us-east-1", "GET", url, b"").unwrap();
        let mut headers = vec![("host".to_owned(), "127.0.0.1:3000".to_owned())];
        headers.extend(signed);
        assert_eq!(verify(&principal("s3cret"), "GET", url, &headers, b""), Ok(()));
        assert!(verify(&principal("other"), "GET", url, &headers, b"").is_err(), "wrong secret");
        let other_url = "http://127.0.0.1:3000/api/customers/C-2/products?limit=2";
        assert!(verify(&principal("s3cret"), "GET", other_url, &headers, b"").is_err(), "other path");
        assert!(verify(&principal("s3cret"), "GET", url, &headers[..1], b"").is_err(), "unsigned");
    }

    #[test]
    fn amz_dates_parse_to_the_right_second() {
        let t = parse_amz_date("20261123T131000Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 1_795_439_400);
        assert!(parse_amz_date("2026-11-23T13:10:00Z").is_none());
    }
}
