//! The storage format of the one table: every key, index and record kind, in one
//! place. No service builds or parses a key prefix; the adapters (DynamoDB and the
//! in-memory store) and the template's `dynamodb:LeadingKeys` (checked by a test
//! against [`LEADING_KEY_PREFIXES`]) take them from here.
//!
//! | record | pk | sk |
//! |---|---|---|
//! | truck process (state as a map, version) | `TRUCK#{processId}` | `PROCESS` |
//! | loan's credit-life process | `LOAN#{loanNumber}` | `PROCESS` |
//! | scoringId → process | `SCORING#{scoringId}` | `ALIAS` |
//! | intent of one attempt at a changing call | the process key | `EFFECT#{effect}#{attempt}` |
//! | received hook with MUST's delivery id (one per id, across every path) | `HOOK#DELIVERY#{webhookId}` | `DELIVERY` |
//! | received hook without one (by content) | `HOOK#{scoringId}` | `{kind}#{digest}` |
//! | kept for an operator | `QUARANTINE#{id}` | `QUARANTINE` |
//! | a partner's token | `TOKEN#{name}` | `TOKEN` |
//!
//! Index [`GSI1`] (`gsi1pk`, `gsi1sk`): a customer's products (`CUSTOMER#{customerId}` →
//! `TRUCK#…` / `LOAN#…`) and everything kept (`QUARANTINE` → `{receivedAtMs}#{id}`).
//!
//! Index [`OPEN_INDEX`] (`openpk`, `opensk`, keys only, sparse): processes not in a terminal
//! stage (`OPEN#truck` / `OPEN#loan` → `{stageSinceMs}#{stage}#{processKey}`), longest in
//! their stage first; a process leaves it when it ends.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::ids::{CustomerId, ProcessId, ScoringId};
use crate::domain::loan::process::LoanProcess;
use crate::domain::products::ProductSummary;
use crate::domain::truck::process::TruckProcess;
use crate::domain::workflow::Workflow;
use crate::ports::{HookRef, OpenProcess, StoredProcess};

pub const GSI1: &str = "gsi1";
pub const OPEN_INDEX: &str = "open";

const TRUCK: &str = "TRUCK#";
const LOAN: &str = "LOAN#";
const SCORING: &str = "SCORING#";
const HOOK: &str = "HOOK#";
const KEPT: &str = "QUARANTINE#";
const KEPT_INDEX: &str = "QUARANTINE";
const TOKEN: &str = "TOKEN#";
const CUSTOMER: &str = "CUSTOMER#";
const EFFECT: &str = "EFFECT#";
const DELIVERY: &str = "DELIVERY#";
const DELIVERY_SK: &str = "DELIVERY";
const OPEN: &str = "OPEN#";

/// Every partition key the functions may touch, as the template's `LeadingKeys` name them.
pub const LEADING_KEY_PREFIXES: [&str; 9] =
    [TRUCK, LOAN, SCORING, HOOK, KEPT, TOKEN, CUSTOMER, KEPT_INDEX, OPEN];

/// The sort key of a process record.
pub const PROCESS_SK: &str = "PROCESS";
pub const ALIAS_SK: &str = "ALIAS";
pub const KEPT_SK: &str = "QUARANTINE";
pub const TOKEN_SK: &str = "TOKEN";

/// The record of one process: a truck request or a loan's credit-life insurance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProcessKey {
    Truck(ProcessId),
    Loan(String),
}

impl ProcessKey {
    /// From a record key as [`fmt::Display`] writes it (`TRUCK#…`, `LOAN#…`).
    pub fn parse(text: &str) -> Result<ProcessKey, String> {
        if let Some(id) = text.strip_prefix(TRUCK) {
            return ProcessId::parse(id).map(ProcessKey::Truck).map_err(|e| e.to_string());
        }
        match text.strip_prefix(LOAN) {
            Some(number) if (1..=32).contains(&number.len()) && !number.contains('#') => {
                Ok(ProcessKey::Loan(number.to_owned()))
            }
            _ => Err(format!("{text:?} names no truck request (TRUCK#…) or loan (LOAN#…)")),
        }
    }

    /// The request id or loan number, without the prefix (for logs).
    pub fn id(&self) -> &str {
        match self {
            ProcessKey::Truck(id) => id.as_str(),
            ProcessKey::Loan(number) => number,
        }
    }
}

impl fmt::Display for ProcessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessKey::Truck(id) => write!(f, "{TRUCK}{id}"),
            ProcessKey::Loan(number) => write!(f, "{LOAN}{number}"),
        }
    }
}

