//! The simulated world: our services on the in-memory ports, MUST's and BIMA's
//! models, the bank, the customers and an operator, stepped by one seeded
//! scheduler on tokio's paused clock.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::join_all;
use polis::adapters::memory::{Delivery, MemoryObjects, MemorySqs, MemoryTable, SqsConfig};
use polis::domain::loan::process::{LoanProcess, LoanStage};
use polis::domain::must::hook::HookKind;
use polis::domain::truck::process::{TruckProcess, TruckStage};
use polis::domain::workflow::{CallOutcome, EffectSpec, Resolution, Workflow};
use polis::keys::ProcessKey;
use polis::ports::{now_ms, KeptOrigin, ProcessStore, QuarantineStore, Quarantined};
use polis::services::bank_intake::BankIntake;
use polis::services::batch::{handle_batch, Record};
use polis::services::engine::Engine;
use polis::services::loan::runner::{bima_refusal, LoanRunner, PrintLinkCaller};
use polis::services::replay::{Approval, Replay};
use polis::services::retry::Backoff;
use polis::services::truck::hook_auth::{HookAuth, HookCredentials};
use polis::services::truck::hook_intake::{HookIntake, HookRequest};
use polis::services::truck::runner::{must_refusal, KnownScorings, TruckRunner};
use polis::services::watchdog::Watchdog;
use polis_bima_sim::model::Bima;
use polis_must_sim::model::{Event, Hook, Must};
use serde_json::{json, Value};

use crate::chaos::{Chaos, Faulty, Invocation};
use crate::partners::{SimBima, SimMust, BIMA_BASE_URL};
use crate::rng::Rng;
use crate::scenarios;
use crate::{Config, Report, Violation};

const HOOK_SECRET: &str = "simulated-hook-secret";
const DOCUMENTS: &str = "documents";
const ARCHIVE: &str = "archive";
/// The template's defaults, as deployed.
const EFFECT_LEASE: Duration = Duration::from_secs(60);
const UNKNOWN_SCORING_GRACE: Duration = Duration::from_secs(600);
const INSURER_TIMEOUT: Duration = Duration::from_secs(20);
const RUNNER_MAX_RECEIVES: u32 = 8;
const BANK_MAX_RECEIVES: u32 = 5;
/// How long the operator lets a review wait before looking it up.
const REVIEW_PATIENCE_MS: u64 = 30_000;
/// Who the simulated operator is, in the processes' histories.
const OPERATOR: &str = "sim-operator";
const OPERATOR_EVERY_MS: u64 = 60_000;
const ARCHIVE_RETRY_EVERY_MS: u64 = 30 * 60_000;
/// The template's `WatchdogSchedule`, `RecognitionWaitSeconds`, `ChoiceReminderMinutes`,
/// `TemporaryErrorRetryMinutes` and `StuckAfterMinutes`.
const WATCHDOG_EVERY_MS: u64 = 60_000;
const RECOGNITION_WAIT: Duration = Duration::from_secs(60);
const CHOICE_REMINDER: Duration = Duration::from_secs(3600);
const RETRY_DELAY: Duration = Duration::from_secs(30 * 60);
const STUCK_AFTER: Duration = Duration::from_secs(2 * 3600);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One process's hooks at MUST: delivered in order, one at a time, retried with backoff.
#[derive(Default)]
struct HookLine {
    hooks: VecDeque<Hook>,
    next_at_ms: u64,
    retry_ms: u64,
}

/// A flow the bank started, until its invariants were checked.
#[derive(Debug, Clone)]
enum Flow {
    Truck { vin: String, scenario: Box<polis_must_sim::Scenario> },
    Loan,
}

