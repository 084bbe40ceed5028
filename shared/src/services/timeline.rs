//! What an operator asks about processes: "where is request X, and since when?"
//! (`polis-ops timeline`) and "which ones stopped moving?" (`polis-ops stuck`).
//!
//! Read only from what the functions record: a process's history (stages entered,
//! events applied, notices sent), its journal of calls to the partner (time, attempt,
//! duration, outcome), its hold, and what is kept for a person about it.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::domain::ids::{ProcessId, ScoringId};
use crate::domain::loan::process::LoanProcess;
use crate::domain::truck::process::TruckProcess;
use crate::domain::workflow::{CallOutcome, What, Workflow};
use crate::keys::{self, ProcessKey};
use crate::ports::{
    InfraError, KeptOrigin, OpenProcess, OpenProcesses, ProcessStore, Quarantined, StoredProcess,
};

/// One process's story, oldest first, and where it stands now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    pub process: ProcessKey,
    pub stage: String,
    /// When it entered `stage` (0: before stages were recorded).
    pub stage_since_ms: u64,
    pub terminal: bool,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub at_ms: u64,
    #[serde(flatten)]
    pub line: Line,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Line {
    /// A stage entered, an event applied, a notice sent (the process's history).
    Happened(What),
    Other(Recorded),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "what", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum Recorded {
    /// One attempt at a call to the partner (or at archiving its files).
    Call { effect: String, attempt: u32, duration_ms: u64, outcome: String, detail: Option<String> },
    /// Kept for a person: input we could not process, a call held for review, files not archived.
    Kept { id: String, source: String, reason: String },
}

impl Timeline {
    /// The timeline of `process`, with the `kept` items that concern it.
    pub fn of<W: Workflow + StoredProcess>(process: &W, kept: &[Quarantined]) -> Timeline {
        let mut entries: Vec<Entry> = process
            .history()
            .entries()
            .iter()
            .map(|h| Entry { at_ms: h.at_ms, line: Line::Happened(h.what.clone()) })
            .collect();
        for call in process.outbox().calls() {
            let (outcome, detail) = describe(&call.outcome);
            let line = Recorded::Call {
                effect: call.effect.clone(),
                attempt: call.attempt,
                duration_ms: call.duration_ms,
                outcome: outcome.to_owned(),
                detail,
            };
            entries.push(Entry { at_ms: call.at_ms, line: Line::Other(line) });
        }
        let (key, aliases) = (process.key(), process.aliases());
        for item in kept.iter().filter(|item| concerns(item, &key, &aliases)) {
            let line = Recorded::Kept {
                id: item.id.clone(),
                source: item.origin.source().to_owned(),
                reason: item.reason.clone(),
            };
            entries.push(Entry { at_ms: item.received_at_ms, line: Line::Other(line) });
        }
        // Stable: what happened at the same millisecond stays in the order it was recorded.
        entries.sort_by_key(|e| e.at_ms);
        let stage = process.stage_name();
        let stage_since_ms =
            process.history().stage().filter(|(noted, _)| *noted == stage).map_or(0, |(_, at)| at);
        Timeline { process: key, stage, stage_since_ms, terminal: process.is_terminal(), entries }
    }

    /// For a terminal: a header (where it stands, for how long), then one line per entry.
    pub fn render(&self, now_ms: u64) -> String {
        let mut out = format!("{}  {}", self.process, self.stage);
        if self.stage_since_ms > 0 {
            let _ = write!(out, " since {}", utc(self.stage_since_ms));
            if !self.terminal {
                let _ = write!(out, " ({})", span(now_ms.saturating_sub(self.stage_since_ms)));
            }
        }
        out.push('\n');
        for entry in &self.entries {
            let _ = writeln!(out, "{}  {}", utc(entry.at_ms), line(&entry.line));
        }
        out
    }
}

fn line(line: &Line) -> String {
    match line {
        Line::Happened(What::Stage { stage }) => format!("{:<9} {stage}", "stage"),
        Line::Happened(What::Event { from, kind, id, .. }) => format!("{from:<9} {kind}  id {id}"),
        Line::Happened(What::Notice { kind, event_id }) => {
            format!("{:<9} {kind}  eventId {event_id}", "notice")
        }
        Line::Happened(What::Operator { by, action, item, detail }) => {
            format!("{:<9} {by}: {action} {item}  {detail}", "operator")
        }
        Line::Other(Recorded::Call { effect, attempt, duration_ms, outcome, detail }) => {
            let mut text = format!("{:<9} {effect} #{attempt}  {outcome} in {duration_ms} ms", "call");
            if let Some(detail) = detail {
                let _ = write!(text, ": {detail}");
            }
            text
        }
        Line::Other(Recorded::Kept { id, source, reason }) => {
            format!("{:<9} {source} {id}: {reason}", "kept")
        }
    }
}

fn describe(outcome: &CallOutcome) -> (&'static str, Option<String>) {
    match outcome {
        CallOutcome::Done => ("done", None),
        CallOutcome::NotSent { detail } => ("not-sent", Some(detail.clone())),
        CallOutcome::Ambiguous { detail } => ("ambiguous", Some(detail.clone())),
        CallOutcome::Refused { detail } => ("refused", Some(detail.clone())),
        CallOutcome::Failed { detail } => ("failed", Some(detail.clone())),
        CallOutcome::Resolved { happened, by } => {
            ("resolved", Some(format!("{} (by {by})", if *happened { "happened" } else { "did not happen" })))
        }
    }
}

/// Whether a kept item is about the process `key` (or about its scoringId's hooks).
fn concerns(item: &Quarantined, key: &ProcessKey, aliases: &[String]) -> bool {
    match &item.origin {
        KeptOrigin::Hook { scoring_id, .. } => aliases.contains(&keys::scoring_alias(scoring_id)),
        KeptOrigin::Event { process, .. }
        | KeptOrigin::Review { process, .. }
        | KeptOrigin::ArchivePending { process, .. } => process == key,
        // A refused bank event or an unrouted hook names no usable process: on the kept list only.
        KeptOrigin::BankEvent { .. } | KeptOrigin::UnroutedHook { .. } => false,
    }
}

/// The process an operator's id names: `TRUCK#…`/`LOAN#…`, a request id, MUST's
/// scoringId, or a loan number (tried in that order).
pub async fn find<S: ProcessStore + Sync>(store: &S, id: &str) -> Result<Option<ProcessKey>, InfraError> {
    if let Ok(key) = ProcessKey::parse(id) {
        return Ok(Some(key));
    }
    if let Ok(request) = ProcessId::parse(id) {
        let key = ProcessKey::Truck(request);
        if store.load::<TruckProcess>(&key).await?.is_some() {
            return Ok(Some(key));
        }
    }
    if let Ok(scoring) = ScoringId::parse(id) {
        if let Some(key) = store.resolve_alias(&keys::scoring_alias(&scoring)).await? {
            return Ok(Some(key));
        }
    }
    let key = ProcessKey::Loan(id.to_owned());
    Ok(store.load::<LoanProcess>(&key).await?.is_some().then_some(key))
}

/// The timeline of the process `key`, if it exists.
pub async fn timeline<S: ProcessStore + Sync>(
    store: &S,
    key: &ProcessKey,
    kept: &[Quarantined],
) -> Result<Option<Timeline>, InfraError> {
    Ok(match key {
        ProcessKey::Truck(_) => store.load::<TruckProcess>(key).await?.map(|p| Timeline::of(&p.value, kept)),
        ProcessKey::Loan(_) => store.load::<LoanProcess>(key).await?.map(|p| Timeline::of(&p.value, kept)),
    })
}

/// Processes not ended that have been in their stage longer than `older_than` at
/// `now_ms`, longest first, at most `limit` of each kind.
pub async fn stuck<S: OpenProcesses + Sync>(
    store: &S,
    older_than: Duration,
    now_ms: u64,
    limit: u32,
) -> Result<Vec<OpenProcess>, InfraError> {
    let before = now_ms.saturating_sub(older_than.as_millis() as u64);
    let mut all = Vec::new();
    for kind in keys::PROCESS_KINDS {
        all.extend(store.open_before(kind, before, limit).await?);
    }
    all.sort_by_key(|p| p.since_ms);
    Ok(all)
}

/// A duration as operators type it: `45s`, `30m`, `2h`, `1d`.
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 45s, 30m, 2h or 1d");
    let unit = text.chars().last().ok_or_else(bad)?;
    let count: u64 = text[..text.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(count.saturating_mul(seconds)))
}

/// How long, as a person reads it: `2d 3h`, `12m 5s`, `800 ms`.
pub fn span(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms} ms"),
        1..=59 => format!("{s}s"),
        60..=3_599 => format!("{}m {}s", s / 60, s % 60),
        3_600..=86_399 => format!("{}h {}m", s / 3_600, s % 3_600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// A time in milliseconds since the epoch, as UTC (`2026-11-24T06:25:01.123Z`).
pub fn utc(ms: u64) -> String {
    let ((year, month, day), rest) = (crate::clock::date_of(ms), ms % 86_400_000);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

#[cfg(test)]
#[path = "timeline_tests.rs"]
mod tests;
