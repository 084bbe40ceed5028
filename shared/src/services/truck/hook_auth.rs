//! Who may call our hook endpoints, in the way MUST can offer it, chosen by
//! configuration (`HOOK_AUTH_MODE`):
//! - `shared-secret`: a static secret in the `x-hook-secret` header;
//! - `standard-webhooks`: an HMAC-SHA256 signature over `{id}.{timestamp}.{body}`
//!   (the Standard Webhooks scheme: `webhook-id`, `webhook-timestamp`,
//!   `webhook-signature` holding space-separated `v1,<base64>` signatures), with
//!   several secrets accepted at once so they can be rotated, and a timestamp
//!   within ±5 minutes of ours;
//! - `secret-path`: for a partner that can send neither, a secret token as a path
//!   segment of the hook base URL given to it (`…/h/{token}/api/hooks/…`), two tokens
//!   accepted at once while rotating.
//!
//! Independently of the mode, the calls may be limited to source networks (an
//! allow-list of CIDRs, e.g. MUST's egress addresses).
//!
//! Every comparison is constant-time. The secret (or secrets, separated by
//! whitespace) comes from one SSM SecureString.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The header of the `shared-secret` mode.
pub const SECRET_HEADER: &str = "x-hook-secret";
/// Standard Webhooks' headers (the id is also our hook id in either mode).
pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// How far a signed hook's timestamp may be from our clock, either way.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The most `v1,` signatures one request may carry: a sender signing with each of its
/// secrets during a rotation needs two. More is refused unread, so a forger cannot
/// make us compare thousands.
pub const MAX_SIGNATURES: usize = 4;

/// The authentication headers of one request, as sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct HookCredentials<'a> {
    pub secret: Option<&'a [u8]>,
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    /// The `{hookToken}` segment of the path the call came by, if it came by that route.
    pub path_token: Option<&'a [u8]>,
}

pub enum HookAuth {
    /// One secret, or two while rotating.
    SharedSecret(Vec<Vec<u8>>),
    StandardWebhooks(Vec<Vec<u8>>),
    SecretPath(Vec<Vec<u8>>),
}

impl std::fmt::Debug for HookAuth {
    // Never prints a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookAuth::SharedSecret(secrets) => write!(f, "SharedSecret({} secrets)", secrets.len()),
            HookAuth::StandardWebhooks(keys) => write!(f, "StandardWebhooks({} keys)", keys.len()),
            HookAuth::SecretPath(tokens) => write!(f, "SecretPath({} tokens)", tokens.len()),
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthConfigError {
    #[error("HOOK_AUTH_MODE must be shared-secret, standard-webhooks or secret-path, not {0:?}")]
    UnknownMode(String),
    #[error("the hook secret is empty")]
    Empty,
    #[error("shared hook secret {0} needs at least 16 bytes")]
    TooShort(usize),
    #[error("signing secret {0} is not whsec_ followed by base64")]
    BadSigningSecret(usize),
    #[error("path token {0} must be 32 to 128 characters of A-Z, a-z, 0-9, '-' or '_'")]
    BadPathToken(usize),
}

/// Why a hook was refused (said in our log, never in detail to the caller).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("header {0} missing")]
    Missing(&'static str),
    #[error("header {0} malformed")]
    Malformed(&'static str),
    #[error("more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    #[error("timestamp {0} s outside the tolerance")]
    OutsideTolerance(i64),
    #[error("no signature or secret matches")]
    Mismatch,
}

/// Constant-time equality of secrets of any lengths (compared as digests).
pub fn secrets_match(expected: &[u8], given: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(expected), Sha256::digest(given));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `given` is one of `secrets`; every one is compared, so the time taken does not
/// tell which matched.
fn any_matches(secrets: &[Vec<u8>], given: &[u8]) -> bool {
    secrets.iter().fold(false, |any, s| any | secrets_match(s, given))
}

/// The hook authentication in force, shared by every request of a container and swapped
/// whole when the secret parameter is re-read: a rotation reaches running functions
/// without a redeploy.
#[derive(Clone)]
pub struct HookKeys(Arc<RwLock<Arc<HookAuth>>>);

impl From<HookAuth> for HookKeys {
    fn from(auth: HookAuth) -> HookKeys {
        HookKeys(Arc::new(RwLock::new(Arc::new(auth))))
    }
}

impl HookKeys {
    pub fn current(&self) -> Arc<HookAuth> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, auth: HookAuth) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(auth);
    }
}