/// What the bank's notice consumer saw.
#[derive(Default)]
struct Notices {
    by_event_id: BTreeMap<String, String>,
    /// The last word each ended flow must have sent (checked once the queue is drained).
    expected: Vec<(String, &'static str)>,
    /// Kinds of notice per process, in arrival order.
    by_process: BTreeMap<String, Vec<String>>,
    repeats: u64,
}

pub struct World {
    config: Config,
    rng: Mutex<Rng>,
    chaos: Arc<Chaos>,
    table: MemoryTable,
    objects: MemoryObjects,
    trucks: MemorySqs,
    loans: MemorySqs,
    bank_events: MemorySqs,
    notices_queue: MemorySqs,
    must: SimMust,
    bima: SimBima,
    hooks: Mutex<BTreeMap<String, HookLine>>,
    payments: Mutex<Vec<(u64, String)>>,
    /// Recognitions MUST finishes at their time: (at_ms, scoringId).
    recognitions: Mutex<Vec<(u64, String)>>,
    /// Flows started and not yet checked, by process key.
    open: Mutex<BTreeMap<String, Flow>>,
    notices: Mutex<Notices>,
    report: Mutex<Report>,
    violations: Mutex<Vec<Violation>>,
    started: Mutex<(u64, u64)>,
    next_operator_ms: Mutex<u64>,
    next_archive_retry_ms: Mutex<u64>,
    next_watchdog_ms: Mutex<u64>,
}

type Step<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

impl World {
    pub fn new(config: Config) -> World {
        let mut rng = Rng::new(config.seed);
        let chaos = Chaos::new(rng.next_u64(), config.faults.rates());
        let visibility_ms = *rng.pick(&[20_000, 180_000]);
        let fifo = |max| {
            let dead_letters = MemorySqs::new(SqsConfig::fifo(visibility_ms, u32::MAX), None);
            MemorySqs::new(SqsConfig::fifo(visibility_ms, max), Some(dead_letters))
        };
        let standard = |max| {
            let dead_letters = MemorySqs::new(SqsConfig::standard(visibility_ms), None);
            MemorySqs::new(
                SqsConfig { max_receives: Some(max), ..SqsConfig::standard(visibility_ms) },
                Some(dead_letters),
            )
        };
        let must_config = polis_must_sim::SimConfig {
            hook_auth: polis_must_sim::HookSigning::Secret(HOOK_SECRET.into()),
            ..polis_must_sim::SimConfig::default()
        };
        let must_model = Arc::new(Must::with_clock(must_config, now_ms));
        let bima_model =
            Arc::new(Bima::with_clock(polis_bima_sim::SimConfig::default(), BIMA_BASE_URL.into(), now_ms));
        World {
            must: SimMust::new(must_model, INSURER_TIMEOUT),
            bima: SimBima::new(bima_model, INSURER_TIMEOUT),
            chaos,
            table: MemoryTable::yielding(),
            objects: MemoryObjects::default(),
            trucks: fifo(RUNNER_MAX_RECEIVES),
            loans: fifo(RUNNER_MAX_RECEIVES),
            bank_events: standard(BANK_MAX_RECEIVES),
            notices_queue: MemorySqs::new(SqsConfig::standard(visibility_ms), None),
            hooks: Mutex::default(),
            payments: Mutex::default(),
            recognitions: Mutex::default(),
            open: Mutex::default(),
            notices: Mutex::default(),
            report: Mutex::new(Report { seed: config.seed, visibility_ms, ..Report::default() }),
            violations: Mutex::default(),
            started: Mutex::default(),
            next_operator_ms: Mutex::new(now_ms() + OPERATOR_EVERY_MS),
            next_archive_retry_ms: Mutex::new(now_ms() + ARCHIVE_RETRY_EVERY_MS),
            next_watchdog_ms: Mutex::new(now_ms() + WATCHDOG_EVERY_MS),
            rng: Mutex::new(rng),
            config,
        }
    }

    fn roll(&self, per_mille: u32) -> bool {
        lock(&self.rng).per_mille(per_mille)
    }

    fn violate(&self, process: &str, what: String) {
        lock(&self.violations).push(Violation { process: process.to_owned(), what });
    }

    pub fn violations(&self) -> Vec<Violation> {
        lock(&self.violations).clone()
    }

    pub fn report(&self) -> Report {
        let mut report = lock(&self.report).clone();
        let chaos = self.chaos.counts();
        report.crashes = chaos.crashes;
        report.aws_refusals = chaos.refused;
        report.outages = chaos.outages;
        report.notices = lock(&self.notices).by_event_id.len() as u64;
        report.notice_repeats = lock(&self.notices).repeats;
        report.conflicts = self.table.conflicts();
        report
    }

    fn all_started(&self) -> bool {
        let (trucks, loans) = *lock(&self.started);
        trucks >= self.config.trucks && loans >= self.config.loans
    }

    pub fn open_flows(&self) -> usize {
        lock(&self.open).len()
    }

    pub fn done(&self) -> bool {
        self.all_started() && self.open_flows() == 0
    }

    /// No more faults: the run drains.
    pub fn calm(&self) {
        self.chaos.calm();
    }

    /// One step: every actor once, in an order (and an interleaving) the seed decides.
    pub async fn step(&self) {
        let mut steps: Vec<Step<'_>> = vec![
            Box::pin(self.bank_starts_flows()),
            Box::pin(self.bank_intake()),
            Box::pin(self.truck_runner()),
            Box::pin(self.truck_runner()),
            Box::pin(self.loan_runner()),
            Box::pin(self.deliver_hooks()),
            Box::pin(self.customers_pay()),
            Box::pin(self.recognitions_finish()),
            Box::pin(self.watchdog()),
            Box::pin(self.bank_reads_notices()),
        ];
        {
            let mut rng = lock(&self.rng);
            for i in (1..steps.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                steps.swap(i, j);
            }
        }
        join_all(steps).await;
        let due = {
            let mut next = lock(&self.next_operator_ms);
            let due = now_ms() >= *next;
            if due {
                *next = now_ms() + OPERATOR_EVERY_MS;
            }
            due
        };
        if due {
            self.operator().await;
            self.check_ended_flows().await;
        }
        lock(&self.report).steps += 1;
    }

    // ------------------------------------------------------------------------------------
    // The bank

    /// Starts flows while fewer than the configured number are in flight.
    async fn bank_starts_flows(&self) {
        while self.open_flows() < self.config.in_flight && !self.all_started() {
            let (trucks, loans) = *lock(&self.started);
            let truck_turn = loans >= self.config.loans || (trucks < self.config.trucks && self.roll(500));
            if truck_turn {
                lock(&self.started).0 += 1;
                self.start_truck(trucks);
            } else {
                lock(&self.started).1 += 1;
                self.start_loan(loans);
            }
        }
    }

