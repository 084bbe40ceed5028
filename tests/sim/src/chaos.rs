//! Faults on our side of the wire: every port call of an invocation goes through
//! [`Faulty`], which may refuse it (AWS unavailable for a while) or end the
//! invocation right after it (a crash: the Lambda container died). A crashed
//! invocation makes no further call: whatever it would have done is lost, and the
//! queue delivers its message again after the visibility timeout, as in Lambda.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use polis::domain::bima::api::{CalcRequest, Calculation, PrintLink, PrintLinkRequest, SaleAccepted};
use polis::domain::bima::sale::SaleRequest;
use polis::domain::ids::{BlobId, CustomerId, ScoringId};
use polis::domain::must::api::{DocumentsRequest, InitRequest, PaymentOrderRequest, PaymentRequest};
use polis::domain::must::files::MustFile;
use polis::domain::truck::bank::PaymentMethod;
use polis::keys::{Cursor, ProcessKey};
use polis::ports::{
    now_ms, BankOutbox, BimaApi, CallError, Download, EffectLog, EffectRecord, HookBody, HookStore,
    InfraError, LoanMessage, LoanQueue, MustApi, ObjectStore, OpenProcess, OpenProcesses, ProcessStore,
    ProductIndex, ProductPage, QuarantineStore, Quarantined, ReceivedHook, Recorded, SaveError, StoredObject,
    StoredProcess, TokenStore, TruckMessage, TruckQueue, Versioned,
};

use crate::rng::Rng;

/// How often things go wrong, per mille of port calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultRates {
    /// An invocation dies right after a port call.
    pub crash: u32,
    /// AWS starts refusing every call, for up to `outage_ms`.
    pub outage: u32,
    pub outage_ms: u64,
}

#[derive(Default)]
struct State {
    rng: Rng,
    rates: FaultRates,
    down_until_ms: u64,
    crashes: u64,
    refused: u64,
    outages: u64,
}

/// The run's faults, drawn from its own seeded stream.
pub struct Chaos(Mutex<State>);

/// What the faults did in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChaosCounts {
    pub crashes: u64,
    pub refused: u64,
    pub outages: u64,
}

