//! One contract per port: the behaviour the services rely on, written once and run
//! against the in-memory stand-in (`polis::adapters::memory`) and against the real
//! adapter over the AWS emulator. The unit tests and the simulation may trust the
//! stand-ins only as far as these contracts reach.
//!
//! Where the emulator and AWS differ, the contract asserts only what both do and says
//! so (moto forgets a FIFO deduplication id once its message is deleted; AWS keeps it
//! five minutes; our consumers never rely on either).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use polis::adapters::dynamodb::Table;
use polis::adapters::kms::SealedTokens;
use polis::adapters::memory::{Delivery, MemorySqs, SqsConfig};
use polis::adapters::s3::Buckets;
use polis::domain::ids::{CustomerId, ProcessId, ScoringId};
use polis::domain::loan::bank::LoanBankEvent;
use polis::domain::loan::process::LoanProcess;
use polis::domain::must::hook::HookKind;
use polis::domain::products::ProductSummary;
use polis::domain::truck::bank::TruckBankEvent;
use polis::domain::truck::process::{TruckProcess, TruckStage};
use polis::domain::workflow::{Received, Workflow};
use polis::keys::{self, ProcessKey};
use polis::ports::{
    now_ms, EffectLog, EffectRecord, HookBody, HookStore, KeptOrigin, ObjectStore, OpenProcess,
    OpenProcesses, ProcessStore, ProductIndex, QuarantineStore, Quarantined, ReceivedHook, Recorded,
    SaveError, StoredObject, StoredProcess, TokenStore, TruckMessage, TruckQueue,
};
use polis_local_cloud::provision::{Provisioner, Resources};
use polis_local_cloud::template::Template;

/// How long a received message stays invisible in the contract stacks (the template's
/// `RunnerVisibilityTimeout`, in seconds).
pub const VISIBILITY_SECONDS: u64 = 1;
/// The runner queues' `maxReceiveCount` in the template.
pub const MAX_RECEIVES: u32 = 8;
/// Over DynamoDB's 400 KB item limit, with room for any encoding overhead.
const OVER_ITEM_LIMIT: usize = 420 * 1024;

/// A stack of our resources on the emulator, made from `template.yaml` for one test.
pub struct Emulator {
    pub table: Table,
    /// The table's own client and name, to read items as the console shows them.
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub table_name: String,
    pub buckets: Buckets,
    pub archive_bucket: String,
    pub truck_queue: RealFifo,
    /// The table's token items, sealed with the stack's tokens key.
    pub sealed_tokens: SealedTokens<Table>,
}

impl Emulator {
    /// Provisions the template's table, queues and buckets under a name of this test's own.
    pub async fn provision(test: &str) -> Emulator {
        let sdk = polis::adapters::config::aws().await;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let template = Template::load(&root.join("template.yaml")).expect("template.yaml loads");
        let stack = format!("ct-{test}-{}-{}", std::process::id(), now_ms() % 100_000).replace('_', "-");
        let parameters = BTreeMap::from([
            ("MustLogin".to_owned(), "contract".to_owned()),
            ("BimaClientId".to_owned(), "contract".to_owned()),
            ("RunnerVisibilityTimeout".to_owned(), VISIBILITY_SECONDS.to_string()),
        ]);
        let resources = Provisioner { sdk: &sdk, stack: &stack }
            .create(&template, parameters, "http://127.0.0.1:9")
            .await
            .expect("the emulator is running (make emulator) and takes the template's resources");
        let physical = |id: &str| resolve(&resources, id);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build(),
        );
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let tokens_key = resources
            .resolve(&serde_json::json!({"Fn::GetAtt": ["TokensKey", "Arn"]}))
            .expect("the tokens key");
        Emulator {
            sealed_tokens: SealedTokens::new(
                Table::new(dynamodb.clone(), physical("Table")),
                aws_sdk_kms::Client::new(&sdk),
                tokens_key,
            ),
            table: Table::new(dynamodb.clone(), physical("Table")),
            dynamodb,
            table_name: physical("Table"),
            buckets: Buckets::new(s3),
            archive_bucket: physical("ArchiveBucket"),
            truck_queue: RealFifo {
                port: polis::adapters::sqs::Queue::new(sqs.clone(), physical("TruckQueue")),
                url: physical("TruckQueue"),
                dead_letters: physical("TruckDeadLetterQueue"),
                sqs,
            },
        }
    }
}

fn resolve(resources: &Resources, logical_id: &str) -> String {
    resources.resolve(&serde_json::json!({ "Ref": logical_id })).expect("a provisioned resource")
}