    fn start_truck(&self, n: u64) {
        let request_id = format!("REQ-SIM-{n:07}");
        let vin = format!("SIM{n:014}");
        let (scenario, method, expired_inspection) = {
            let mut rng = lock(&self.rng);
            scenarios::truck(&mut rng, self.config.faults.partners())
        };
        self.must.model.set_scenario(&vin, scenario.clone());
        let mut event = truck_request_example();
        event["eventId"] = json!(format!("evt-{request_id}"));
        event["requestId"] = json!(request_id);
        event["customerId"] = json!(format!("CUST-{}", n % 997));
        event["vehicle"]["vin"] = json!(vin);
        if expired_inspection {
            event["vehicle"]["technicalInspection"]["endOn"] = json!("2026-11-30");
        }
        event["payment"]["method"] = json!(method);
        let mut documents = Vec::new();
        for (type_id, name) in [(11, "sts.pdf"), (12, "pts.pdf"), (4, "diagnostic-card.pdf")] {
            let key = document_key(&request_id, name);
            self.objects.put(DOCUMENTS, &key, polis_must_sim::pdf::one_page(name));
            documents.push(json!({"typeId": type_id, "s3Key": key, "fileName": name}));
        }
        event["documents"] = json!(documents);
        lock(&self.open)
            .insert(format!("TRUCK#{request_id}"), Flow::Truck { vin, scenario: Box::new(scenario) });
        let _ = self.bank_events.send(event.to_string(), None);
    }

    fn start_loan(&self, n: u64) {
        let number = format!("{:010}", 7_000_000_000 + n);
        let sum = (100_000 + n).to_string();
        let scenario = {
            let mut rng = lock(&self.rng);
            scenarios::loan(&mut rng, self.config.faults.partners())
        };
        self.bima.model.set_scenario(&sum, scenario);
        let mut event: Value =
            serde_json::from_str(include_str!("../../../shared/examples/bank/loan.issued.json"))
                .unwrap_or_default();
        event["eventId"] = json!(format!("evt-loan-{number}"));
        event["loanNumber"] = json!(number);
        event["customerId"] = json!(format!("CUST-{}", n % 997));
        event["sum"] = json!(sum);
        lock(&self.open).insert(format!("LOAN#{number}"), Flow::Loan);
        let _ = self.bank_events.send(event.to_string(), None);
    }

    /// The bank reads our notices: records them, and does what they ask (a payment
    /// order for an invoice, rescans for documents to fix).
    async fn bank_reads_notices(&self) {
        for delivery in self.notices_queue.receive(10) {
            let notice: Value = serde_json::from_str(&delivery.body).unwrap_or_default();
            let event_id = notice["eventId"].as_str().unwrap_or_default().to_owned();
            let kind = notice["type"].as_str().unwrap_or_default().to_owned();
            let process = match notice["processId"].as_str() {
                Some(pid) => format!("TRUCK#{pid}"),
                None => format!("LOAN#{}", notice["loanNumber"].as_str().unwrap_or_default()),
            };
            if self.config.watch == Some(process.as_str()) {
                eprintln!("[{}] notice {}", now_ms(), delivery.body);
            }
            let first = {
                let mut notices = lock(&self.notices);
                match notices.by_event_id.get(&event_id) {
                    Some(seen) if *seen != delivery.body => {
                        drop(notices);
                        self.violate(&process, format!("two notices with eventId {event_id}: {kind}"));
                        false
                    }
                    Some(_) => {
                        notices.repeats += 1;
                        false
                    }
                    None => {
                        notices.by_event_id.insert(event_id.clone(), delivery.body.clone());
                        notices.by_process.entry(process.clone()).or_default().push(kind.clone());
                        true
                    }
                }
            };
            if first {
                self.bank_answers(&process, &kind, &notice, &event_id);
            }
            self.notices_queue.delete(delivery.receipt);
        }
    }

    fn bank_answers(&self, process: &str, kind: &str, notice: &Value, cause: &str) {
        let Some(request_id) = process.strip_prefix("TRUCK#") else { return };
        let event = match kind {
            "truck.invoice-ready" => {
                let key = document_key(request_id, "payment-order.pdf");
                self.objects.put(DOCUMENTS, &key, polis_must_sim::pdf::one_page("payment order"));
                json!({
                    "type": "truck.payment-order",
                    "eventId": format!("po-{cause}"),
                    "requestId": request_id,
                    "document": {"typeId": 100, "s3Key": key, "fileName": "payment-order.pdf"},
                })
            }
            "truck.documents-to-fix" => {
                let documents: Vec<Value> = notice["problems"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["typeId"].as_u64())
                    .map(|type_id| {
                        let key = document_key(request_id, &format!("rescan-{type_id}-{cause}.pdf"));
                        self.objects.put(DOCUMENTS, &key, polis_must_sim::pdf::one_page("rescan"));
                        json!({"typeId": type_id, "s3Key": key, "fileName": format!("rescan-{type_id}.pdf")})
                    })
                    .collect();
                json!({
                    "type": "truck.documents-corrected",
                    "eventId": format!("fix-{cause}"),
                    "requestId": request_id,
                    "documents": documents,
                })
            }
            // The bank gives a diagnostic card in force (the example's) for the same vehicle.
            "truck.correction-needed" => {
                let vin = match lock(&self.open).get(process) {
                    Some(Flow::Truck { vin, .. }) => vin.clone(),
                    _ => return,
                };
                let mut vehicle = truck_request_example()["vehicle"].clone();
                vehicle["vin"] = json!(vin);
                json!({
                    "type": "truck.request-corrected",
                    "eventId": format!("correct-{cause}"),
                    "requestId": request_id,
                    "vehicle": vehicle,
                })
            }
            _ => return,
        };
        let _ = self.bank_events.send(event.to_string(), None);
    }

