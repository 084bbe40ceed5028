//! The engine through the truck runner, on the in-memory ports and a scripted MUST:
//! what happens to a call that changes something at MUST when it fails in each way,
//! and to two runners working on one process at once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::adapters::memory::{MemoryObjects, MemorySqs, MemoryTable};
use crate::domain::ids::{BlobId, ProcessId, ScoringId};
use crate::domain::must::api::{DocumentsRequest, InitRequest, PaymentOrderRequest, PaymentRequest};
use crate::domain::must::hook::HookKind;
use crate::domain::truck::bank::{PaymentMethod, TruckBankEvent, TruckPolicyRequest};
use crate::domain::truck::process::TruckProcess;
use crate::ports::{
    CallError, Download, KeptOrigin, MustApi, ProcessStore, QuarantineStore, ReceivedHook, TruckMessage,
};
use crate::services::retry::Backoff;
use crate::services::truck::runner::{must_refusal, KnownScorings, TruckRunner};

/// How MUST answers one call.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    Ok,
    /// Refused before it reached MUST (connection refused).
    NotSent,
    /// MUST made the change; the answer was lost (a timeout, a 502, a reset).
    LostAnswer,
    /// The call never returns (the runner dies waiting).
    Hang,
}

#[derive(Default)]
struct Script {
    plans: HashMap<&'static str, VecDeque<Plan>>,
    calls: HashMap<&'static str, u32>,
    changes: HashMap<&'static str, u32>,
}

/// MUST as a script: each call takes the next plan for its name (`Ok` when none is left).
#[derive(Clone, Default)]
struct ScriptedMust(Arc<Mutex<Script>>);

impl ScriptedMust {
    fn plan(&self, call: &'static str, plans: &[Plan]) {
        self.0.lock().unwrap().plans.entry(call).or_default().extend(plans);
    }

    fn changes(&self, call: &str) -> u32 {
        self.0.lock().unwrap().changes.get(call).copied().unwrap_or(0)
    }

    fn calls(&self, call: &str) -> u32 {
        self.0.lock().unwrap().calls.get(call).copied().unwrap_or(0)
    }

    async fn step(&self, call: &'static str) -> Result<(), CallError> {
        tokio::task::yield_now().await;
        let plan = {
            let mut s = self.0.lock().unwrap();
            *s.calls.entry(call).or_default() += 1;
            s.plans.get_mut(call).and_then(VecDeque::pop_front).unwrap_or(Plan::Ok)
        };
        match plan {
            Plan::Ok | Plan::LostAnswer => {
                *self.0.lock().unwrap().changes.entry(call).or_default() += 1;
                if plan == Plan::LostAnswer {
                    return Err(CallError::Ambiguous("HTTP 502 Bad Gateway".into()));
                }
                Ok(())
            }
            Plan::NotSent => Err(CallError::NotSent("connection refused".into())),
            Plan::Hang => std::future::pending().await,
        }
    }
}

impl MustApi for ScriptedMust {
    async fn init(&self, _: &InitRequest, _: &str) -> Result<ScoringId, CallError> {
        self.step("init").await?;
        Ok(ScoringId::parse("sc-1").unwrap())
    }
    async fn upload_blob(&self, _: &str, _: Vec<u8>, _: &str) -> Result<BlobId, CallError> {
        self.step("blob").await?;
        Ok(BlobId::parse("b-1").unwrap())
    }
    async fn associate_documents(
        &self,
        _: &ScoringId,
        _: &DocumentsRequest,
        _: &str,
    ) -> Result<(), CallError> {
        self.step("documents").await
    }
    async fn submit_contract(&self, _: &ScoringId, _: &serde_json::Value, _: &str) -> Result<(), CallError> {
        self.step("contract").await
    }
    async fn request_payment(
        &self,
        _: &ScoringId,
        _: PaymentMethod,
        _: &PaymentRequest,
        _: &str,
    ) -> Result<(), CallError> {
        self.step("payment").await
    }
    async fn submit_payment_order(
        &self,
        _: &ScoringId,
        _: &PaymentOrderRequest,
        _: &str,
    ) -> Result<(), CallError> {
        self.step("payment-order").await
    }
    async fn download_blob(&self, _: &BlobId, _: u64) -> Result<Download, CallError> {
        self.step("download").await?;
        Ok(Download { bytes: b"%PDF-1.4 policy".to_vec(), content_type: None })
    }
}