/// The in-memory twin of the runner queue and its dead-letter queue, configured as the template.
pub fn memory_fifo() -> MemorySqs {
    let dead_letters =
        MemorySqs::new(SqsConfig { fifo: true, visibility_ms: 30_000, max_receives: None }, None);
    MemorySqs::new(SqsConfig::fifo(VISIBILITY_SECONDS * 1000, MAX_RECEIVES), Some(dead_letters))
}

// ----------------------------------------------------------------------------------------
// Fixtures

fn truck(request_id: &str, customer: &str) -> TruckProcess {
    let json = include_str!("../../../shared/examples/bank/truck.policy-requested.json");
    let TruckBankEvent::PolicyRequested { mut request, .. } =
        serde_json::from_str(json).expect("example parses")
    else {
        unreachable!("the example is a policy request")
    };
    request.request_id = ProcessId::parse(request_id).expect("a valid process id");
    request.customer_id = CustomerId::parse(customer).expect("a valid customer id");
    TruckProcess::start(*request)
}

fn loan(number: &str, customer: &str) -> LoanProcess {
    let json = include_str!("../../../shared/examples/bank/loan.issued.json");
    let LoanBankEvent::Issued(mut loan) = serde_json::from_str(json).expect("example parses");
    loan.loan_number = number.to_owned();
    loan.customer_id = CustomerId::parse(customer).expect("a valid customer id");
    LoanProcess::start(*loan)
}

/// Ids unique to one run of one contract (the emulator's stacks outlive a run).
fn unique(name: &str) -> String {
    // The counter: two calls within one millisecond are still two names.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{name}-{}-{}-{n}", std::process::id(), now_ms() % 1_000_000_000)
}

// ----------------------------------------------------------------------------------------
// DynamoDB-backed ports

/// Processes: created once, written only at the version read, aliases never moved, and
/// nothing over the item limit.
pub async fn process_store<S: ProcessStore>(store: &S) {
    let id = unique("REQ-CT");
    let mut process = truck(&id, &unique("CUST"));
    let key = process.key();

    assert!(store.load::<TruckProcess>(&key).await.expect("load").is_none(), "nothing before create");
    assert!(store.create(&process).await.expect("create"), "the first create writes");
    assert!(!store.create(&process).await.expect("create"), "a second create finds it");
    let loaded = store.load::<TruckProcess>(&key).await.expect("load").expect("created");
    assert_eq!(loaded.value, process, "the state reads back as written");
    assert_eq!(loaded.version, 1);

    process.scoring_id = Some(ScoringId::parse(&unique("sc")).expect("a scoring id"));
    let alias = keys::scoring_alias(process.scoring_id.as_ref().expect("set"));
    let v2 = store.save(&process, 1, std::slice::from_ref(&alias)).await.expect("a save at the version read");
    assert_eq!(v2, 2);
    assert!(matches!(store.save(&process, 1, &[]).await, Err(SaveError::Conflict)), "a stale version");
    assert_eq!(store.resolve_alias(&alias).await.expect("alias"), Some(key.clone()));
    assert_eq!(store.resolve_alias(&unique("ALIAS#none")).await.expect("alias"), None);

    // The alias is ours: another process may not take it, and its save changes nothing.
    let other = truck(&unique("REQ-CT2"), &unique("CUST"));
    assert!(store.create(&other).await.expect("create"));
    assert!(matches!(store.save(&other, 1, std::slice::from_ref(&alias)).await, Err(SaveError::Conflict)));
    let other_now = store.load::<TruckProcess>(&other.key()).await.expect("load").expect("there");
    assert_eq!(other_now.version, 1, "a refused alias leaves the process unwritten");
    assert_eq!(store.resolve_alias(&alias).await.expect("alias"), Some(key.clone()));
    // Saving with the alias it already has is fine.
    assert_eq!(store.save(&process, 2, &[alias]).await.expect("same alias again"), 3);

    // Writers racing at one version (the runner and a rebasing one, say): one wins, and the
    // losers leave no trace, not even the alias a loser's transaction would have added.
    let raced = truck(&unique("REQ-RACE"), &unique("CUST"));
    assert!(store.create(&raced).await.expect("create"));
    let racers: Vec<(TruckProcess, Vec<String>)> = (0..4)
        .map(|i| {
            let mut p = raced.clone();
            p.applied = vec![format!("racer-{i}")];
            let sc = ScoringId::parse(&unique("sc-race")).expect("a scoring id");
            // Two with a new alias (a transaction), two without (a conditional put).
            (p, if i % 2 == 0 { vec![keys::scoring_alias(&sc)] } else { vec![] })
        })
        .collect();
    let save = |i: usize| store.save(&racers[i].0, 1, &racers[i].1);
    let (r0, r1, r2, r3) = tokio::join!(save(0), save(1), save(2), save(3));
    let results = [r0, r1, r2, r3];
    let won: Vec<usize> = (0..4).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(won.len(), 1, "one writer wins a version: {results:?}");
    assert!(
        results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(SaveError::Conflict))),
        "the others conflict: {results:?}"
    );
    let now = store.load::<TruckProcess>(&raced.key()).await.expect("load").expect("there");
    assert_eq!((now.version, &now.value.applied), (2, &racers[won[0]].0.applied), "the winner's state");
    for (i, (_, aliases)) in racers.iter().enumerate() {
        for alias in aliases {
            let owner = (i == won[0]).then(|| raced.key());
            assert_eq!(store.resolve_alias(alias).await.expect("alias"), owner, "racer {i}'s alias");
        }
    }

    // Within the item limit a large state is kept; over it, nothing is written.
    let mut large = process.clone();
    large.applied = (0..1500).map(|i| format!("{i:0>100}")).collect();
    assert_eq!(store.save(&large, 3, &[]).await.expect("150 KB fits"), 4);
    let mut huge = large.clone();
    huge.applied = (0..OVER_ITEM_LIMIT / 100).map(|i| format!("{i:0>100}")).collect();
    assert!(matches!(store.save(&huge, 4, &[]).await, Err(SaveError::Infra(_))), "over 400 KB is refused");
    let after = store.load::<TruckProcess>(&key).await.expect("load").expect("there");
    assert_eq!((after.version, after.value.applied.len()), (4, 1500), "the refused write left no trace");
    let huge_new = {
        let mut p = huge.clone();
        p.id = ProcessId::parse(&unique("REQ-CT3")).expect("id");
        p
    };
    assert!(store.create(&huge_new).await.is_err(), "a new process over 400 KB is refused");

    // Loans are kept under their own key.
    let credit = loan(&unique("L"), &unique("CUST"));
    assert!(store.create(&credit).await.expect("create"));
    let back = store.load::<LoanProcess>(&credit.key()).await.expect("load").expect("created");
    assert_eq!(back.value, credit);
}