    // ------------------------------------------------------------------------------------
    // Our functions, each invocation with its own faults

    /// One invocation of an SQS-triggered function on up to ten messages: the messages it
    /// handled are deleted unless it crashed (then they come back after the visibility timeout).
    async fn invoke_sqs<F, Fut>(&self, queue: &MemorySqs, invocation: &Arc<Invocation>, handle: F)
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<(), polis::services::RetryLater>>,
    {
        let batch: Vec<Delivery> = queue.receive(10);
        if batch.is_empty() {
            return;
        }
        let records = batch
            .iter()
            .map(|d| Record {
                message_id: d.message_id.clone(),
                body: d.body.clone(),
                trace_header: None,
                group: d.group.clone(),
            })
            .collect();
        let failed = handle_batch(records, handle).await;
        lock(&self.report).invocations += 1;
        if invocation.crashed() {
            return;
        }
        for delivery in batch.iter().filter(|d| !failed.contains(&d.message_id)) {
            queue.delete(delivery.receipt);
        }
    }

    fn engine(
        &self,
        invocation: &Arc<Invocation>,
        refusal: fn(&polis::ports::CallError) -> polis::domain::truck::bank::ErrorReport,
    ) -> Engine<Faulty<MemoryTable>> {
        Engine {
            store: Faulty::new(self.table.clone(), invocation),
            effect_lease: EFFECT_LEASE,
            backoff: Backoff::default(),
            refusal,
            partner_idempotent: false,
        }
    }

    async fn bank_intake(&self) {
        let invocation = Invocation::new(&self.chaos);
        let intake = BankIntake {
            store: Faulty::new(self.table.clone(), &invocation),
            trucks: Faulty::new(self.trucks.clone(), &invocation),
            loans: Faulty::new(self.loans.clone(), &invocation),
            outbox: Faulty::new(self.notices_queue.clone(), &invocation),
        };
        let intake = &intake;
        self.invoke_sqs(&self.bank_events, &invocation, |body| async move { intake.handle(&body).await })
            .await;
    }

    async fn truck_runner(&self) {
        let invocation = Invocation::new(&self.chaos);
        let runner = TruckRunner {
            engine: self.engine(&invocation, must_refusal),
            must: Faulty::new(self.must.clone(), &invocation),
            objects: Faulty::new(self.objects.clone(), &invocation),
            outbox: Faulty::new(self.notices_queue.clone(), &invocation),
            documents_bucket: DOCUMENTS.into(),
            archive_bucket: ARCHIVE.into(),
            unknown_scoring_grace: UNKNOWN_SCORING_GRACE,
            known_scorings: KnownScorings::default(),
        };
        let runner = &runner;
        self.invoke_sqs(&self.trucks, &invocation, |body| async move { runner.handle_body(&body).await })
            .await;
        self.carry_must_events();
    }

    async fn loan_runner(&self) {
        let invocation = Invocation::new(&self.chaos);
        let runner = LoanRunner {
            engine: self.engine(&invocation, bima_refusal),
            bima: Faulty::new(self.bima.clone(), &invocation),
            objects: Faulty::new(self.objects.clone(), &invocation),
            outbox: Faulty::new(self.notices_queue.clone(), &invocation),
            archive_bucket: ARCHIVE.into(),
            print_link: PrintLinkCaller::Polis,
        };
        let runner = &runner;
        self.invoke_sqs(&self.loans, &invocation, |body| async move { runner.handle_body(&body).await })
            .await;
    }

    // ------------------------------------------------------------------------------------
    // MUST's side: hooks and customers

    /// Hooks to their process's line, payments to the customers' diary.
    fn carry_must_events(&self) {
        for event in self.must.model.take_events() {
            match event {
                Event::Hook(hook) => {
                    let mut lines = lock(&self.hooks);
                    let line = lines.entry(hook.scoring_id.clone()).or_default();
                    if line.hooks.is_empty() {
                        line.next_at_ms =
                            now_ms() + self.must.model.config().processing_delay.as_millis() as u64;
                    }
                    line.hooks.push_back(hook);
                }
                Event::CustomerWillPay { scoring_id } => {
                    let after = 1_000 + lock(&self.rng).below(60_000);
                    lock(&self.payments).push((now_ms() + after, scoring_id));
                }
                Event::RecognitionRuns { scoring_id, after_ms } => {
                    lock(&self.recognitions).push((now_ms() + after_ms, scoring_id));
                }
            }
        }
    }

