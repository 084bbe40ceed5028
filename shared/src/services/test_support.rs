//! Fixtures the services' unit tests share: the bank's example events, the partners
//! as scripts (MUST, BIMA), a truck world on the in-memory ports, queues read back,
//! and ports that fail on demand.

use std::collections::{HashMap, VecDeque};
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::adapters::memory::{MemoryObjects, MemorySqs, MemoryTable, SqsConfig};
use crate::domain::bima::api::{CalcRequest, Calculation, PrintLink, PrintLinkRequest, SaleAccepted};
use crate::domain::bima::sale::SaleRequest;
use crate::domain::ids::{BlobId, CustomerId, ProcessId, ScoringId};
use crate::domain::loan::bank::{LoanBankEvent, LoanIssued};
use crate::domain::must::api::{DocumentsRequest, InitRequest, PaymentOrderRequest, PaymentRequest};
use crate::domain::must::files::MustFile;
use crate::domain::must::hook::HookKind;
use crate::domain::truck::bank::{PaymentMethod, TruckBankEvent, TruckPolicyRequest};
use crate::domain::truck::process::TruckProcess;
use crate::keys::{Cursor, ProcessKey};
use crate::ports::{
    BankOutbox, BimaApi, CallError, Download, HookBody, HookStore, InfraError, LoanMessage, LoanQueue,
    MustApi, ProcessStore, ProductIndex, ProductPage, QuarantineStore, Quarantined, ReceivedHook, Recorded,
    SaveError, StoredProcess, TruckMessage, TruckQueue, Versioned,
};
use crate::services::engine::Engine;
use crate::services::retry::Backoff;
use crate::services::truck::runner::{must_refusal, KnownScorings, TruckRunner};

pub const TRUCK_POLICY_REQUESTED: &str = include_str!("../../examples/bank/truck.policy-requested.json");
pub const TRUCK_DOCUMENTS_CORRECTED: &str =
    include_str!("../../examples/bank/truck.documents-corrected.json");
pub const TRUCK_PAYMENT_ORDER: &str = include_str!("../../examples/bank/truck.payment-order.json");
pub const LOAN_ISSUED: &str = include_str!("../../examples/bank/loan.issued.json");

/// The example request's id, and the example loan's number.
pub const REQUEST_ID: &str = "REQ-2026-0001";
pub const LOAN_NUMBER: &str = "1234567890";

pub fn process_id() -> ProcessId {
    ProcessId::parse(REQUEST_ID).unwrap()
}

pub fn truck_key() -> ProcessKey {
    ProcessKey::Truck(process_id())
}

pub fn loan_key() -> ProcessKey {
    ProcessKey::Loan(LOAN_NUMBER.into())
}

pub fn sid(id: &str) -> ScoringId {
    ScoringId::parse(id).unwrap()
}

/// The example truck request, paid by link.
pub fn truck_request() -> TruckPolicyRequest {
    let TruckBankEvent::PolicyRequested { request, .. } =
        serde_json::from_str(TRUCK_POLICY_REQUESTED).unwrap()
    else {
        unreachable!()
    };
    let mut request = *request;
    request.payment.method = PaymentMethod::Link;
    request
}

/// The example loan.
pub fn loan_issued() -> LoanIssued {
    let LoanBankEvent::Issued(loan) = serde_json::from_str(LOAN_ISSUED).unwrap();
    *loan
}

/// An example event with `edit` applied to its JSON.
pub fn edited(example: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut json: Value = serde_json::from_str(example).unwrap();
    edit(&mut json);
    json.to_string()
}

/// Everything kept for an operator, oldest first.
pub async fn kept<S: QuarantineStore + Sync>(store: &S) -> Vec<Quarantined> {
    store.list_quarantined().await.unwrap()
}

/// A FIFO queue (deduplicating per group for five minutes), as the process queues are.
pub fn fifo() -> MemorySqs {
    MemorySqs::new(SqsConfig::fifo(30_000, 5), None)
}