struct World {
    table: MemoryTable,
    bank: MemorySqs,
    must: ScriptedMust,
    objects: MemoryObjects,
}

type Runner = TruckRunner<MemoryTable, ScriptedMust, MemoryObjects, MemorySqs>;

impl World {
    fn new(table: MemoryTable) -> World {
        let objects = MemoryObjects::default();
        objects.put("docs", "inbound/REQ-2026-0001/sts.pdf", b"%PDF sts".to_vec());
        objects.put("docs", "inbound/REQ-2026-0001/pts.pdf", b"%PDF pts".to_vec());
        objects.put("docs", "inbound/REQ-2026-0001/diagnostic-card.pdf", b"%PDF dk".to_vec());
        World { table, bank: MemorySqs::default(), must: ScriptedMust::default(), objects }
    }

    fn runner(&self, idempotent: bool) -> Runner {
        TruckRunner {
            engine: Engine {
                store: self.table.clone(),
                effect_lease: Duration::from_millis(50),
                backoff: Backoff { attempts: 1, first_delay: Duration::from_millis(1) },
                refusal: must_refusal,
                partner_idempotent: idempotent,
            },
            must: self.must.clone(),
            objects: self.objects.clone(),
            outbox: self.bank.clone(),
            documents_bucket: "docs".into(),
            archive_bucket: "archive".into(),
            unknown_scoring_grace: Duration::from_secs(600),
            known_scorings: KnownScorings::default(),
        }
    }

    async fn process(&self) -> TruckProcess {
        let key = crate::keys::ProcessKey::Truck(ProcessId::parse("REQ-2026-0001").unwrap());
        self.table.load::<TruckProcess>(&key).await.unwrap().expect("the process is stored").value
    }

    /// The bank's notices so far: (eventId, type).
    fn notices(&self) -> Vec<(String, String)> {
        self.bank
            .sent()
            .iter()
            .map(|m| {
                let v: serde_json::Value = serde_json::from_str(m).unwrap();
                (v["eventId"].as_str().unwrap().to_owned(), v["type"].as_str().unwrap().to_owned())
            })
            .collect()
    }
}

fn request() -> TruckPolicyRequest {
    let json = include_str!("../../examples/bank/truck.policy-requested.json");
    let TruckBankEvent::PolicyRequested { request, .. } = serde_json::from_str(json).unwrap() else {
        unreachable!()
    };
    let mut request = *request;
    request.payment.method = PaymentMethod::Link;
    request
}

fn drive() -> TruckMessage {
    TruckMessage::Drive { process_id: ProcessId::parse("REQ-2026-0001").unwrap() }
}

fn hook(kind: HookKind, body: &str) -> TruckMessage {
    TruckMessage::Hook(ReceivedHook {
        scoring_id: ScoringId::parse("sc-1").unwrap(),
        kind,
        hook_id: crate::services::truck::hook_intake::hook_id(
            &ScoringId::parse("sc-1").unwrap(),
            kind,
            None,
            body.as_bytes(),
        )
        .0,
        by_content: true,
        body: body.into(),
        received_at_ms: crate::ports::now_ms(),
        replays: 0,
    })
}