/// Open processes: listed by kind while not ended, longest in their stage first, only
/// those in it since before the time asked; a process that ends leaves the list.
pub async fn open_processes<S: ProcessStore + OpenProcesses>(store: &S) {
    // Stages entered at times of this run's own (the emulator's stack outlives a run).
    let base = now_ms() * 10;
    let cause = |id: &'static str| Received { from: "bank", kind: "test", id, at_ms: 0 };
    let old = truck(&unique("REQ-OPEN-A"), &unique("CUST")).begun(base + 1, &cause("a"));
    let new = truck(&unique("REQ-OPEN-B"), &unique("CUST")).begun(base + 2, &cause("b"));
    let mut ends = truck(&unique("REQ-OPEN-C"), &unique("CUST")).begun(base + 1, &cause("c"));
    let credit = loan(&unique("L-OPEN"), &unique("CUST")).begun(base + 1, &cause("d"));
    for process in [&old, &new, &ends] {
        assert!(store.create(process).await.expect("create"));
    }
    assert!(store.create(&credit).await.expect("create"));
    ends.stage = TruckStage::Rejected;
    ends.history.note_stage(base + 3, ends.stage_name());
    store.save(&ends, 1, &[]).await.expect("save");

    let ours = [old.key(), new.key(), ends.key(), credit.key()];
    let ours = &ours;
    let listed = |kind: &'static str, before: u64| async move {
        let all = store.open_before(kind, before, 100_000).await.expect("open processes");
        let mut since: Vec<u64> = all.iter().map(|p| p.since_ms).collect();
        since.dedup();
        assert!(since.windows(2).all(|w| w[0] <= w[1]), "longest in their stage first");
        all.into_iter().filter(|p| ours.contains(&p.process)).collect::<Vec<_>>()
    };
    let trucks = listed("truck", base + 10).await;
    let stage = old.stage_name();
    assert_eq!(
        trucks,
        vec![
            OpenProcess { process: old.key(), stage: stage.clone(), since_ms: base + 1 },
            OpenProcess { process: new.key(), stage, since_ms: base + 2 },
        ],
        "an ended process is not listed; loans are not trucks"
    );
    assert_eq!(listed("truck", base + 2).await.len(), 1, "only those in their stage since before the time");
    let loans = listed("loan", base + 10).await;
    assert_eq!(loans.iter().map(|p| &p.process).collect::<Vec<_>>(), vec![&credit.key()]);
    assert_eq!(store.open_before("truck", base + 10, 1).await.expect("open").len(), 1, "at most the limit");
}