/// Every message waiting on `queue`, in the order a consumer gets them, with its
/// group, taken off the queue.
pub fn drain<T: DeserializeOwned>(queue: &MemorySqs) -> Vec<(Option<String>, T)> {
    let mut out = Vec::new();
    loop {
        let batch = queue.receive(10);
        if batch.is_empty() {
            return out;
        }
        for d in batch {
            queue.delete(d.receipt);
            out.push((d.group, serde_json::from_str(&d.body).unwrap()));
        }
    }
}

/// Every body `queue` ever accepted, as JSON.
pub fn sent_json(queue: &MemorySqs) -> Vec<Value> {
    queue.sent().iter().map(|m| serde_json::from_str(m).unwrap()).collect()
}

/// How a partner answers one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plan {
    Ok,
    /// Refused before it reached the partner (connection refused).
    NotSent,
    /// The partner made the change; the answer was lost (a timeout, a 502, a reset).
    LostAnswer,
    /// The call never returns (the runner dies waiting).
    Hang,
    /// The partner refused with this HTTP status; nothing changed.
    Refused(u16),
    /// The partner answered something we cannot use.
    Unusable,
}

#[derive(Default)]
struct ScriptState {
    plans: HashMap<&'static str, VecDeque<Plan>>,
    calls: HashMap<&'static str, u32>,
    changes: HashMap<&'static str, u32>,
}

/// A partner as a script: each call takes the next plan for its name (`Ok` when none is left).
#[derive(Clone, Default)]
pub struct Script(Arc<Mutex<ScriptState>>);

impl Script {
    pub fn plan(&self, call: &'static str, plans: &[Plan]) {
        self.0.lock().unwrap().plans.entry(call).or_default().extend(plans);
    }

    /// Calls that changed something at the partner.
    pub fn changes(&self, call: &str) -> u32 {
        self.0.lock().unwrap().changes.get(call).copied().unwrap_or(0)
    }

    /// Calls made, whatever their outcome.
    pub fn calls(&self, call: &str) -> u32 {
        self.0.lock().unwrap().calls.get(call).copied().unwrap_or(0)
    }

    pub async fn step(&self, call: &'static str) -> Result<(), CallError> {
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
            Plan::Refused(status) => {
                Err(CallError::Refused { status, code: None, message: format!("{call} refused") })
            }
            Plan::Unusable => Err(CallError::Unusable(format!("{call}: unreadable answer"))),
        }
    }
}

/// MUST as a script.
#[derive(Clone, Default)]
pub struct ScriptedMust(Script);

impl Deref for ScriptedMust {
    type Target = Script;
    fn deref(&self) -> &Script {
        &self.0
    }
}

/// What MUST's blob download serves.
pub const POLICY_PDF: &[u8] = b"%PDF-1.4 policy";