impl Serialize for ProcessKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProcessKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ProcessKey, D::Error> {
        ProcessKey::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The alias that leads from MUST's scoringId to its process.
pub fn scoring_alias(scoring_id: &ScoringId) -> String {
    format!("{SCORING}{scoring_id}")
}

/// Where a received hook is stored: (pk, sk).
pub fn hook_key(hook: &HookRef) -> (String, String) {
    if hook.by_content {
        (format!("{HOOK}{}", hook.scoring_id), format!("{}#{}", hook.kind.path(), hook.hook_id))
    } else {
        // One record per delivery id whatever the path: a signature does not cover the
        // path, so a signed delivery replayed onto another scoringId or hook must find
        // its id taken. (`#` cannot occur in a scoringId, so the two forms never meet.)
        (delivery_pk(&hook.hook_id), DELIVERY_SK.to_owned())
    }
}

/// The partition key of the record of MUST's delivery id `webhook_id`.
pub fn delivery_pk(webhook_id: &str) -> String {
    format!("{HOOK}{DELIVERY}{webhook_id}")
}

/// The sort key of one attempt's intent record (its pk is the process key).
pub fn intent_sk(intent: &str) -> String {
    format!("{EFFECT}{intent}")
}

/// Where something kept for an operator is stored, and its place in the kept index.
pub fn kept_key(id: &str) -> String {
    format!("{KEPT}{id}")
}

/// The kept index's partition (one value: everything kept, oldest first).
pub const KEPT_INDEX_PK: &str = KEPT_INDEX;

pub fn kept_sort(received_at_ms: u64, id: &str) -> String {
    format!("{received_at_ms:013}#{id}")
}

/// The partners whose tokens we cache, by the name their item is kept under. Each
/// runner may read and write only its own partner's item (the template's
/// `LeadingKeys` name the full key, checked by a test).
pub const MUST_TOKEN: &str = "must";
pub const BIMA_TOKEN: &str = "bima";

pub fn token_key(name: &str) -> String {
    format!("{TOKEN}{name}")
}

/// A customer's partition in the products index.
pub fn customer_index(customer: &CustomerId) -> String {
    format!("{CUSTOMER}{customer}")
}

/// Every product line's process kind ([`StoredProcess::kind`]): one open-index partition each.
pub const PROCESS_KINDS: [&str; 2] = ["truck", "loan"];

/// The open index's partition of processes of `kind` (`truck`, `loan`).
pub fn open_partition(kind: &str) -> String {
    format!("{OPEN}{kind}")
}

/// An open process's place in the open index: since when it is in `stage`.
pub fn open_sort(since_ms: u64, stage: &str, process: &ProcessKey) -> String {
    format!("{since_ms:013}#{stage}#{process}")
}

/// The sort key of the open index that comes before every stage entered at `at_ms` or later.
pub fn open_sort_before(at_ms: u64) -> String {
    format!("{at_ms:013}#")
}

/// The process an open index entry is, in which stage and since when.
pub fn parse_open_sort(sort: &str) -> Option<OpenProcess> {
    let (since, rest) = sort.split_once('#')?;
    let (stage, process) = rest.split_once('#')?;
    Some(OpenProcess {
        process: ProcessKey::parse(process).ok()?,
        stage: stage.to_owned(),
        since_ms: since.parse().ok()?,
    })
}

/// The open index's attributes of a process not in a terminal stage (none once it ended).
/// What My products shows of a process: the one attribute the customer index projects.
fn product_summary<'a, P>(process: &'a P) -> String
where
    ProductSummary: From<&'a P>,
{
    // A summary is plain strings, numbers and lists: it always serializes.
    serde_json::to_string(&ProductSummary::from(process)).unwrap_or_default()
}

/// When a process entered its terminal stage (the history notes each stage's start).
fn ended_at<W: Workflow + StoredProcess>(process: &W) -> Option<u64> {
    if !process.is_terminal() {
        return None;
    }
    let stage = process.stage_name();
    Some(
        process
            .history()
            .stage()
            .filter(|(noted, _)| *noted == stage)
            .map_or_else(crate::ports::now_ms, |(_, at)| at),
    )
}

fn open_index<W: Workflow + StoredProcess>(process: &W) -> Vec<(&'static str, String)> {
    if process.is_terminal() {
        return Vec::new();
    }
    let stage = process.stage_name();
    let since = process.history().stage().filter(|(noted, _)| *noted == stage).map_or(0, |(_, at)| at);
    vec![("openpk", open_partition(process.kind())), ("opensk", open_sort(since, &stage, &process.key()))]
}

/// Where the next page of a customer's products starts: the last entry's index sort key
/// and record key, opaque to callers (hex) and checked when it comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub sort: String,
    pub pk: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        hex::encode(format!("{}\n{}", self.sort, self.pk))
    }

    /// A cursor this API issued, or `None`.
    pub fn decode(token: &str) -> Option<Cursor> {
        let text = String::from_utf8(hex::decode(token).ok()?).ok()?;
        let (sort, pk) = text.split_once('\n')?;
        let ours = |s: &str| ProcessKey::parse(s).is_ok();
        (ours(sort) && ours(pk)).then(|| Cursor { sort: sort.to_owned(), pk: pk.to_owned() })
    }
}