/// Intents: the first attempt is fresh, a second within the lease sees it in flight,
/// one after the lease takes it over (once).
pub async fn effect_log<E: EffectLog>(log: &E) {
    let process = ProcessKey::Truck(ProcessId::parse(&unique("REQ-CT")).expect("id"));
    let lease_ms = 800;
    let first_started = now_ms();
    assert_eq!(log.begin(&process, "EFFECT#pay#1", lease_ms).await.expect("begin"), EffectRecord::Fresh);
    assert_eq!(log.begin(&process, "EFFECT#pay#1", lease_ms).await.expect("begin"), EffectRecord::InFlight);
    assert_eq!(log.begin(&process, "EFFECT#pay#2", lease_ms).await.expect("begin"), EffectRecord::Fresh);
    let other = ProcessKey::Truck(ProcessId::parse(&unique("REQ-CT-B")).expect("id"));
    assert_eq!(log.begin(&other, "EFFECT#pay#1", lease_ms).await.expect("begin"), EffectRecord::Fresh);
    tokio::time::sleep(Duration::from_millis(lease_ms + 200)).await;
    let EffectRecord::Retaken { started_ms } =
        log.begin(&process, "EFFECT#pay#1", lease_ms).await.expect("begin")
    else {
        panic!("an attempt older than the lease is taken over")
    };
    assert!(
        first_started <= started_ms && started_ms < first_started + 100,
        "it says when the dead attempt started"
    );
    assert_eq!(
        log.begin(&process, "EFFECT#pay#1", lease_ms).await.expect("begin"),
        EffectRecord::InFlight,
        "a taken-over lease is a fresh lease"
    );
}

