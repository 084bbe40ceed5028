//! The sale form built from typed values is the seed's JSON, field by field.

use serde_json::Value;

use crate::domain::loan::bank::LoanBankEvent;

/// Paths where two JSON values differ (`$.a.b[2]: left != right`).
fn differences(path: &str, left: &Value, right: &Value, out: &mut Vec<String>) {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) => {
            for key in l.keys().chain(r.keys().filter(|k| !l.contains_key(*k))) {
                let (a, b) = (l.get(key).unwrap_or(&Value::Null), r.get(key).unwrap_or(&Value::Null));
                differences(&format!("{path}.{key}"), a, b, out);
            }
        }
        (Value::Array(l), Value::Array(r)) if l.len() == r.len() => {
            for (i, (a, b)) in l.iter().zip(r).enumerate() {
                differences(&format!("{path}[{i}]"), a, b, out);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {a} != {b}")),
        _ => {}
    }
}

#[test]
fn the_seed_example_is_built_from_typed_values() {
    let LoanBankEvent::Issued(loan) =
        serde_json::from_str(include_str!("../../../examples/bank/loan.issued.json")).unwrap();
    let built = serde_json::to_value(loan.sale_request()).unwrap();
    let seed: Value = serde_json::from_str(include_str!("../../../examples/bima/sale.seed.json")).unwrap();
    let mut diff = Vec::new();
    differences("$", &built, &seed, &mut diff);
    assert!(diff.is_empty(), "the sale form differs from the seed:\n{}", diff.join("\n"));
    // Every number travels as a string, as in the seed.
    assert!(built.pointer("/json_forma_prodazhi/policy/app_dict/2/value").unwrap().is_string());
}

#[test]
fn the_calc_request_has_the_seed_field_names() {
    let LoanBankEvent::Issued(loan) =
        serde_json::from_str(include_str!("../../../examples/bank/loan.issued.json")).unwrap();
    assert_eq!(
        serde_json::to_value(loan.calc_request()).unwrap(),
        serde_json::json!({"program": "Программа", "CREDIT_SUM": "500000", "CREDIT_PERIODS": "12", "birth_date": "1990-01-01"})
    );
}

#[test]
fn a_loan_with_bad_fields_names_every_one() {
    let LoanBankEvent::Issued(mut loan) =
        serde_json::from_str(include_str!("../../../examples/bank/loan.issued.json")).unwrap();
    loan.borrower.tin = "12345".into();
    loan.borrower.phones[0].number = "+992935550011".into();
    loan.sum = "0".into();
    loan.start_date = "2023-02-30".into();
    let fields: Vec<String> = loan.validate().unwrap_err().into_iter().map(|p| p.field).collect();
    assert_eq!(fields, ["sum", "startDate", "borrower.tin", "borrower.phones[0].number"]);
}