impl StoredProcess for TruckProcess {
    fn kind(&self) -> &'static str {
        "truck"
    }

    fn key(&self) -> ProcessKey {
        ProcessKey::Truck(self.id.clone())
    }

    fn aliases(&self) -> Vec<String> {
        self.scoring_id.iter().map(scoring_alias).collect()
    }

    fn index(&self) -> Vec<(&'static str, String)> {
        let mut index = vec![
            ("stage", self.stage_name()),
            ("customerId", self.request.customer_id.to_string()),
            ("gsi1pk", customer_index(&self.request.customer_id)),
            ("gsi1sk", self.key().to_string()),
            ("product", product_summary(self)),
        ];
        if let Some(sid) = &self.scoring_id {
            index.push(("scoringId", sid.to_string()));
        }
        index.extend(open_index(self));
        index
    }

    fn insurer(&self) -> String {
        self.chosen.as_ref().map_or_else(|| "none".to_owned(), ToString::to_string)
    }

    fn ended_at_ms(&self) -> Option<u64> {
        ended_at(self)
    }
}

impl StoredProcess for LoanProcess {
    fn kind(&self) -> &'static str {
        "loan"
    }

    fn key(&self) -> ProcessKey {
        ProcessKey::Loan(self.loan.loan_number.clone())
    }

    fn aliases(&self) -> Vec<String> {
        Vec::new()
    }

    fn index(&self) -> Vec<(&'static str, String)> {
        let mut index = vec![
            ("stage", self.stage_name()),
            ("customerId", self.loan.customer_id.to_string()),
            ("gsi1pk", customer_index(&self.loan.customer_id)),
            ("gsi1sk", self.key().to_string()),
            ("product", product_summary(self)),
        ];
        index.extend(open_index(self));
        index
    }

    fn insurer(&self) -> String {
        "bima".to_owned()
    }

    fn ended_at_ms(&self) -> Option<u64> {
        ended_at(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::must::hook::HookKind;

    #[test]
    fn process_keys_round_trip_and_foreign_ones_are_refused() {
        let truck = ProcessKey::Truck(ProcessId::parse("REQ-1").unwrap());
        assert_eq!(truck.to_string(), "TRUCK#REQ-1");
        assert_eq!(ProcessKey::parse("TRUCK#REQ-1"), Ok(truck.clone()));
        assert_eq!(ProcessKey::parse("LOAN#L-42"), Ok(ProcessKey::Loan("L-42".into())));
        for bad in ["QUARANTINE#x", "TRUCK#a/b", "LOAN#", "LOAN#a#b", "truck#x", ""] {
            assert!(ProcessKey::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&truck).unwrap(), "\"TRUCK#REQ-1\"");
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let c = Cursor { sort: "LOAN#L-1".into(), pk: "LOAN#L-1".into() };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in ["zz", "", &hex::encode("QUARANTINE#x\nTRUCK#y"), &hex::encode("TRUCK#a")] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    fn hook(scoring_id: &ScoringId, by_content: bool) -> HookRef {
        HookRef {
            scoring_id: scoring_id.clone(),
            kind: HookKind::Started,
            hook_id: "h".into(),
            by_content,
            received_at_ms: 0,
            replays: 0,
            requeued_at_ms: 0,
        }
    }

    #[test]
    fn a_delivery_id_has_one_record_whatever_the_path_and_a_content_id_one_per_scoring_id_and_kind() {
        let (one, other) = (ScoringId::parse("sc-1").unwrap(), ScoringId::parse("sc-2").unwrap());
        assert_eq!(hook_key(&hook(&one, false)), hook_key(&hook(&other, false)));
        assert_ne!(hook_key(&hook(&one, true)), hook_key(&hook(&other, true)));
        let approved = HookRef { kind: HookKind::Approved, ..hook(&one, true) };
        assert_ne!(hook_key(&hook(&one, true)), hook_key(&approved));
    }

    #[test]
    fn every_prefix_is_a_leading_key() {
        let sid = ScoringId::parse("sc-1").unwrap();
        let keys = [
            scoring_alias(&sid),
            hook_key(&hook(&sid, true)).0,
            hook_key(&hook(&sid, false)).0,
            kept_key("x"),
            token_key("must"),
            customer_index(&CustomerId::parse("C-1").unwrap()),
            KEPT_INDEX_PK.to_owned(),
            ProcessKey::Loan("L".into()).to_string(),
        ];
        for key in keys {
            assert!(LEADING_KEY_PREFIXES.iter().any(|p| key.starts_with(p)), "{key}");
        }
    }
}