/// Hooks: a delivery id is stored once, whatever the path (used again for another
/// scoringId or hook it is refused); a content id once per (scoringId, kind).
pub async fn hook_store<H: HookStore>(store: &H) {
    let scoring_id = ScoringId::parse(&unique("sc")).expect("id");
    let elsewhere = ScoringId::parse(&unique("sc")).expect("id");
    let hook = |sid: &ScoringId, kind, id: &str, by_content: bool, body: &str| ReceivedHook {
        scoring_id: sid.clone(),
        kind,
        hook_id: id.to_owned(),
        by_content,
        body: body.to_owned(),
        received_at_ms: now_ms(),
        replays: 0,
        requeued_at_ms: 0,
    };
    let delivery = unique("msg");
    let first = hook(&scoring_id, HookKind::Approved, &delivery, false, "{}");
    assert_eq!(store.record_hook(&first, HookBody::Digest).await.expect("record"), Recorded::New);
    assert_eq!(store.record_hook(&first, HookBody::Digest).await.expect("record"), Recorded::Duplicate);
    let redelivered = hook(&scoring_id, HookKind::Approved, &delivery, false, r#"{"other":"body"}"#);
    assert_eq!(
        store.record_hook(&redelivered, HookBody::Digest).await.expect("record"),
        Recorded::Duplicate,
        "same id"
    );
    for (sid, kind) in [(&scoring_id, HookKind::Rejected), (&elsewhere, HookKind::Approved)] {
        let replayed = hook(sid, kind, &delivery, false, "{}");
        assert_eq!(
            store.record_hook(&replayed, HookBody::Digest).await.expect("record"),
            Recorded::UsedElsewhere,
            "{kind:?}"
        );
    }
    let by_content = |sid: &ScoringId, kind| hook(sid, kind, "digest-1", true, "{}");
    assert_eq!(
        store
            .record_hook(&by_content(&scoring_id, HookKind::Approved), HookBody::Digest)
            .await
            .expect("record"),
        Recorded::New
    );
    assert_eq!(
        store
            .record_hook(&by_content(&scoring_id, HookKind::Approved), HookBody::Digest)
            .await
            .expect("record"),
        Recorded::Duplicate
    );
    for (sid, kind) in [(&scoring_id, HookKind::Rejected), (&elsewhere, HookKind::Approved)] {
        assert_eq!(
            store.record_hook(&by_content(sid, kind), HookBody::Digest).await.expect("record"),
            Recorded::New,
            "{kind:?}"
        );
    }
    let too_big = hook(&scoring_id, HookKind::Approved, &unique("msg"), false, &"x".repeat(OVER_ITEM_LIMIT));
    assert!(
        store.record_hook(&too_big, HookBody::Kept).await.is_err(),
        "a hook over 400 KB is an error, not a loss"
    );
    // A hook whose body travels in its message: its record keeps only the body's digest.
    assert_eq!(store.hook_body(&first.reference()).await.expect("read"), None);
    // A hook sent by reference: its body comes back from its record, whole (the first
    // delivery's), and a hook never recorded has none.
    let large = "\n".repeat(200 * 1024) + r#"{"insuranceCompany":"ingostrah"}"#;
    let stored = hook(&scoring_id, HookKind::Approved, &unique("digest"), true, &large);
    assert_eq!(store.record_hook(&stored, HookBody::Kept).await.expect("record"), Recorded::New);
    assert_eq!(store.hook_body(&stored.reference()).await.expect("read"), Some(large));
    let never = hook(&elsewhere, HookKind::Started, &unique("digest"), true, "{}");
    assert_eq!(store.hook_body(&never.reference()).await.expect("read"), None);
}

/// Kept items: once per id, listed oldest first, gone once released.
pub async fn quarantine_store<Q: QuarantineStore>(store: &Q) {
    let tag = unique("kept");
    let base = now_ms();
    let item = |n: u64, at: u64| {
        let origin =
            KeptOrigin::BankEvent { event_id: format!("{tag}-{n}"), event_type: "loan.issued".into() };
        Quarantined::new(origin, format!("reason {n}"), format!("{{\"n\":\"{tag}-{n}\"}}"), at)
    };
    let (late, early) = (item(1, base + 10), item(2, base));
    assert!(store.quarantine(&late).await.expect("keep"));
    assert!(store.quarantine(&early).await.expect("keep"));
    assert!(!store.quarantine(&late).await.expect("keep"), "the same input kept twice is one record");
    let ours = |all: Vec<Quarantined>| -> Vec<Quarantined> {
        all.into_iter().filter(|q| q.body.contains(&tag)).collect()
    };
    let listed = ours(store.list_quarantined().await.expect("list"));
    assert_eq!(listed, vec![early.clone(), late.clone()], "oldest first, verbatim");
    store.release(&early.id).await.expect("release");
    store.release(&early.id).await.expect("releasing twice is harmless");
    assert_eq!(ours(store.list_quarantined().await.expect("list")), vec![late]);
    // `Quarantined::new` cuts what it keeps to fit; an item built past it is refused whole.
    let origin = KeptOrigin::BankEvent { event_id: tag.clone(), event_type: "x".into() };
    let cut = Quarantined::new(origin.clone(), "big".into(), "y".repeat(OVER_ITEM_LIMIT), base);
    assert!(store.quarantine(&cut).await.expect("a cut item fits"));
    // The worst a caller can hand it: a body of three-byte characters and a reason as long.
    let worst = Quarantined::new(
        KeptOrigin::BankEvent { event_id: format!("{tag}-worst"), event_type: "x".into() },
        "ж".repeat(OVER_ITEM_LIMIT),
        "ж".repeat(OVER_ITEM_LIMIT),
        base,
    );
    assert!(store.quarantine(&worst).await.expect("whatever the input, the kept item fits"));
    let too_big = Quarantined { body: "y".repeat(OVER_ITEM_LIMIT), id: format!("{}-whole", cut.id), ..cut };
    assert!(store.quarantine(&too_big).await.is_err(), "over 400 KB is an error the caller sees");
}

/// Kept input (it may carry personal data) expires by TTL the configured days after it
/// came; a held call does not, for it waits for a person. (DynamoDB only: the in-memory
/// store keeps no TTL, nothing in a simulation lives long enough to need one.)
pub async fn kept_input_expires(e: &Emulator) {
    let days = 30;
    let table = Table::new(e.dynamodb.clone(), e.table_name.clone())
        .keeping_input_for(std::time::Duration::from_secs(days * 86_400));
    let at = now_ms();
    let tag = unique("ttl");
    let input = Quarantined::new(
        KeptOrigin::BankEvent { event_id: tag.clone(), event_type: "loan.issued".into() },
        "invalid".into(),
        format!("{{\"tag\":\"{tag}\"}}"),
        at,
    );
    let process = polis::keys::ProcessKey::Loan(tag.clone());
    let hold = Quarantined::new(
        KeptOrigin::Review { process, effect: "sale".into(), attempt: 1 },
        String::new(),
        String::new(),
        at,
    );
    for item in [&input, &hold] {
        assert!(table.quarantine(item).await.expect("kept"));
    }
    let expires = |item: &Quarantined| {
        let (dynamodb, name, id) = (e.dynamodb.clone(), e.table_name.clone(), item.id.clone());
        async move {
            let got = dynamodb
                .get_item()
                .table_name(name)
                .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(polis::keys::kept_key(&id)))
                .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(polis::keys::KEPT_SK.into()))
                .send()
                .await
                .expect("read");
            got.item
                .expect("stored")
                .get("expiresAt")
                .and_then(|v| v.as_n().ok())
                .map(|n| n.parse::<u64>().unwrap())
        }
    };
    assert_eq!(expires(&input).await, Some((at + days * 86_400_000) / 1000));
    assert_eq!(expires(&hold).await, None, "a held call waits for a person");
}