fn signing_key(text: &str) -> Option<Vec<u8>> {
    let encoded = text.strip_prefix("whsec_").unwrap_or(text);
    base64::engine::general_purpose::STANDARD.decode(encoded).ok().filter(|k| !k.is_empty())
}

fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` value for a hook (the sender's side: simulators, tools).
pub fn sign(signing_secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = signing_key(signing_secret)?;
    let tag = mac(&key, id, &timestamp.to_string(), body).finalize().into_bytes();
    Some(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(tag)))
}

impl HookAuth {
    /// From the mode and the secret parameter's value (several secrets separated by whitespace).
    pub fn from_config(mode: &str, secret: &str) -> Result<HookAuth, AuthConfigError> {
        let secrets: Vec<&str> = secret.split_whitespace().collect();
        if secrets.is_empty() {
            return Err(AuthConfigError::Empty);
        }
        match mode {
            // Two secrets separated by whitespace are two secrets: the old and the new one,
            // both accepted while MUST moves to the new one.
            "shared-secret" => secrets
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    (s.len() >= 16).then(|| s.as_bytes().to_vec()).ok_or(AuthConfigError::TooShort(i + 1))
                })
                .collect::<Result<_, _>>()
                .map(HookAuth::SharedSecret),
            "standard-webhooks" => secrets
                .iter()
                .enumerate()
                .map(|(i, s)| signing_key(s).ok_or(AuthConfigError::BadSigningSecret(i + 1)))
                .collect::<Result<_, _>>()
                .map(HookAuth::StandardWebhooks),
            "secret-path" => secrets
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let usable = (32..=128).contains(&t.len())
                        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    usable.then(|| t.as_bytes().to_vec()).ok_or(AuthConfigError::BadPathToken(i + 1))
                })
                .collect::<Result<_, _>>()
                .map(HookAuth::SecretPath),
            other => Err(AuthConfigError::UnknownMode(other.to_owned())),
        }
    }

    /// Whether each hook is signed over its `webhook-id` (which is then its replay protection).
    pub fn is_signed(&self) -> bool {
        matches!(self, HookAuth::StandardWebhooks(_))
    }

    /// Checks a request at `now_s` (seconds since the epoch).
    pub fn verify(&self, c: &HookCredentials<'_>, body: &[u8], now_s: i64) -> Result<(), AuthError> {
        match self {
            HookAuth::SharedSecret(secrets) => {
                let given = c.secret.ok_or(AuthError::Missing(SECRET_HEADER))?;
                any_matches(secrets, given).then_some(()).ok_or(AuthError::Mismatch)
            }
            HookAuth::SecretPath(tokens) => {
                let given = c.path_token.ok_or(AuthError::Missing("the path's token"))?;
                any_matches(tokens, given).then_some(()).ok_or(AuthError::Mismatch)
            }
            HookAuth::StandardWebhooks(keys) => {
                let id = c.id.filter(|i| !i.is_empty()).ok_or(AuthError::Missing(ID_HEADER))?;
                let timestamp = c.timestamp.ok_or(AuthError::Missing(TIMESTAMP_HEADER))?;
                let header = c.signature.ok_or(AuthError::Missing(SIGNATURE_HEADER))?;
                let sent: i64 = timestamp
                    .parse()
                    .ok()
                    .filter(|_| timestamp.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or(AuthError::Malformed(TIMESTAMP_HEADER))?;
                let skew = sent.saturating_sub(now_s);
                if skew.unsigned_abs() > TOLERANCE.as_secs() {
                    return Err(AuthError::OutsideTolerance(skew));
                }
                if header.split_whitespace().nth(MAX_SIGNATURES).is_some() {
                    return Err(AuthError::TooManySignatures);
                }
                let signatures: Vec<Vec<u8>> = header
                    .split_whitespace()
                    .filter_map(|s| s.strip_prefix("v1,"))
                    .filter_map(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                    .collect();
                if signatures.is_empty() {
                    return Err(AuthError::Malformed(SIGNATURE_HEADER));
                }
                // The body is hashed once per secret; every (secret, signature) pair is then
                // compared in constant time, so the time taken does not tell which matched.
                let mut matched = false;
                for key in keys {
                    let expected = mac(key, id, timestamp, body);
                    for signature in &signatures {
                        matched |= expected.clone().verify_slice(signature).is_ok();
                    }
                }
                matched.then_some(()).ok_or(AuthError::Mismatch)
            }
        }
    }
}

/// An IPv4 or IPv6 network (`203.0.113.0/24`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0:?} is not an IP network (a.b.c.d/n or an IPv6 prefix)")]
pub struct NotANetwork(pub String);

impl FromStr for Network {
    type Err = NotANetwork;

    fn from_str(text: &str) -> Result<Network, NotANetwork> {
        let bad = || NotANetwork(text.to_owned());
        let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() { max } else { prefix.trim().parse().map_err(|_| bad())? };
        (prefix <= max).then_some(Network { addr, prefix }).ok_or_else(bad)
    }
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const NOW: i64 = 1_795_439_400;
    /// A local stand-in signing secret, shared with the intake's tests.
    pub(crate) const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NEW: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const BODY: &[u8] = br#"{"insuranceCompany":"ingostrah","writtenPremium":17847.29}"#;

    fn signed(auth: &HookAuth, signature: &str, timestamp: i64, body: &[u8]) -> Result<(), AuthError> {
        let ts = timestamp.to_string();
        let c = HookCredentials {
            id: Some("msg_1"),
            timestamp: Some(&ts),
            signature: Some(signature),
            ..Default::default()
        };
        auth.verify(&c, body, NOW)
    }

    fn webhooks(secrets: &str) -> HookAuth {
        HookAuth::from_config("standard-webhooks", secrets).unwrap()
    }

    #[test]
    fn a_shared_secret_must_be_present_and_equal() {
        let auth = HookAuth::from_config("shared-secret", "local-hook-secret-0123456789").unwrap();
        let with = |s: Option<&'static [u8]>| {
            auth.verify(&HookCredentials { secret: s, ..Default::default() }, b"{}", NOW)
        };
        assert_eq!(with(Some(b"local-hook-secret-0123456789")), Ok(()));
        assert_eq!(with(None), Err(AuthError::Missing(SECRET_HEADER)));
        assert_eq!(with(Some(b"local-hook-secret-012345678")), Err(AuthError::Mismatch));
        assert_eq!(with(Some(b"")), Err(AuthError::Mismatch));
    }

    #[test]
    fn two_shared_secrets_are_two_secrets_each_accepted_while_rotating_and_the_pair_joined_is_not() {
        let (old, new) = ("local-hook-secret-old-0123456789", "local-hook-secret-new-0123456789");
        let during = HookAuth::from_config("shared-secret", &format!("{old}\n{new}")).unwrap();
        let with = |auth: &HookAuth, s: &str| {
            auth.verify(&HookCredentials { secret: Some(s.as_bytes()), ..Default::default() }, b"{}", NOW)
        };
        assert_eq!(with(&during, old), Ok(()));
        assert_eq!(with(&during, new), Ok(()));
        assert_eq!(
            with(&during, &format!("{old}\n{new}")),
            Err(AuthError::Mismatch),
            "not one joined secret"
        );
        let keys = HookKeys::from(during);
        keys.replace(HookAuth::from_config("shared-secret", new).unwrap());
        assert_eq!(with(&keys.current(), old), Err(AuthError::Mismatch), "the old one is gone once replaced");
        assert_eq!(with(&keys.current(), new), Ok(()));
    }

    #[test]
    fn configuration_is_checked_before_any_hook_arrives() {
        assert_eq!(
            HookAuth::from_config("shared-secret", "short").unwrap_err(),
            AuthConfigError::TooShort(1)
        );
        assert_eq!(
            HookAuth::from_config("shared-secret", "local-hook-secret-0123456789 short").unwrap_err(),
            AuthConfigError::TooShort(2)
        );
        assert_eq!(
            HookAuth::from_config("hmac", OLD).unwrap_err(),
            AuthConfigError::UnknownMode("hmac".into())
        );
        assert_eq!(HookAuth::from_config("standard-webhooks", " ").unwrap_err(), AuthConfigError::Empty);
        assert_eq!(
            HookAuth::from_config("standard-webhooks", &format!("{OLD} whsec_%%%")).unwrap_err(),
            AuthConfigError::BadSigningSecret(2)
        );
        assert!(!format!("{:?}", webhooks(OLD)).contains("MfKQ"), "Debug never shows a key");
    }

    #[test]
    fn a_valid_signature_is_accepted_and_a_one_byte_change_of_the_body_is_not() {
        let auth = webhooks(OLD);
        let sig = sign(OLD, "msg_1", NOW, BODY).unwrap();
        assert_eq!(signed(&auth, &sig, NOW, BODY), Ok(()));
        let mut changed = BODY.to_vec();
        changed[10] ^= 1;
        assert_eq!(signed(&auth, &sig, NOW, &changed), Err(AuthError::Mismatch));
        let other_id = HookCredentials {
            id: Some("msg_2"),
            timestamp: Some(&NOW.to_string()),
            signature: Some(&sig),
            ..Default::default()
        };
        assert_eq!(auth.verify(&other_id, BODY, NOW), Err(AuthError::Mismatch), "the id is signed too");
    }

    #[test]
    fn one_valid_signature_among_several_is_enough() {
        let auth = webhooks(OLD);
        let good = sign(OLD, "msg_1", NOW, BODY).unwrap();
        let wrong = sign(NEW, "msg_1", NOW, BODY).unwrap();
        assert_eq!(signed(&auth, &format!("{wrong} v1,AAAA {good}"), NOW, BODY), Ok(()));
        assert_eq!(signed(&auth, &format!("{wrong} v1,AAAA"), NOW, BODY), Err(AuthError::Mismatch));
        assert_eq!(
            signed(&auth, &format!("v2,{}", &good[3..]), NOW, BODY),
            Err(AuthError::Malformed(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn more_than_a_handful_of_signatures_is_refused_unread_even_with_a_valid_one() {
        let auth = webhooks(OLD);
        let good = sign(OLD, "msg_1", NOW, BODY).unwrap();
        let padded = |forged: usize| format!("{}{good}", "v1,AAAA ".repeat(forged));
        assert_eq!(signed(&auth, &padded(MAX_SIGNATURES - 1), NOW, BODY), Ok(()));
        assert_eq!(signed(&auth, &padded(MAX_SIGNATURES), NOW, BODY), Err(AuthError::TooManySignatures));
        assert_eq!(signed(&auth, &padded(1000), NOW, BODY), Err(AuthError::TooManySignatures));
    }

    #[test]
    fn a_path_token_must_be_one_of_the_configured_ones() {
        let (old, new) = ("a".repeat(40), "b".repeat(40));
        let auth = HookAuth::from_config("secret-path", &format!("{old} {new}")).unwrap();
        let with = |t: Option<&str>| {
            auth.verify(
                &HookCredentials { path_token: t.map(str::as_bytes), ..Default::default() },
                BODY,
                NOW,
            )
        };
        assert_eq!(with(Some(&old)), Ok(()));
        assert_eq!(with(Some(&new)), Ok(()), "two tokens while rotating");
        assert_eq!(with(Some(&"a".repeat(39))), Err(AuthError::Mismatch));
        assert_eq!(with(None), Err(AuthError::Missing("the path's token")));
        let shared = HookCredentials { secret: Some(old.as_bytes()), ..Default::default() };
        assert_eq!(
            auth.verify(&shared, BODY, NOW),
            Err(AuthError::Missing("the path's token")),
            "not a header"
        );
        for bad in ["short", &format!("{}/x", "a".repeat(40)), &"c".repeat(129)] {
            assert_eq!(
                HookAuth::from_config("secret-path", bad).unwrap_err(),
                AuthConfigError::BadPathToken(1)
            );
        }
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let net = |s: &str| s.parse::<Network>().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(net("203.0.113.0/24").contains(ip("203.0.113.255")));
        assert!(!net("203.0.113.0/24").contains(ip("203.0.112.255")));
        assert!(
            net("203.0.113.7").contains(ip("203.0.113.7")) && !net("203.0.113.7").contains(ip("203.0.113.8"))
        );
        assert!(net("0.0.0.0/0").contains(ip("198.51.100.1")));
        assert!(net("203.0.113.0/24").contains(ip("::ffff:203.0.113.1")), "an IPv4-mapped address is IPv4");
        assert!(net("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!net("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(!net("2001:db8::/32").contains(ip("203.0.113.1")));
        for bad in ["203.0.113.0/33", "x/8", "2001:db8::/129", ""] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rotated_secret_is_accepted_beside_the_old_one_and_alone_after() {
        let during = webhooks(&format!("{OLD} {NEW}"));
        let after = webhooks(NEW);
        let by_old = sign(OLD, "msg_1", NOW, BODY).unwrap();
        let by_new = sign(NEW, "msg_1", NOW, BODY).unwrap();
        assert_eq!(signed(&during, &by_old, NOW, BODY), Ok(()));
        assert_eq!(signed(&during, &by_new, NOW, BODY), Ok(()));
        assert_eq!(signed(&after, &by_new, NOW, BODY), Ok(()));
        assert_eq!(signed(&after, &by_old, NOW, BODY), Err(AuthError::Mismatch));
    }

    #[test]
    fn the_timestamp_must_be_within_five_minutes_either_way() {
        let auth = webhooks(OLD);
        for (offset, ok) in [(-300, true), (300, true), (-301, false), (301, false)] {
            let ts = NOW + offset;
            let sig = sign(OLD, "msg_1", ts, BODY).unwrap();
            assert_eq!(signed(&auth, &sig, ts, BODY).is_ok(), ok, "offset {offset}");
        }
        let sig = sign(OLD, "msg_1", NOW, BODY).unwrap();
        let c = HookCredentials {
            id: Some("msg_1"),
            timestamp: Some("1795439400.0"),
            signature: Some(&sig),
            ..Default::default()
        };
        assert_eq!(auth.verify(&c, BODY, NOW), Err(AuthError::Malformed(TIMESTAMP_HEADER)));
    }

    #[test]
    fn each_missing_header_is_named() {
        let auth = webhooks(OLD);
        let sig = sign(OLD, "msg_1", NOW, BODY).unwrap();
        let ts = NOW.to_string();
        let full = HookCredentials {
            id: Some("msg_1"),
            timestamp: Some(&ts),
            signature: Some(&sig),
            secret: None,
            path_token: None,
        };
        assert_eq!(
            auth.verify(&HookCredentials { id: None, ..full }, BODY, NOW),
            Err(AuthError::Missing(ID_HEADER))
        );
        assert_eq!(
            auth.verify(&HookCredentials { timestamp: None, ..full }, BODY, NOW),
            Err(AuthError::Missing(TIMESTAMP_HEADER))
        );
        assert_eq!(
            auth.verify(&HookCredentials { signature: None, ..full }, BODY, NOW),
            Err(AuthError::Missing(SIGNATURE_HEADER))
        );
    }
}
