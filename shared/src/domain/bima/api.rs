//! The bodies of our calls to BIMA, and its answers read leniently (numbers
//! may come as strings, risks as names or objects).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `POST /api/v1/premium/calc` (field names exactly as the seed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalcRequest {
    pub program: String,
    #[serde(rename = "CREDIT_SUM")]
    pub credit_sum: String,
    #[serde(rename = "CREDIT_PERIODS")]
    pub credit_periods: String,
    pub birth_date: String,
}

/// `{premium, sum_insured, risks}`; amounts kept as the decimal text BIMA sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calculation {
    #[serde(deserialize_with = "amount")]
    pub premium: String,
    #[serde(deserialize_with = "amount")]
    pub sum_insured: String,
    #[serde(deserialize_with = "risk_names")]
    pub risks: Vec<String>,
}

/// The sale's answer. The seed promises only `200 OK (сохранено)`: the policy's id and
/// number are read when BIMA's answer carries them, and are `None` when it does not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleAccepted {
    #[serde(default, deserialize_with = "optional_text")]
    pub policy_id: Option<String>,
    #[serde(default, deserialize_with = "optional_text")]
    pub policy_number: Option<String>,
}

/// Where BIMA's sale answer may name the policy (field names we accept, first wins).
const POLICY_ID: &[&str] = &["policy_id", "policyId", "id"];
const POLICY_NUMBER: &[&str] = &["policy_number", "policyNumber", "number"];

impl SaleAccepted {
    /// Reads whatever a successful sale answered: an empty body, text, or JSON with or
    /// without the policy's id and number. A policy id must be usable in a key.
    pub fn from_answer(body: &[u8]) -> SaleAccepted {
        let json: Value = serde_json::from_slice(body).unwrap_or_default();
        let field = |names: &[&str]| {
            names.iter().find_map(|n| match json.get(*n) {
                Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
        };
        SaleAccepted {
            policy_id: field(POLICY_ID).filter(|id| crate::domain::ids::PolicyId::parse(id).is_ok()),
            policy_number: field(POLICY_NUMBER).filter(|n| n.chars().count() <= 64),
        }
    }
}

/// `POST /api/v1/policies/print/link`: BIMA sends the link by e-mail and/or SMS to what is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintLinkRequest {
    pub policy_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintLink {
    pub print_link: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token: String,
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) if !s.is_empty() => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("expected text or a number, got {other}"))),
    }
}

fn optional_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        other => return Err(serde::de::Error::custom(format!("expected text, got {other}"))),
    })
}

fn amount<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let raw = text(d)?;
    let ok = !raw.is_empty() && raw.parse::<f64>().is_ok_and(|v| v.is_finite() && v >= 0.0);
    if ok {
        Ok(raw)
    } else {
        Err(serde::de::Error::custom(format!("expected a non-negative amount, got {raw:?}")))
    }
}

fn risk_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items = match Value::deserialize(d)? {
        Value::Array(items) => items,
        other => return Err(serde::de::Error::custom(format!("expected a list of risks, got {other}"))),
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => Ok(s),
            Value::Object(o) => ["name", "code", "risk"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_str).map(str::to_owned))
                .ok_or_else(|| serde::de::Error::custom("a risk needs a name or code")),
            other => Err(serde::de::Error::custom(format!("unreadable risk {other}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calculation_reads_numbers_or_text_and_risk_names_or_objects() {
        let a: Calculation = serde_json::from_str(
            r#"{"premium": 3000.5, "sum_insured": "500000", "risks": ["death", {"name": "disability"}]}"#,
        )
        .unwrap();
        assert_eq!(a.premium, "3000.5");
        assert_eq!(a.sum_insured, "500000");
        assert_eq!(a.risks, ["death", "disability"]);
        assert!(
            serde_json::from_str::<Calculation>(r#"{"premium": -1, "sum_insured": 1, "risks": []}"#).is_err()
        );
        assert!(serde_json::from_str::<Calculation>(r#"{"premium": 1, "sum_insured": 1}"#).is_err());
    }

    #[test]
    fn a_sale_answer_is_read_whatever_bima_sends() {
        let s = SaleAccepted::from_answer(br#"{"policy_id": 123456}"#);
        assert_eq!((s.policy_id.as_deref(), s.policy_number), (Some("123456"), None));
        let s = SaleAccepted::from_answer(br#"{"status":"saved","policyId":"77","policyNumber":"CL-1"}"#);
        assert_eq!((s.policy_id.as_deref(), s.policy_number.as_deref()), (Some("77"), Some("CL-1")));
        for bare in [&b""[..], b"OK", b"{}", b"[1]", br#"{"policy_id":"../../x"}"#] {
            assert_eq!(SaleAccepted::from_answer(bare), SaleAccepted::default(), "{bare:?}");
        }
    }

    #[test]
    fn print_link_request_leaves_out_missing_contacts() {
        let r = PrintLinkRequest { policy_id: "1".into(), email: None, phone: Some("935550011".into()) };
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            serde_json::json!({"policy_id": "1", "phone": "935550011"})
        );
    }
}