/// Tokens: the last one saved is the one loaded.
/// A process that ended expires `PROCESS_RETENTION_DAYS` after it ended (TTL); one still
/// running never does, and a later write to an ended one does not move its end.
pub async fn ended_processes_expire(e: &Emulator) {
    const RETENTION: Duration = Duration::from_secs(30 * 86_400);
    let table = e.table.clone().keeping_ended_processes_for(RETENTION);
    let expires_at = |key: String| async move {
        let item = e
            .dynamodb
            .get_item()
            .table_name(&e.table_name)
            .key("pk", AttributeValue::S(key))
            .key("sk", AttributeValue::S(polis::keys::PROCESS_SK.to_owned()))
            .send()
            .await
            .expect("get")
            .item
            .expect("the process");
        item.get("expiresAt").and_then(|v| v.as_n().ok()).map(|n| n.parse::<u64>().expect("a number"))
    };
    let customer = unique("CUST-TTL");
    let running = loan(&unique("L-RUN"), &customer);
    assert!(table.create(&running).await.expect("create"));
    assert_eq!(expires_at(running.key().to_string()).await, None, "a running process does not expire");

    let mut ended = loan(&unique("L-END"), &customer);
    let ended_at_ms = now_ms() - 86_400_000;
    ended.stage = polis::domain::loan::process::LoanStage::Failed;
    ended.history.note_stage(ended_at_ms, ended.stage_name());
    assert!(table.create(&ended).await.expect("create"));
    let expected = ended_at_ms / 1000 + RETENTION.as_secs();
    assert_eq!(expires_at(ended.key().to_string()).await, Some(expected));
    table.save(&ended, 1, &[]).await.expect("a later write");
    assert_eq!(expires_at(ended.key().to_string()).await, Some(expected), "the end does not move");
}

/// The customer index, as anyone allowed to query it sees it: keys and the product's summary,
/// never the process's state (names, passports, the vehicle).
pub async fn customer_index_holds_only_summaries(e: &Emulator) {
    let customer = unique("CUST-IDX");
    assert!(e.table.create(&truck(&unique("REQ-IDX"), &customer)).await.expect("create"));
    let customer_id = CustomerId::parse(&customer).expect("id");
    let out = e
        .dynamodb
        .query()
        .table_name(&e.table_name)
        .index_name(polis::keys::GSI1)
        .key_condition_expression("gsi1pk = :c")
        .expression_attribute_values(":c", AttributeValue::S(polis::keys::customer_index(&customer_id)))
        .send()
        .await
        .expect("query");
    let item = out.items().first().expect("the customer's product");
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["gsi1pk", "gsi1sk", "pk", "product", "sk"]);
}

/// A hook's record as the table holds it: the body's digest always, the body only when the
/// queue's message refers to the record.
pub async fn hook_records_keep_a_digest(e: &Emulator) {
    let scoring_id = ScoringId::parse(&unique("S-DIGEST")).expect("id");
    let body = r#"{"holder":"a customer's name"}"#;
    let hook = |id: &str| ReceivedHook {
        scoring_id: scoring_id.clone(),
        kind: HookKind::Approved,
        hook_id: id.to_owned(),
        by_content: false,
        body: body.to_owned(),
        received_at_ms: now_ms(),
        replays: 0,
        requeued_at_ms: 0,
    };
    let (in_message, by_reference) = (hook(&unique("msg")), hook(&unique("msg")));
    e.table.record_hook(&in_message, HookBody::Digest).await.expect("record");
    e.table.record_hook(&by_reference, HookBody::Kept).await.expect("record");
    for (recorded, keeps_body) in [(&in_message, false), (&by_reference, true)] {
        let (pk, sk) = polis::keys::hook_key(&recorded.reference());
        let item = e
            .dynamodb
            .get_item()
            .table_name(&e.table_name)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk))
            .send()
            .await
            .expect("get")
            .item
            .expect("the record");
        assert_eq!(item.get("bodySha256").and_then(|v| v.as_s().ok()), Some(&recorded.body_digest()));
        assert_eq!(item.contains_key("body"), keeps_body, "{item:?}");
    }
}

