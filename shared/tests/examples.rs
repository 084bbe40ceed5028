//! Every JSON example of a bank event or notification parses, validates, and
//! serialises back to exactly the same JSON (so no field is silently dropped).

use std::fs;
use std::path::Path;

use polis::domain::bank::BankEvent;
use polis::domain::loan::process::LoanNotification;
use polis::domain::truck::bank::TruckNotification;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn each_example<T: DeserializeOwned + Serialize>(dir: &str, check: impl Fn(&str, &T)) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(dir);
    let mut count = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "json") {
            continue; // a walk-through's folder or notes
        }
        let text = fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let parsed: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), original, "{name} does not round-trip");
        let kind = original["type"].as_str().unwrap().to_owned();
        assert_eq!(format!("{kind}.json"), name, "file named after its type");
        check(&name, &parsed);
        count += 1;
    }
    count
}

/// A bank event or notification of either product, as the `type` says.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Notification {
    Truck(TruckNotification),
    Loan(LoanNotification),
}

fn bank_event(name: &str, raw: &serde_json::Value) {
    let event = BankEvent::parse(&raw.to_string()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    assert_eq!(serde_json::to_value(&event).unwrap(), *raw, "{name} round-trips");
    let checked = match event {
        BankEvent::Truck(e) => e.validate(),
        BankEvent::Loan(polis::domain::loan::bank::LoanBankEvent::Issued(loan)) => loan.validate(),
    };
    checked.unwrap_or_else(|p| panic!("{name}: {p:?}"));
}

#[test]
fn bank_event_examples_parse_and_validate() {
    assert_eq!(each_example::<serde_json::Value>("bank", bank_event), 6);
    // The bank's choice of insurer, walked through (`"choice": "bank"`, then an invoice chosen).
    assert_eq!(each_example::<serde_json::Value>("bank/choice-by-bank", bank_event), 2);
}

#[test]
fn notification_examples_parse() {
    let n = each_example::<Notification>("notifications", |name, n| {
        let prefix = if name.starts_with("bima.") { "bima." } else { "truck." };
        let matches =
            matches!((prefix, n), ("bima.", Notification::Loan(_)) | ("truck.", Notification::Truck(_)));
        assert!(matches, "{name} parsed as the other product");
    });
    assert_eq!(n, 19);
}