/// A process brought to the point where it asks MUST for a payment link.
async fn up_to_payment(w: &World, runner: &Runner) {
    w.table.create(&TruckProcess::start(request())).await.unwrap();
    runner.handle(drive()).await.unwrap();
    for (kind, body) in [
        (HookKind::DocumentsTypesRequired, r#"{"documentTypes":[11,12]}"#),
        (HookKind::DocumentsUploadCompleted, "{}"),
        (HookKind::ContractUpdateCompleted, "{}"),
        (HookKind::Started, r#"{"insuranceCompanies":["ingostrah"]}"#),
    ] {
        runner.handle(hook(kind, body)).await.unwrap();
    }
}

async fn approved(runner: &Runner) -> Result<(), RetryLater> {
    runner.handle(hook(HookKind::Approved, r#"{"insuranceCompany":"ingostrah","writtenPremium":1000}"#)).await
}

async fn kept_reviews(table: &MemoryTable) -> Vec<String> {
    let items = table.list_quarantined().await.unwrap();
    items.into_iter().filter(|i| matches!(i.origin, KeptOrigin::Review { .. })).map(|i| i.id).collect()
}

#[tokio::test]
async fn a_payment_request_whose_answer_was_lost_is_held_and_never_sent_again() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    up_to_payment(&w, &runner).await;
    w.must.plan("payment", &[Plan::LostAnswer]);
    approved(&runner).await.unwrap();
    let p = w.process().await;
    assert_eq!(p.stage_name(), "needs-review");
    assert_eq!(kept_reviews(&w.table).await.len(), 1, "kept for an operator, with the alarm's metric");
    assert!(w.notices().iter().any(|(_, kind)| kind == "truck.needs-review"));
    // Redeliveries, and any number of them, send nothing.
    for _ in 0..3 {
        runner.handle(drive()).await.unwrap();
    }
    assert_eq!((w.must.calls("payment"), w.must.changes("payment")), (1, 1));
    // MUST's next hook proves the request arrived: the process goes on, the review is off the list.
    runner
        .handle(hook(HookKind::PaymentLinkGenerated, r#"{"paymentLink":"https://pay.example/1"}"#))
        .await
        .unwrap();
    let p = w.process().await;
    assert_eq!(p.stage_name(), "awaiting-payment");
    assert!(kept_reviews(&w.table).await.is_empty());
    assert_eq!(w.must.calls("payment"), 1);
}

#[tokio::test]
async fn a_call_that_surely_was_not_sent_is_sent_again_under_a_new_attempt() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    up_to_payment(&w, &runner).await;
    w.must.plan("payment", &[Plan::NotSent]);
    assert!(approved(&runner).await.is_err(), "given back to the queue");
    runner.handle(drive()).await.unwrap();
    assert_eq!((w.must.calls("payment"), w.must.changes("payment")), (2, 1));
    let p = w.process().await;
    assert_eq!(p.stage_name(), "awaiting-payment");
    let intents: Vec<String> =
        w.table.intents().into_iter().map(|(_, k)| k).filter(|k| k.starts_with("EFFECT#payment")).collect();
    assert_eq!(intents.len(), 2, "one intent per attempt: {intents:?}");
    let journal: Vec<_> = p.outbox.calls().iter().filter(|c| c.effect == "payment-ingostrah").collect();
    assert_eq!(journal.len(), 2);
    assert!(matches!(journal[0].outcome, crate::domain::workflow::CallOutcome::NotSent { .. }));
}

#[tokio::test]
async fn a_runner_that_died_during_the_call_leaves_an_outcome_nobody_knows() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    up_to_payment(&w, &runner).await;
    w.must.plan("payment", &[Plan::Hang]);
    // The runner dies while MUST holds the request (the future is dropped after the intent).
    let died = tokio::time::timeout(Duration::from_millis(20), approved(&runner)).await;
    assert!(died.is_err());
    // Its message comes back. Within the lease, the attempt may still be running elsewhere: wait.
    assert!(approved(&runner).await.is_err());
    tokio::time::sleep(Duration::from_millis(60)).await;
    // After it: held, not sent again.
    approved(&runner).await.unwrap();
    assert_eq!(w.process().await.stage_name(), "needs-review");
    assert_eq!(w.must.calls("payment"), 1);
}

#[tokio::test]
async fn a_partner_that_honours_idempotency_keys_gets_the_call_again() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(true);
    up_to_payment(&w, &runner).await;
    w.must.plan("payment", &[Plan::LostAnswer]);
    assert!(approved(&runner).await.is_err(), "retried on the next delivery, not held");
    runner.handle(drive()).await.unwrap();
    assert_eq!(w.process().await.stage_name(), "awaiting-payment");
    assert_eq!(w.must.calls("payment"), 2, "sent again under the same Idempotency-Key");
}

#[tokio::test]
async fn an_operator_answers_a_held_init_with_the_scoring_id() {
    let w = World::new(MemoryTable::default());
    let runner = w.runner(false);
    w.table.create(&TruckProcess::start(request())).await.unwrap();
    w.must.plan("init", &[Plan::LostAnswer]);
    runner.handle(drive()).await.unwrap();
    assert_eq!(w.process().await.stage_name(), "needs-review");
    let resolved = crate::domain::truck::process::TruckEvent::ReviewResolved {
        id: "op-1".into(),
        resolution: crate::domain::workflow::Resolution::Happened {
            reference: Some("sc-1".into()),
            number: None,
        },
    };
    let pid = ProcessId::parse("REQ-2026-0001").unwrap();
    runner.handle(TruckMessage::BankEvent { process_id: pid, event: resolved, replays: 0 }).await.unwrap();
    let p = w.process().await;
    assert_eq!(
        (p.stage_name().as_str(), p.scoring_id.as_ref().map(ScoringId::as_str)),
        ("preparing", Some("sc-1"))
    );
    assert_eq!(w.must.calls("init"), 1, "init was not sent again");
    runner.handle(hook(HookKind::DocumentsTypesRequired, r#"{"documentTypes":[11]}"#)).await.unwrap();
    assert_eq!(w.must.changes("documents"), 1, "the hooks of the scoringId now reach the process");
}

#[tokio::test]
async fn two_runners_on_one_process_never_give_two_notices_one_id() {
    let w = World::new(MemoryTable::yielding());
    let (a, b) = (w.runner(false), w.runner(false));
    w.table.create(&TruckProcess::start(request())).await.unwrap();
    a.handle(drive()).await.unwrap();
    for (kind, body) in [
        (HookKind::DocumentsTypesRequired, r#"{"documentTypes":[11,12]}"#),
        (HookKind::DocumentsUploadCompleted, "{}"),
        (HookKind::ContractUpdateCompleted, "{}"),
    ] {
        a.handle(hook(kind, body)).await.unwrap();
    }
    b.handle(hook(HookKind::Started, r#"{"insuranceCompanies":["ingostrah","renaissance"]}"#)).await.unwrap();
    // Two hooks of one process handled at once by two runners (as two message groups would).
    let rejected =
        |insurer: &str| hook(HookKind::Rejected, &format!(r#"{{"insuranceCompany":"{insurer}"}}"#));
    let (ra, rb) = tokio::join!(a.handle(rejected("ingostrah")), b.handle(rejected("renaissance")));
    ra.unwrap();
    rb.unwrap();
    let p = w.process().await;
    assert_eq!(p.stage_name(), "rejected");
    assert!(p.outbox.is_empty(), "the second writer sent what the first one's write brought: {:?}", p.outbox);
    let mut by_id: HashMap<String, Vec<String>> = HashMap::new();
    for m in w.bank.sent() {
        let v: serde_json::Value = serde_json::from_str(&m).unwrap();
        by_id.entry(v["eventId"].as_str().unwrap().to_owned()).or_default().push(m.clone());
    }
    for (id, bodies) in &by_id {
        assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{id} names two different notices: {bodies:?}");
    }
    assert!(w.table.conflicts() > 0, "the two runners raced on one version");
    let kinds: Vec<String> = {
        let mut seen: Vec<(String, String)> = w.notices();
        seen.sort();
        seen.dedup();
        seen.into_iter().map(|(_, k)| k).collect()
    };
    assert_eq!(kinds.iter().filter(|k| *k == "truck.offer").count(), 2);
    assert_eq!(kinds.iter().filter(|k| *k == "truck.rejected").count(), 1);
}