/// A sealed token reads back as saved, while the table's item holds neither it nor anything
/// that opens as another token's.
pub async fn sealed_tokens(e: &Emulator) {
    token_store(&e.sealed_tokens).await;
    let name = unique("must");
    let secret = "token-that-must-not-be-readable-from-the-table";
    e.sealed_tokens.save_token(&name, secret, 5_000).await.expect("save");
    let (stored, _) = e.table.load_token(&name).await.expect("load").expect("stored");
    assert!(!stored.contains(secret), "the table holds the token in clear: {stored}");
    // The ciphertext is bound to its name: copied under another token's name it does not open.
    let other = unique("bima");
    e.table.save_token(&other, &stored, 5_000).await.expect("copy");
    assert_eq!(e.sealed_tokens.load_token(&other).await.expect("load"), None);
    // A token stored in clear (by hand, or before sealing) is not trusted.
    e.table.save_token(&other, secret, 5_000).await.expect("clear");
    assert_eq!(e.sealed_tokens.load_token(&other).await.expect("load"), None);
}

pub async fn token_store<T: TokenStore>(store: &T) {
    let name = unique("must");
    assert_eq!(store.load_token(&name).await.expect("load"), None);
    store.save_token(&name, "t1", 1_000).await.expect("save");
    store.save_token(&name, "t2", 2_000).await.expect("save");
    assert_eq!(store.load_token(&name).await.expect("load"), Some(("t2".into(), 2_000)));
}

