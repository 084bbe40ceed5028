//! Bad input never panics and never passes as good: property tests over hook
//! bodies, bank events, identifiers (path parameters) and hook credentials.
//! Each input either is accepted, or is refused with a reason naming what is wrong.

use polis::domain::bank::BankEvent;
use polis::domain::ids::{CustomerId, ProcessId, ScoringId};
use polis::domain::must::hook::{HookKind, HookPayload};
use polis::services::truck::hook_auth::{HookAuth, HookCredentials};
use polis::services::truck::hook_intake::check_body;
use proptest::prelude::*;
use serde_json::Value;

const EXAMPLES: [&str; 4] = [
    include_str!("../examples/bank/truck.policy-requested.json"),
    include_str!("../examples/bank/truck.documents-corrected.json"),
    include_str!("../examples/bank/truck.payment-order.json"),
    include_str!("../examples/bank/loan.issued.json"),
];

/// A JSON value of any shape, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,20}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the value at a random path of `doc` with `replacement`.
fn mutate(doc: &mut Value, choice: usize, replacement: Value) {
    let descend = choice % 3 != 0;
    let child = match doc {
        Value::Object(map) if descend && !map.is_empty() => {
            let len = map.len();
            map.values_mut().nth(choice % len)
        }
        Value::Array(items) if descend && !items.is_empty() => {
            let len = items.len();
            items.get_mut(choice % len)
        }
        _ => None,
    };
    match child {
        Some(child) => mutate(child, choice / 3, replacement),
        None => *doc = replacement,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_bytes_as_any_hook_are_parsed_or_refused_with_a_reason(kind in 0usize..14, body in prop::collection::vec(any::<u8>(), 0..600)) {
        let kind = HookKind::ALL[kind];
        let by_intake = check_body(kind, &body);
        let by_parser = HookPayload::parse(kind, &body);
        if let Some(reason) = by_intake {
            prop_assert!(!reason.is_empty());
        } else {
            prop_assert!(by_parser.is_ok());
        }
    }

    #[test]
    fn any_json_as_any_hook_is_parsed_or_refused_with_a_reason(kind in 0usize..14, body in any_json()) {
        let kind = HookKind::ALL[kind];
        let bytes = body.to_string().into_bytes();
        match HookPayload::parse(kind, &bytes) {
            Ok(_) => prop_assert!(check_body(kind, &bytes).is_none()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn a_bank_event_with_any_field_broken_is_accepted_or_refused_naming_fields(
        example in 0usize..4, choice in any::<usize>(), replacement in any_json()
    ) {
        let mut doc: Value = serde_json::from_str(EXAMPLES[example]).unwrap();
        mutate(&mut doc, choice, replacement);
        if let Err(problems) = BankEvent::accept(&doc.to_string()) {
            prop_assert!(!problems.is_empty());
            for p in &problems {
                prop_assert!(!p.field.is_empty() && !p.problem.is_empty(), "{p:?}");
            }
        }
    }

    #[test]
    fn any_text_as_a_bank_event_is_refused_or_accepted_without_panic(body in ".{0,300}") {
        let _ = BankEvent::accept(&body);
    }

    #[test]
    fn identifiers_never_carry_path_or_key_tricks(raw in ".{0,80}") {
        for accepted in [
            ScoringId::parse(&raw).map(|i| i.as_str().to_owned()),
            CustomerId::parse(&raw).map(|i| i.as_str().to_owned()),
            ProcessId::parse(&raw).map(|i| i.as_str().to_owned()),
        ].into_iter().flatten() {
            prop_assert!(!accepted.is_empty());
            prop_assert!(accepted.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{accepted:?}");
        }
    }

    #[test]
    fn any_hook_credentials_are_verified_without_panic(
        secret in prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
        id in prop::option::of(".{0,40}"),
        timestamp in prop::option::of(".{0,20}"),
        signature in prop::option::of(".{0,200}"),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let shared = HookAuth::from_config("shared-secret", "local-hook-secret-0123456789").unwrap();
        let signed = HookAuth::from_config("standard-webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let by_path = HookAuth::from_config("secret-path", "local-path-token-old-0123456789abcdef").unwrap();
        let c = HookCredentials {
            secret: secret.as_deref(),
            id: id.as_deref(),
            timestamp: timestamp.as_deref(),
            signature: signature.as_deref(),
            path_token: secret.as_deref(),
        };
        prop_assert!(shared.verify(&c, &body, 1_795_439_400).is_err() || secret.as_deref() == Some(b"local-hook-secret-0123456789".as_slice()));
        prop_assert!(signed.verify(&c, &body, 1_795_439_400).is_err(), "random credentials never pass");
        prop_assert!(by_path.verify(&c, &body, 1_795_439_400).is_err(), "random path tokens never pass");
    }
}

#[test]
fn path_tricks_are_refused_as_identifiers() {
    for raw in ["..", "a/b", "a%2Fb", "a b", "a#b", "ALIAS#x", "x\n", "", &"a".repeat(200)] {
        assert!(ScoringId::parse(raw).is_err(), "{raw:?}");
        assert!(CustomerId::parse(raw).is_err(), "{raw:?}");
    }
}