impl Chaos {
    pub fn new(seed: u64, rates: FaultRates) -> Arc<Chaos> {
        Arc::new(Chaos(Mutex::new(State { rng: Rng::new(seed), rates, ..State::default() })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn counts(&self) -> ChaosCounts {
        let s = self.lock();
        ChaosCounts { crashes: s.crashes, refused: s.refused, outages: s.outages }
    }

    /// No more faults (the run is draining).
    pub fn calm(&self) {
        let mut s = self.lock();
        s.rates = FaultRates::default();
        s.down_until_ms = 0;
    }

    /// Whether AWS refuses a call now (perhaps starting an outage).
    fn refuses(&self) -> bool {
        let now = now_ms();
        let mut s = self.lock();
        if now < s.down_until_ms {
            s.refused += 1;
            return true;
        }
        let (outage, outage_ms) = (s.rates.outage, s.rates.outage_ms);
        if s.rng.per_mille(outage) {
            let length = 1 + s.rng.below(outage_ms.max(1));
            s.down_until_ms = now + length;
            s.outages += 1;
            s.refused += 1;
            return true;
        }
        false
    }

    fn crashes(&self) -> bool {
        let mut s = self.lock();
        let crash = s.rates.crash;
        let crashed = s.rng.per_mille(crash);
        s.crashes += u64::from(crashed);
        crashed
    }
}

/// One invocation of a function: dead after a crash.
pub struct Invocation {
    chaos: Arc<Chaos>,
    dead: AtomicBool,
}

impl Invocation {
    pub fn new(chaos: &Arc<Chaos>) -> Arc<Invocation> {
        Arc::new(Invocation { chaos: chaos.clone(), dead: AtomicBool::new(false) })
    }

    pub fn crashed(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// Before a call to AWS: a dead invocation calls nothing; an outage refuses.
    fn enter(&self, service: &'static str) -> Result<(), InfraError> {
        if self.crashed() {
            return Err(InfraError::call(service, "the invocation crashed"));
        }
        if self.chaos.refuses() {
            return Err(InfraError::call(service, "simulated outage: connection refused"));
        }
        Ok(())
    }

    /// Before a call to a partner: a dead invocation sends nothing.
    fn enter_partner(&self) -> Result<(), CallError> {
        if self.crashed() {
            return Err(CallError::NotSent("the invocation crashed".into()));
        }
        Ok(())
    }

    /// After a call: the invocation may die here, with the call's effect made.
    fn leave(&self) {
        if self.chaos.crashes() {
            self.dead.store(true, Ordering::SeqCst);
        }
    }

    async fn aws<T>(
        &self,
        service: &'static str,
        call: impl std::future::Future<Output = Result<T, InfraError>>,
    ) -> Result<T, InfraError> {
        self.enter(service)?;
        let out = call.await;
        self.leave();
        out
    }

    async fn partner<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, CallError>>,
    ) -> Result<T, CallError> {
        self.enter_partner()?;
        let out = call.await;
        self.leave();
        out
    }
}

/// A port seen through one invocation.
pub struct Faulty<T> {
    pub inner: T,
    pub invocation: Arc<Invocation>,
}

impl<T> Faulty<T> {
    pub fn new(inner: T, invocation: &Arc<Invocation>) -> Faulty<T> {
        Faulty { inner, invocation: invocation.clone() }
    }
}

impl<T: ProcessStore + Sync> ProcessStore for Faulty<T> {
    async fn load<P: StoredProcess>(&self, key: &ProcessKey) -> Result<Option<Versioned<P>>, InfraError> {
        self.invocation.aws("dynamodb", self.inner.load(key)).await
    }

    async fn create<P: StoredProcess>(&self, process: &P) -> Result<bool, InfraError> {
        self.invocation.aws("dynamodb", self.inner.create(process)).await
    }

    async fn save<P: StoredProcess>(
        &self,
        process: &P,
        expected: u64,
        aliases: &[String],
    ) -> Result<u64, SaveError> {
        self.invocation.enter("dynamodb")?;
        let out = self.inner.save(process, expected, aliases).await;
        self.invocation.leave();
        out
    }

    async fn resolve_alias(&self, alias: &str) -> Result<Option<ProcessKey>, InfraError> {
        self.invocation.aws("dynamodb", self.inner.resolve_alias(alias)).await
    }
}

impl<T: EffectLog + Sync> EffectLog for Faulty<T> {
    async fn begin(
        &self,
        process: &ProcessKey,
        intent: &str,
        lease_ms: u64,
    ) -> Result<EffectRecord, InfraError> {
        self.invocation.aws("dynamodb", self.inner.begin(process, intent, lease_ms)).await
    }
}

impl<T: HookStore + Sync> HookStore for Faulty<T> {
    async fn record_hook(&self, hook: &ReceivedHook, body: HookBody) -> Result<Recorded, InfraError> {
        self.invocation.aws("dynamodb", self.inner.record_hook(hook, body)).await
    }

    async fn hook_body(&self, hook: &polis::ports::HookRef) -> Result<Option<String>, InfraError> {
        self.invocation.aws("dynamodb", self.inner.hook_body(hook)).await
    }
}

impl<T: QuarantineStore + Sync> QuarantineStore for Faulty<T> {
    async fn quarantine(&self, item: &Quarantined) -> Result<bool, InfraError> {
        self.invocation.aws("dynamodb", self.inner.quarantine(item)).await
    }

    async fn list_quarantined(&self) -> Result<Vec<Quarantined>, InfraError> {
        self.invocation.aws("dynamodb", self.inner.list_quarantined()).await
    }

    async fn release(&self, id: &str) -> Result<(), InfraError> {
        self.invocation.aws("dynamodb", self.inner.release(id)).await
    }
}

impl<T: TokenStore + Sync> TokenStore for Faulty<T> {
    async fn load_token(&self, name: &str) -> Result<Option<(String, u64)>, InfraError> {
        self.invocation.aws("dynamodb", self.inner.load_token(name)).await
    }

    async fn save_token(&self, name: &str, token: &str, expires_at_ms: u64) -> Result<(), InfraError> {
        self.invocation.aws("dynamodb", self.inner.save_token(name, token, expires_at_ms)).await
    }
}

impl<T: ProductIndex + Sync> ProductIndex for Faulty<T> {
    async fn customer_products(
        &self,
        customer: &CustomerId,
        limit: u32,
        after: Option<Cursor>,
    ) -> Result<ProductPage, InfraError> {
        self.invocation.aws("dynamodb", self.inner.customer_products(customer, limit, after)).await
    }
}

impl<T: OpenProcesses + Sync> OpenProcesses for Faulty<T> {
    async fn open_before(
        &self,
        kind: &str,
        before_ms: u64,
        limit: u32,
    ) -> Result<Vec<OpenProcess>, InfraError> {
        self.invocation.aws("dynamodb", self.inner.open_before(kind, before_ms, limit)).await
    }
}

impl<T: TruckQueue + Sync> TruckQueue for Faulty<T> {
    async fn enqueue(&self, message: &TruckMessage, group: &str, dedup_id: &str) -> Result<(), InfraError> {
        self.invocation.aws("sqs", self.inner.enqueue(message, group, dedup_id)).await
    }
}

impl<T: LoanQueue + Sync> LoanQueue for Faulty<T> {
    async fn enqueue(&self, message: &LoanMessage, group: &str, dedup_id: &str) -> Result<(), InfraError> {
        self.invocation.aws("sqs", self.inner.enqueue(message, group, dedup_id)).await
    }
}

impl<T: BankOutbox + Sync> BankOutbox for Faulty<T> {
    async fn publish<N: serde::Serialize + Sync>(&self, notification: &N) -> Result<(), InfraError> {
        self.invocation.aws("sqs", self.inner.publish(notification)).await
    }
}

impl<T: ObjectStore + Sync> ObjectStore for Faulty<T> {
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, InfraError> {
        self.invocation.aws("s3", self.inner.get(bucket, key)).await
    }

    async fn put_new(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        sha256: &str,
    ) -> Result<Option<StoredObject>, InfraError> {
        self.invocation.aws("s3", self.inner.put_new(bucket, key, bytes, content_type, sha256)).await
    }
}

impl<T: MustApi + Sync> MustApi for Faulty<T> {
    async fn init(&self, request: &InitRequest, key: &str) -> Result<ScoringId, CallError> {
        self.invocation.partner(self.inner.init(request, key)).await
    }

    async fn upload_blob(&self, file_name: &str, bytes: Vec<u8>, key: &str) -> Result<BlobId, CallError> {
        self.invocation.partner(self.inner.upload_blob(file_name, bytes, key)).await
    }

    async fn associate_documents(
        &self,
        sid: &ScoringId,
        request: &DocumentsRequest,
        key: &str,
    ) -> Result<(), CallError> {
        self.invocation.partner(self.inner.associate_documents(sid, request, key)).await
    }

    async fn submit_contract(
        &self,
        sid: &ScoringId,
        card: &serde_json::Value,
        key: &str,
    ) -> Result<(), CallError> {
        self.invocation.partner(self.inner.submit_contract(sid, card, key)).await
    }

    async fn request_payment(
        &self,
        sid: &ScoringId,
        method: PaymentMethod,
        request: &PaymentRequest,
        key: &str,
    ) -> Result<(), CallError> {
        self.invocation.partner(self.inner.request_payment(sid, method, request, key)).await
    }

    async fn submit_payment_order(
        &self,
        sid: &ScoringId,
        request: &PaymentOrderRequest,
        key: &str,
    ) -> Result<(), CallError> {
        self.invocation.partner(self.inner.submit_payment_order(sid, request, key)).await
    }

    async fn download(&self, file: &MustFile, max_bytes: u64) -> Result<Download, CallError> {
        self.invocation.partner(self.inner.download(file, max_bytes)).await
    }
}

impl<T: BimaApi + Sync> BimaApi for Faulty<T> {
    async fn calculate(&self, request: &CalcRequest) -> Result<Calculation, CallError> {
        self.invocation.partner(self.inner.calculate(request)).await
    }

    async fn sell(&self, request: &SaleRequest, key: &str) -> Result<SaleAccepted, CallError> {
        self.invocation.partner(self.inner.sell(request, key)).await
    }

    async fn print_link(&self, request: &PrintLinkRequest, key: &str) -> Result<PrintLink, CallError> {
        self.invocation.partner(self.inner.print_link(request, key)).await
    }

    async fn fetch_print_form(&self, url: &str, max_bytes: u64) -> Result<Option<Download>, CallError> {
        self.invocation.partner(self.inner.fetch_print_form(url, max_bytes)).await
    }
}