/// A customer's products: every one exactly once over the pages, in one order, at most
/// `limit` a page, other customers' never.
pub async fn product_index<S: ProcessStore + ProductIndex>(store: &S) {
    let customer = unique("CUST");
    let stranger = unique("CUST-X");
    let mut expected = Vec::new();
    for n in 0..3 {
        let t = truck(&unique(&format!("REQ-P{n}")), &customer);
        let l = loan(&unique(&format!("L{n}")), &customer);
        assert!(store.create(&t).await.expect("create"));
        assert!(store.create(&l).await.expect("create"));
        expected.push(t.key().to_string());
        expected.push(l.key().to_string());
    }
    assert!(store.create(&truck(&unique("REQ-PX"), &stranger)).await.expect("create"));
    expected.sort();

    let customer_id = CustomerId::parse(&customer).expect("id");
    let mut seen = Vec::new();
    let mut after = None;
    for _ in 0..10 {
        let page = store.customer_products(&customer_id, 4, after).await.expect("a page");
        assert!(page.items.len() <= 4, "a page holds at most the limit");
        seen.extend(page.items.iter().map(|p| match p {
            ProductSummary::Truck(t) => ProcessKey::Truck(t.process_id.clone()).to_string(),
            ProductSummary::Loan(l) => ProcessKey::Loan(l.loan_number.clone()).to_string(),
        }));
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    assert!(after.is_none(), "the pages end");
    assert_eq!(seen, expected, "each product once, in key order");
}

// ----------------------------------------------------------------------------------------
// S3

/// Archive writes: a free key is written; a taken one is left as it is and described.
pub async fn object_store<O: ObjectStore>(store: &O, bucket: &str) {
    let key = format!("{}/policy.pdf", unique("ct"));
    let first = b"%PDF-1.7 first".to_vec();
    let written = store.put_new(bucket, &key, first.clone(), "application/pdf", "abc123").await.expect("put");
    assert_eq!(written, None, "a free key is written");
    let again =
        store.put_new(bucket, &key, b"second".to_vec(), "application/pdf", "def456").await.expect("put");
    assert_eq!(
        again,
        Some(StoredObject { size: first.len() as u64, sha256: Some("abc123".into()) }),
        "a taken key is described, not overwritten"
    );
    assert_eq!(store.get(bucket, &key).await.expect("get"), first);
    assert!(store.get(bucket, &format!("{key}.missing")).await.is_err(), "a missing object is an error");
}

// ----------------------------------------------------------------------------------------
// SQS: what the runners' event source mapping sees of a FIFO queue

/// A message as a consumer got it.
#[derive(Debug, Clone)]
pub struct Got {
    pub body: String,
    pub group: Option<String>,
    pub receive_count: u32,
    pub receipt: String,
}

/// The consumer's side of a FIFO queue (Lambda's poller, in the cloud).
pub trait FifoUnderTest: TruckQueue + Sync {
    fn receive(&self, max: usize) -> impl Future<Output = Vec<Got>> + Send;
    fn delete(&self, got: &Got) -> impl Future<Output = ()> + Send;
    /// Bodies in the dead-letter queue.
    fn dead_letters(&self) -> impl Future<Output = Vec<String>> + Send;
}

/// The runner queue on the emulator, through our adapter for sending.
pub struct RealFifo {
    port: polis::adapters::sqs::Queue,
    sqs: aws_sdk_sqs::Client,
    url: String,
    dead_letters: String,
}

impl TruckQueue for RealFifo {
    async fn enqueue(
        &self,
        message: &TruckMessage,
        group: &str,
        dedup_id: &str,
    ) -> Result<(), polis::ports::InfraError> {
        self.port.enqueue(message, group, dedup_id).await
    }
}

async fn receive_real(sqs: &aws_sdk_sqs::Client, url: &str, max: usize) -> Vec<Got> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max as i32)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .wait_time_seconds(0)
        .send()
        .await
        .expect("receive");
    out.messages()
        .iter()
        .map(|m| {
            let attribute = |name| m.attributes().and_then(|a| a.get(&name)).cloned();
            Got {
                body: m.body().unwrap_or_default().to_owned(),
                group: attribute(MessageSystemAttributeName::MessageGroupId),
                receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0),
                receipt: m.receipt_handle().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

impl FifoUnderTest for RealFifo {
    async fn receive(&self, max: usize) -> Vec<Got> {
        receive_real(&self.sqs, &self.url, max).await
    }

    async fn delete(&self, got: &Got) {
        self.sqs
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&got.receipt)
            .send()
            .await
            .expect("delete");
    }

    async fn dead_letters(&self) -> Vec<String> {
        receive_real(&self.sqs, &self.dead_letters, 10).await.into_iter().map(|g| g.body).collect()
    }
}

fn got(d: Delivery) -> Got {
    Got { body: d.body, group: d.group, receive_count: d.receive_count, receipt: d.receipt.to_string() }
}

impl FifoUnderTest for MemorySqs {
    async fn receive(&self, max: usize) -> Vec<Got> {
        MemorySqs::receive(self, max).into_iter().map(got).collect()
    }

    async fn delete(&self, got: &Got) {
        MemorySqs::delete(self, got.receipt.parse().expect("a memory receipt"));
    }

    async fn dead_letters(&self) -> Vec<String> {
        let dlq = MemorySqs::dead_letters(self).expect("a dead-letter queue");
        dlq.receive(10).into_iter().map(|d| d.body).collect()
    }
}

fn drive(n: &str) -> TruckMessage {
    TruckMessage::Drive { process_id: ProcessId::parse(n).expect("id") }
}

fn process_of(got: &Got) -> String {
    match serde_json::from_str(&got.body).expect("a message we sent") {
        TruckMessage::Drive { process_id } => process_id.to_string(),
        other => panic!("only drives were sent, got {other:?}"),
    }
}

/// Order and exclusivity: a group's messages come in send order, and while one receive
/// holds some of a group, no other receive gets any of it.
pub async fn fifo_order<Q: FifoUnderTest>(queue: &Q) {
    for (n, group) in [("A-1", "a"), ("A-2", "a"), ("B-1", "b"), ("A-3", "a"), ("B-2", "b")] {
        queue.enqueue(&drive(n), group, n).await.expect("send");
    }
    queue.enqueue(&drive("A-1"), "a", "A-1").await.expect("a repeat while queued is accepted, and dropped");

    let first = queue.receive(1).await;
    assert_eq!(first.iter().map(process_of).collect::<Vec<_>>(), ["A-1"]);
    assert_eq!(first[0].group.as_deref(), Some("a"));
    let second = queue.receive(10).await;
    assert_eq!(
        second.iter().map(process_of).collect::<Vec<_>>(),
        ["B-1", "B-2"],
        "group a is held by the first receive"
    );
    queue.delete(&first[0]).await;
    let third = queue.receive(10).await;
    assert_eq!(third.iter().map(process_of).collect::<Vec<_>>(), ["A-2", "A-3"], "in order, no repeat");
    for got in second.iter().chain(&third) {
        queue.delete(got).await;
    }
    assert!(queue.receive(10).await.is_empty(), "all consumed");
}

/// Redelivery: a message not deleted comes back after the visibility timeout, counted;
/// received `MAX_RECEIVES` times without success, it moves to the dead-letter queue.
pub async fn fifo_redelivery<Q: FifoUnderTest>(queue: &Q) {
    queue.enqueue(&drive("R-1"), "r", "R-1").await.expect("send");
    let mut counts = Vec::new();
    for _ in 0..MAX_RECEIVES {
        let got = queue.receive(10).await;
        assert_eq!(got.len(), 1, "the message is back");
        counts.push(got[0].receive_count);
        assert!(queue.receive(10).await.is_empty(), "invisible while held");
        tokio::time::sleep(Duration::from_millis(VISIBILITY_SECONDS * 1000 + 150)).await;
    }
    assert_eq!(counts, (1..=MAX_RECEIVES).collect::<Vec<_>>(), "each receive counted");
    assert!(queue.receive(10).await.is_empty(), "received too often: not delivered again");
    let dead = queue.dead_letters().await;
    assert_eq!(dead.len(), 1, "it waits in the dead-letter queue");
    assert!(dead[0].contains("R-1"));
}