    async fn customers_pay(&self) {
        let now = now_ms();
        let due: Vec<String> = {
            let mut payments = lock(&self.payments);
            let (due, later): (Vec<_>, Vec<_>) = payments.drain(..).partition(|(at, _)| *at <= now);
            *payments = later;
            due.into_iter().map(|(_, sid)| sid).collect()
        };
        for sid in due {
            self.must.model.pay(&sid);
        }
        self.carry_must_events();
    }

    async fn recognitions_finish(&self) {
        let now = now_ms();
        let due: Vec<String> = {
            let mut recognitions = lock(&self.recognitions);
            let (due, later): (Vec<_>, Vec<_>) = recognitions.drain(..).partition(|(at, _)| *at <= now);
            *recognitions = later;
            due.into_iter().map(|(_, sid)| sid).collect()
        };
        for sid in due {
            self.must.model.finish_recognition(&sid);
        }
        self.carry_must_events();
    }

    /// The scheduled watchdog: ends overdue waits through the truck queue.
    async fn watchdog(&self) {
        {
            let mut next = lock(&self.next_watchdog_ms);
            if now_ms() < *next {
                return;
            }
            *next = now_ms() + WATCHDOG_EVERY_MS;
        }
        let invocation = Invocation::new(&self.chaos);
        let watchdog = Watchdog {
            store: Faulty::new(self.table.clone(), &invocation),
            trucks: Faulty::new(self.trucks.clone(), &invocation),
            choice_reminder: CHOICE_REMINDER,
            recognition_wait: RECOGNITION_WAIT,
            retry_delay: RETRY_DELAY,
            stuck_after: STUCK_AFTER,
        };
        // A failed run is the next run's: nothing it would have queued is lost.
        let _ = watchdog.run(now_ms()).await;
    }

    /// MUST delivers the first waiting hook of each process that is due (all at once:
    /// several hook functions run concurrently), each as one invocation of its function.
    async fn deliver_hooks(&self) {
        let now = now_ms();
        let due: Vec<(String, Hook)> = lock(&self.hooks)
            .iter()
            .filter(|(_, line)| line.next_at_ms <= now)
            .filter_map(|(sid, line)| line.hooks.front().map(|h| (sid.clone(), h.clone())))
            .collect();
        let deliveries = due.into_iter().map(|(sid, hook)| async move {
            let copies = join_all((0..hook.concurrent.max(1)).map(|_| self.deliver(&hook))).await;
            let delivered = copies.iter().any(|ok| *ok);
            let mut lines = lock(&self.hooks);
            let Some(line) = lines.get_mut(&sid) else { return };
            if delivered {
                line.hooks.pop_front();
                line.retry_ms = 0;
                line.next_at_ms = now_ms() + self.must.model.config().processing_delay.as_millis() as u64;
                if line.hooks.is_empty() {
                    lines.remove(&sid);
                }
            } else {
                let config = self.must.model.config();
                line.retry_ms = (line.retry_ms * 2)
                    .max(config.first_retry_delay.as_millis() as u64)
                    .min(config.max_retry_delay.as_millis() as u64);
                line.next_at_ms = now_ms() + line.retry_ms;
            }
        });
        join_all(deliveries).await;
    }

    /// One delivery attempt; `true` when MUST saw HTTP 200 (an answer may be lost on the way).
    async fn deliver(&self, hook: &Hook) -> bool {
        let Some(kind) = HookKind::from_path(hook.path) else {
            self.violate(&hook.scoring_id, format!("MUST sent a hook we have no route for: {}", hook.path));
            return true;
        };
        let invocation = Invocation::new(&self.chaos);
        let intake = HookIntake {
            store: Faulty::new(self.table.clone(), &invocation),
            queue: Faulty::new(self.trucks.clone(), &invocation),
            auth: HookAuth::from_config("shared-secret", HOOK_SECRET)
                .unwrap_or(HookAuth::SharedSecret(Vec::new()))
                .into(),
            sources: Vec::new(),
            payment_link_hosts: vec![polis_must_sim::PAYMENT_HOST.into()],
        };
        let body = hook.body.to_string();
        let request = HookRequest {
            scoring_id: Some(&hook.scoring_id),
            source_ip: None,
            credentials: HookCredentials {
                secret: Some(HOOK_SECRET.as_bytes()),
                id: hook.with_id.then_some(hook.id.as_str()),
                ..HookCredentials::default()
            },
            body: body.as_bytes(),
        };
        let reply = intake.receive(kind, request).await;
        let mut report = lock(&self.report);
        report.hook_deliveries += 1;
        let ok = reply.status == 200 && !invocation.crashed();
        let lost = ok && lock(&self.rng).per_mille(self.config.faults.lost_answers());
        report.lost_hook_answers += u64::from(lost);
        drop(report);
        self.must.model.delivered(hook.path, ok && !lost);
        ok && !lost
    }

    // ------------------------------------------------------------------------------------
    // The operator