impl MustApi for ScriptedMust {
    async fn init(&self, _: &InitRequest, _: &str) -> Result<ScoringId, CallError> {
        self.step("init").await?;
        Ok(sid("sc-1"))
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
    async fn submit_contract(&self, _: &ScoringId, _: &Value, _: &str) -> Result<(), CallError> {
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
    async fn download(&self, _: &MustFile, _: u64) -> Result<Download, CallError> {
        self.step("download").await?;
        Ok(Download { bytes: POLICY_PDF.to_vec(), content_type: None })
    }
}

/// The truck line on the in-memory ports, with MUST as a script and the example
/// request's documents in the documents bucket.
pub struct World {
    pub table: MemoryTable,
    pub bank: MemorySqs,
    pub must: ScriptedMust,
    pub objects: MemoryObjects,
}

pub type Runner = TruckRunner<MemoryTable, ScriptedMust, MemoryObjects, MemorySqs>;

/// How long a hook for an unknown scoringId waits in [`World::runner`].
pub const UNKNOWN_SCORING_GRACE: Duration = Duration::from_secs(600);

impl World {
    pub fn new(table: MemoryTable) -> World {
        let objects = MemoryObjects::default();
        objects.put("docs", "inbound/REQ-2026-0001/sts.pdf", b"%PDF sts".to_vec());
        objects.put("docs", "inbound/REQ-2026-0001/pts.pdf", b"%PDF pts".to_vec());
        objects.put("docs", "inbound/REQ-2026-0001/diagnostic-card.pdf", b"%PDF dk".to_vec());
        World { table, bank: MemorySqs::default(), must: ScriptedMust::default(), objects }
    }

    pub fn runner(&self, idempotent: bool) -> Runner {
        self.runner_telling(idempotent, self.bank.clone())
    }

    /// A runner whose notices go to `outbox`.
    pub fn runner_telling<B>(
        &self,
        idempotent: bool,
        outbox: B,
    ) -> TruckRunner<MemoryTable, ScriptedMust, MemoryObjects, B> {
        TruckRunner {
            engine: Engine {
                store: self.table.clone(),
                effect_lease: Duration::from_millis(50),
                backoff: Backoff { attempts: 1, first_delay: Duration::from_millis(1), ..Backoff::default() },
                refusal: must_refusal,
                partner_idempotent: idempotent,
            },
            must: self.must.clone(),
            objects: self.objects.clone(),
            outbox,
            documents_bucket: "docs".into(),
            archive_bucket: "archive".into(),
            unknown_scoring_grace: UNKNOWN_SCORING_GRACE,
            known_scorings: KnownScorings::default(),
        }
    }

    pub async fn process(&self) -> TruckProcess {
        self.table.load::<TruckProcess>(&truck_key()).await.unwrap().expect("the process is stored").value
    }

    /// The bank's notices so far: (eventId, type).
    pub fn notices(&self) -> Vec<(String, String)> {
        sent_json(&self.bank)
            .iter()
            .map(|v| (v["eventId"].as_str().unwrap().to_owned(), v["type"].as_str().unwrap().to_owned()))
            .collect()
    }
}

pub fn drive() -> TruckMessage {
    TruckMessage::Drive { process_id: process_id() }
}

/// A hook for `sc-1` as the intake stores it, known by its content, received at `received_at_ms`.
pub fn received(kind: HookKind, body: &str, received_at_ms: u64) -> ReceivedHook {
    ReceivedHook {
        scoring_id: sid("sc-1"),
        kind,
        hook_id: crate::services::truck::hook_intake::hook_id(&sid("sc-1"), kind, None, body.as_bytes()).0,
        by_content: true,
        body: body.into(),
        received_at_ms,
        replays: 0,
        requeued_at_ms: 0,
    }
}

/// A hook for `sc-1` received now.
pub fn hook(kind: HookKind, body: &str) -> TruckMessage {
    TruckMessage::Hook(received(kind, body, crate::ports::now_ms()))
}

/// A process brought to the point where it asks MUST for a payment link.
pub async fn up_to_payment(w: &World, runner: &Runner) {
    w.table.create(&TruckProcess::start(truck_request())).await.unwrap();
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

#[derive(Default)]
struct BimaState {
    sale_answer: SaleAccepted,
    print_form: Option<Download>,
    sales: Vec<(SaleRequest, String)>,
    print_links: Vec<(PrintLinkRequest, String)>,
    fetches: Vec<(String, u64)>,
}

/// BIMA as a script. Calls: `calc`, `sale`, `print-link`, `print-form`. It sells policy
/// 100002 (CL-00000002) unless told otherwise, links its print form, and serves a PDF
/// behind the link, refusing (as unusable) one over the caller's size cap.
#[derive(Clone)]
pub struct ScriptedBima {
    script: Script,
    state: Arc<Mutex<BimaState>>,
}

impl Deref for ScriptedBima {
    type Target = Script;
    fn deref(&self) -> &Script {
        &self.script
    }
}

pub const PRINT_FORM_PDF: &[u8] = b"%PDF-1.4 credit life";

impl Default for ScriptedBima {
    fn default() -> Self {
        let state = BimaState {
            sale_answer: SaleAccepted {
                policy_id: Some("100002".into()),
                policy_number: Some("CL-00000002".into()),
            },
            print_form: Some(Download {
                bytes: PRINT_FORM_PDF.to_vec(),
                content_type: Some("application/pdf".into()),
            }),
            ..BimaState::default()
        };
        ScriptedBima { script: Script::default(), state: Arc::new(Mutex::new(state)) }
    }
}

impl ScriptedBima {
    /// What a successful sale answers from now on.
    pub fn answer_sale(&self, answer: SaleAccepted) {
        self.state.lock().unwrap().sale_answer = answer;
    }

    /// What is behind the print link from now on (`None`: a link on a host we do not trust).
    pub fn serve_print_form(&self, form: Option<Download>) {
        self.state.lock().unwrap().print_form = form;
    }

    /// Every sale request that reached the double, with its idempotency key.
    pub fn sales(&self) -> Vec<(SaleRequest, String)> {
        self.state.lock().unwrap().sales.clone()
    }

    pub fn print_links(&self) -> Vec<(PrintLinkRequest, String)> {
        self.state.lock().unwrap().print_links.clone()
    }

    /// Every print form asked for: (url, size cap).
    pub fn fetches(&self) -> Vec<(String, u64)> {
        self.state.lock().unwrap().fetches.clone()
    }
}

impl BimaApi for ScriptedBima {
    async fn calculate(&self, _: &CalcRequest) -> Result<Calculation, CallError> {
        self.step("calc").await?;
        Ok(Calculation {
            premium: "3000.00".into(),
            sum_insured: "500000".into(),
            risks: vec!["death".into(), "disability".into()],
        })
    }

    async fn sell(&self, request: &SaleRequest, idempotency_key: &str) -> Result<SaleAccepted, CallError> {
        self.state.lock().unwrap().sales.push((request.clone(), idempotency_key.to_owned()));
        self.step("sale").await?;
        Ok(self.state.lock().unwrap().sale_answer.clone())
    }

    async fn print_link(
        &self,
        request: &PrintLinkRequest,
        idempotency_key: &str,
    ) -> Result<PrintLink, CallError> {
        self.state.lock().unwrap().print_links.push((request.clone(), idempotency_key.to_owned()));
        self.step("print-link").await?;
        Ok(PrintLink { print_link: format!("https://bima.example/print/{}.pdf", request.policy_id) })
    }

    async fn fetch_print_form(&self, url: &str, max_bytes: u64) -> Result<Option<Download>, CallError> {
        self.state.lock().unwrap().fetches.push((url.to_owned(), max_bytes));
        self.step("print-form").await?;
        let form = self.state.lock().unwrap().print_form.clone();
        match form {
            Some(f) if f.bytes.len() as u64 > max_bytes => Err(CallError::Unusable(format!(
                "print form of {} bytes is over the {max_bytes}-byte cap",
                f.bytes.len()
            ))),
            other => Ok(other),
        }
    }
}

/// A queue that records what it is given, with the group and deduplication id.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<(Value, String, String)>>>);

impl Recorder {
    /// Every message: (JSON body, group, deduplication id).
    pub fn messages(&self) -> Vec<(Value, String, String)> {
        self.0.lock().unwrap().clone()
    }

    fn push<T: serde::Serialize>(&self, message: &T, group: &str, dedup: &str) {
        let body = serde_json::to_value(message).unwrap();
        self.0.lock().unwrap().push((body, group.to_owned(), dedup.to_owned()));
    }
}

impl TruckQueue for Recorder {
    async fn enqueue(&self, message: &TruckMessage, group: &str, dedup_id: &str) -> Result<(), InfraError> {
        self.push(message, group, dedup_id);
        Ok(())
    }
}

impl LoanQueue for Recorder {
    async fn enqueue(&self, message: &LoanMessage, group: &str, dedup_id: &str) -> Result<(), InfraError> {
        self.push(message, group, dedup_id);
        Ok(())
    }
}

/// A port whose next calls fail (as DynamoDB, SQS or S3 throttling or down would),
/// then work as `inner` does.
#[derive(Clone)]
pub struct Flaky<T> {
    pub inner: T,
    failures: Arc<AtomicU32>,
}

impl<T> Flaky<T> {
    pub fn new(inner: T) -> Flaky<T> {
        Flaky { inner, failures: Arc::default() }
    }

    /// The next `n` calls fail (`u32::MAX`: every call).
    pub fn fail_next(&self, n: u32) {
        self.failures.store(n, Ordering::SeqCst);
    }

    fn trip(&self) -> Result<(), InfraError> {
        let failed = self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        match failed {
            Ok(_) => Err(InfraError::call("test", "service unavailable")),
            Err(_) => Ok(()),
        }
    }
}

impl<T: HookStore + Sync> HookStore for Flaky<T> {
    async fn record_hook(&self, hook: &ReceivedHook, body: HookBody) -> Result<Recorded, InfraError> {
        self.trip()?;
        self.inner.record_hook(hook, body).await
    }
    async fn hook_body(&self, hook: &crate::ports::HookRef) -> Result<Option<String>, InfraError> {
        self.trip()?;
        self.inner.hook_body(hook).await
    }
}

impl<T: QuarantineStore + Sync> QuarantineStore for Flaky<T> {
    async fn quarantine(&self, item: &Quarantined) -> Result<bool, InfraError> {
        self.trip()?;
        self.inner.quarantine(item).await
    }
    async fn list_quarantined(&self) -> Result<Vec<Quarantined>, InfraError> {
        self.trip()?;
        self.inner.list_quarantined().await
    }
    async fn release(&self, id: &str) -> Result<(), InfraError> {
        self.trip()?;
        self.inner.release(id).await
    }
}

impl<T: ProcessStore + Sync> ProcessStore for Flaky<T> {
    async fn load<P: StoredProcess>(&self, key: &ProcessKey) -> Result<Option<Versioned<P>>, InfraError> {
        self.trip()?;
        self.inner.load(key).await
    }
    async fn create<P: StoredProcess>(&self, process: &P) -> Result<bool, InfraError> {
        self.trip()?;
        self.inner.create(process).await
    }
    async fn save<P: StoredProcess>(
        &self,
        process: &P,
        expected: u64,
        aliases: &[String],
    ) -> Result<u64, SaveError> {
        self.trip()?;
        self.inner.save(process, expected, aliases).await
    }
    async fn resolve_alias(&self, alias: &str) -> Result<Option<ProcessKey>, InfraError> {
        self.trip()?;
        self.inner.resolve_alias(alias).await
    }
}

impl<T: ProductIndex + Sync> ProductIndex for Flaky<T> {
    async fn customer_products(
        &self,
        customer: &CustomerId,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<ProductPage, InfraError> {
        self.trip()?;
        self.inner.customer_products(customer, limit, after).await
    }
}

impl<T: TruckQueue + Sync> TruckQueue for Flaky<T> {
    async fn enqueue(&self, message: &TruckMessage, group: &str, dedup_id: &str) -> Result<(), InfraError> {
        self.trip()?;
        self.inner.enqueue(message, group, dedup_id).await
    }
}

impl<T: LoanQueue + Sync> LoanQueue for Flaky<T> {
    async fn enqueue(&self, message: &LoanMessage, group: &str, dedup_id: &str) -> Result<(), InfraError> {
        self.trip()?;
        self.inner.enqueue(message, group, dedup_id).await
    }
}

impl<T: BankOutbox + Sync> BankOutbox for Flaky<T> {
    async fn publish<N: serde::Serialize + Sync>(&self, notification: &N) -> Result<(), InfraError> {
        self.trip()?;
        self.inner.publish(notification).await
    }
}
