//! Every JSON example of a bank event or notification parses, validates, and
//! serialises back to exactly the same JSON (so no field is silently dropped).

use std::fs;
use std::path::Path;

use polis::domain::bank::truck::{TruckBankEvent, TruckNotification};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn each_example<T: DeserializeOwned + Serialize>(dir: &str, check: impl Fn(&str, &T)) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(dir);
    let mut count = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
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

#[test]
fn bank_event_examples_parse_and_validate() {
    let n = each_example::<TruckBankEvent>("bank", |name, e| {
        e.validate().unwrap_or_else(|p| panic!("{name}: {p:?}"));
    });
    assert_eq!(n, 3);
}

#[test]
fn notification_examples_parse() {
    let n = each_example::<TruckNotification>("notifications", |_, _| {});
    assert_eq!(n, 9);
}