    /// Every so often: answers reviews from the partners' back offices, replays what was
    /// kept, redrives the dead-letter queues.
    async fn operator(&self) {
        let replay = self.replay();
        let kept = self.table.list_quarantined().await.unwrap_or_default();
        for item in &kept {
            if let KeptOrigin::Review { process, .. } = &item.origin {
                if now_ms().saturating_sub(item.received_at_ms) < REVIEW_PATIENCE_MS {
                    continue;
                }
                if let Some((effect, attempt, resolution)) = self.look_up(process).await {
                    if let Ok(Ok(())) = replay.resolve(process, &effect, attempt, resolution, OPERATOR).await
                    {
                        lock(&self.report).reviews_answered += 1;
                    }
                }
            }
        }
        // Input kept for a fix is replayed each round; files the partner would not serve
        // are tried again now and then (as an operator would, not every minute).
        let input_kept = kept
            .iter()
            .any(|i| !matches!(i.origin, KeptOrigin::ArchivePending { .. } | KeptOrigin::Review { .. }));
        let archives_due = {
            let mut next = lock(&self.next_archive_retry_ms);
            let due = now_ms() >= *next;
            if due {
                *next = now_ms() + ARCHIVE_RETRY_EVERY_MS;
            }
            due
        };
        // Files only when due: re-driving every pending file each round made a long run
        // quadratic in the number of policies whose files MUST would not serve.
        if input_kept || archives_due {
            let chosen = |item: &Quarantined| archives_due || item.origin.holds_input();
            if let Ok(outcome) = replay.routine_where(OPERATOR, false, chosen).await {
                let confirmed = self.confirm_each(&replay, &outcome).await;
                lock(&self.report).replayed += (outcome.replayed.len() + confirmed) as u64;
            }
        }
        let redriven = self.trucks.redrive() + self.loans.redrive() + self.bank_events.redrive();
        lock(&self.report).redriven += redriven as u64;
    }

    fn replay(&self) -> Replay<MemoryTable, MemorySqs, MemorySqs, MemorySqs> {
        Replay {
            store: self.table.clone(),
            trucks: self.trucks.clone(),
            loans: self.loans.clone(),
            bank_events: self.bank_events.clone(),
            payment_link_hosts: vec![polis_must_sim::PAYMENT_HOST.into()],
            // Virtual hours pass quickly here and the operator sweeps within them; the age
            // rule itself is the replay's unit tests'.
            money_max_age: std::time::Duration::from_secs(365 * 86_400),
        }
    }

    /// What a bulk re-drive left for its own command: the operator looks at each item's
    /// plan and re-drives it, confirming what it leads to. Returns how many went.
    async fn confirm_each(
        &self,
        replay: &Replay<MemoryTable, MemorySqs, MemorySqs, MemorySqs>,
        report: &polis::services::replay::ReplayReport,
    ) -> usize {
        let mut went = 0;
        for (id, _) in &report.needs_its_own_command {
            let Ok(Ok(plan)) = replay.plan(id).await else { continue };
            let approval = Approval {
                by: OPERATOR.into(),
                confirm: plan.confirmation.clone(),
                override_reason: plan.needs_override.as_ref().map(|_| "checked with MUST".to_owned()),
                dry_run: false,
            };
            if let Ok(Ok(_)) = replay.redrive(id, &approval).await {
                went += 1;
            }
        }
        went
    }

    /// Whether anything is still on its way: queued messages, hooks MUST has to deliver.
    pub fn busy(&self) -> bool {
        let idle = self.trucks.is_empty() && self.loans.is_empty() && self.bank_events.is_empty();
        !idle || !lock(&self.hooks).is_empty()
    }

    /// What the partner's back office says of a held call (the call and attempt held): did it happen?
    async fn look_up(&self, process: &ProcessKey) -> Option<(String, u32, Resolution)> {
        match process {
            ProcessKey::Truck(_) => {
                let truck = self.table.load::<TruckProcess>(process).await.ok()??.value;
                let review = truck.outbox().review()?.clone();
                let (held, attempt) = truck.outbox().held_attempt()?;
                let held = held.to_owned();
                let effect = truck.outbox().find(&review.effect)?.clone();
                let call = must_call_of(&truck, effect.changing_call()?);
                let Flow::Truck { vin, .. } = lock(&self.open).get(&process.to_string())?.clone() else {
                    return None;
                };
                let theirs = self.must.model.changes(&vin).get(call).copied().unwrap_or(0);
                let ours = changes_made(&truck, call);
                Some((
                    held,
                    attempt,
                    if theirs > ours {
                        let reference = (call == "init")
                            .then(|| self.must.model.scorings(&vin).last().cloned())
                            .flatten();
                        Resolution::Happened { reference, number: None }
                    } else {
                        Resolution::DidNotHappen
                    },
                ))
            }
            ProcessKey::Loan(number) => {
                let loan = self.table.load::<LoanProcess>(process).await.ok()??.value;
                let (held, attempt) = loan.outbox().held_attempt()?;
                let held = held.to_owned();
                let policies = self.bima.model.policies_of(number);
                Some((
                    held,
                    attempt,
                    match policies.first() {
                        Some((id, policy_number)) => Resolution::Happened {
                            reference: Some(id.clone()),
                            number: Some(policy_number.clone()),
                        },
                        None => Resolution::DidNotHappen,
                    },
                ))
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // Invariants

    /// Checks every flow that has ended, and forgets it.
    pub async fn check_ended_flows(&self) {
        let open: Vec<(String, Flow)> =
            lock(&self.open).iter().map(|(k, f)| (k.clone(), f.clone())).collect();
        for (key, flow) in open {
            let Ok(process) = ProcessKey::parse(&key) else { continue };
            let ended = match &flow {
                Flow::Truck { vin, scenario } => match self.table.load::<TruckProcess>(&process).await {
                    Ok(Some(p)) if is_settled(&p.value) => {
                        self.check_truck(&key, &p.value, vin, scenario);
                        true
                    }
                    _ => false,
                },
                Flow::Loan => match self.table.load::<LoanProcess>(&process).await {
                    Ok(Some(p)) if is_settled(&p.value) => {
                        self.check_loan(&key, &p.value);
                        true
                    }
                    _ => false,
                },
            };
            if ended {
                lock(&self.open).remove(&key);
            }
        }
    }

    fn check_truck(&self, key: &str, truck: &TruckProcess, vin: &str, scenario: &polis_must_sim::Scenario) {
        let mut report = lock(&self.report);
        match truck.stage {
            TruckStage::Issued => report.trucks_issued += 1,
            TruckStage::Rejected => report.trucks_rejected += 1,
            _ => report.trucks_failed += 1,
        }
        report.trucks_corrected += u64::from(truck.corrections);
        report.trucks_retried += u64::from(truck.retries);
        drop(report);
        // Each of our calls reached MUST at most once (never sent twice), and every call we
        // count as made was (none believed without cause). A call that may have reached MUST
        // when the process ended (a hold dropped by a rejection) is allowed either way.
        let theirs = self.must.model.changes(vin);
        for call in ["init", "documents", "contract", "payment-link", "payment-invoice", "payment-order"] {
            let made = theirs.get(call).copied().unwrap_or(0);
            let (known, attempted) = (changes_made(truck, call), calls_attempted(truck, call));
            if made > attempted {
                self.violate(
                    key,
                    format!("MUST made {made} {call} change(s) from {attempted} call(s) of ours"),
                );
            }
            if made < known {
                self.violate(key, format!("we count {known} {call} change(s); MUST made {made}"));
            }
        }
        let last_word = match truck.stage {
            TruckStage::Issued => "truck.policy-issued",
            TruckStage::Rejected => "truck.rejected",
            TruckStage::Expired => "truck.expired",
            _ => "truck.failed",
        };
        lock(&self.notices).expected.push((key.to_owned(), last_word));
        if truck.stage == TruckStage::Issued {
            let Some(policy) = &truck.policy else {
                return self.violate(key, "issued without a policy".into());
            };
            let files = policy.files.len() + policy.pending_files.len();
            if files != scenario.policy_files.max(1) as usize {
                self.violate(
                    key,
                    format!("{files} policy files kept; MUST issued {}", scenario.policy_files),
                );
            }
            for file in &policy.files {
                if self.objects.object(&file.bucket, &file.key).is_none() {
                    self.violate(key, format!("archived file {} is not in the archive", file.key));
                }
            }
            let unarchivable = matches!(
                scenario.policy_file,
                polis_must_sim::PolicyFile::Missing | polis_must_sim::PolicyFile::Huge(_)
            );
            if !policy.pending_files.is_empty() && !unarchivable {
                self.violate(key, format!("{} policy file(s) left pending", policy.pending_files.len()));
            }
        }
    }

    fn check_loan(&self, key: &str, loan: &LoanProcess) {
        let policies = self.bima.model.policies_of(&loan.loan.loan_number);
        let mut report = lock(&self.report);
        match loan.stage {
            LoanStage::Issued => report.loans_issued += 1,
            LoanStage::Sold => report.loans_sold += 1,
            _ => report.loans_failed += 1,
        }
        drop(report);
        let sold = matches!(loan.stage, LoanStage::Issued | LoanStage::Sold);
        if policies.len() != usize::from(sold) {
            self.violate(key, format!("{} ended with {} BIMA policies", loan.stage_name(), policies.len()));
        }
        if let (Some(ours), Some((id, _))) = (&loan.policy, policies.first()) {
            if ours.policy_id.as_deref().is_some_and(|ours| ours != id) {
                self.violate(key, format!("our policy id differs from BIMA's {id}"));
            }
        }
        let last_word = match loan.stage {
            LoanStage::Issued => "bima.policy-issued",
            LoanStage::Sold => "bima.policy-sold",
            _ => "bima.failed",
        };
        lock(&self.notices).expected.push((key.to_owned(), last_word));
    }

    /// After the run: nothing left in any dead-letter queue or kept for a person but
    /// what nobody can fix (policy files MUST does not serve).
    pub async fn check_nothing_left(&self) {
        while !self.notices_queue.is_empty() {
            self.bank_reads_notices().await;
        }
        let notices = std::mem::take(&mut *lock(&self.notices));
        for (key, last_word) in &notices.expected {
            let kinds = notices.by_process.get(key).cloned().unwrap_or_default();
            if !kinds.iter().any(|k| k == last_word) {
                self.violate(key, format!("ended without a {last_word} notice (got {kinds:?})"));
            }
        }
        *lock(&self.notices) = notices;
        if let Some(watched) = self.config.watch.and_then(|k| ProcessKey::parse(k).ok()) {
            let record = match &watched {
                ProcessKey::Truck(_) => {
                    self.table.load::<TruckProcess>(&watched).await.ok().flatten().map(|p| json!(p.value))
                }
                ProcessKey::Loan(_) => {
                    self.table.load::<LoanProcess>(&watched).await.ok().flatten().map(|p| json!(p.value))
                }
            };
            eprintln!("{watched}: {}", serde_json::to_string_pretty(&record).unwrap_or_default());
            let sid =
                record.as_ref().and_then(|r| r["scoring_id"].as_str().map(str::to_owned)).unwrap_or_default();
            if let Some(Flow::Truck { vin, .. }) = lock(&self.open).get(&watched.to_string()) {
                eprintln!(
                    "MUST's changes for {vin}: {:?}; its contract: {:?}",
                    self.must.model.changes(vin),
                    self.must.model.contract_of(vin)
                );
            }
            if let Some(line) = lock(&self.hooks).get(&sid) {
                let waiting: Vec<&str> = line.hooks.iter().map(|h| h.path).collect();
                eprintln!("hooks MUST still has to deliver for {sid}: {waiting:?}");
            }
        }
        for (name, queue) in
            [("truck", &self.trucks), ("loan", &self.loans), ("bank-events", &self.bank_events)]
        {
            if let Some(dead) = queue.dead_letters().filter(|d| !d.is_empty()) {
                self.violate(name, format!("{} message(s) in the {name} dead-letter queue", dead.len()));
            }
        }
        // The operator's last sweep: whatever can be replayed (or released) is, and what
        // that sets going runs to its end.
        let replay = self.replay();
        if let Ok(outcome) = replay.routine(OPERATOR).await {
            let confirmed = self.confirm_each(&replay, &outcome).await;
            lock(&self.report).replayed += (outcome.replayed.len() + confirmed) as u64;
        }
        for _ in 0..10_000 {
            if !self.busy() {
                break;
            }
            self.step().await;
            tokio::time::advance(std::time::Duration::from_millis(500)).await;
        }
        for item in self.table.list_quarantined().await.unwrap_or_default() {
            if !matches!(item.origin, KeptOrigin::ArchivePending { .. }) {
                self.violate(
                    item.origin.source(),
                    format!("still kept: {} ({}): {:?} {}", item.id, item.reason, item.origin, item.body),
                );
            }
        }
        for (key, flow) in lock(&self.open).iter() {
            self.violate(key, format!("never ended ({flow:?})"));
        }
    }
}

/// Ended, with nothing left to do and nothing held.
fn is_settled<W: Workflow>(process: &W) -> bool {
    process.is_terminal() && process.outbox().review().is_none() && process.outbox().is_empty()
}

/// MUST's name for a changing call of ours (payments by the request's method).
fn must_call_of(truck: &TruckProcess, call: &str) -> &'static str {
    match call {
        "init" => "init",
        "documents" => "documents",
        "contract" => "contract",
        "payment-order" => "payment-order",
        _ => match truck.request.payment.method {
            polis::domain::truck::bank::PaymentMethod::Link => "payment-link",
            polis::domain::truck::bank::PaymentMethod::Invoice => "payment-invoice",
        },
    }
}

/// How many distinct calls of ours MUST counts as `call` may have reached it (done, or
/// with an unknown outcome at some point).
fn calls_attempted(truck: &TruckProcess, call: &str) -> u64 {
    let mut effects: Vec<&str> = truck
        .outbox()
        .calls()
        .iter()
        .filter(|c| {
            matches!(
                c.outcome,
                CallOutcome::Done
                    | CallOutcome::Ambiguous { .. }
                    | CallOutcome::Resolved { happened: true, .. }
            )
        })
        .filter(|c| effect_call(&c.effect).map(|k| must_call_of(truck, k)) == Some(call))
        .map(|c| c.effect.as_str())
        .collect();
    effects.sort_unstable();
    effects.dedup();
    effects.len() as u64
}

/// The changing call an effect key of the truck process stands for (`TruckEffect::key`).
fn effect_call(effect: &str) -> Option<&'static str> {
    match effect.split('-').next()? {
        "init" => Some("init"),
        "documents" => Some("documents"),
        "contract" => Some("contract"),
        "payment" if effect.starts_with("payment-order-") => Some("payment-order"),
        "payment" => Some("payment"),
        _ => None,
    }
}

/// How many calls MUST counts as `call` we know reached MUST (done, or answered "happened").
fn changes_made(truck: &TruckProcess, call: &str) -> u64 {
    let ours = match call {
        "payment-link" | "payment-invoice" if must_call_of(truck, "payment") == call => "payment",
        "payment-link" | "payment-invoice" => return 0,
        other => other,
    };
    u64::from(truck.outbox().calls_made(ours))
}

/// The bank's example truck request: every simulated request starts from it.
fn truck_request_example() -> Value {
    serde_json::from_str(include_str!("../../../shared/examples/bank/truck.policy-requested.json"))
        .unwrap_or_default()
}

/// Where the bank puts a request's document: under the prefix polis holds it to.
fn document_key(request_id: &str, name: &str) -> String {
    let request =
        polis::domain::ids::ProcessId::parse(request_id).expect("the simulation's request ids are valid");
    format!("{}{name}", polis::domain::truck::bank::documents_prefix(&request))
}
