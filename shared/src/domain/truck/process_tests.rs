use proptest::prelude::*;

use super::*;
use crate::domain::must::hook::HookKind;
use crate::domain::truck::bank::{PaymentChoice, TruckBankEvent};
use crate::domain::validation::FieldError;
use crate::domain::workflow::{CallOutcome, CallRecord, EffectSpec};

fn request(method: PaymentMethod, preferred: Option<&str>) -> TruckPolicyRequest {
    let json = include_str!("../../../examples/bank/truck.policy-requested.json");
    let TruckBankEvent::PolicyRequested { request, .. } = serde_json::from_str(json).unwrap() else {
        unreachable!("the example is a policy request")
    };
    let mut request = *request;
    request.payment =
        PaymentChoice { method, preferred_insurer: preferred.map(|p| Insurer::parse(p).unwrap()) };
    request
}

fn ins(code: &str) -> Insurer {
    Insurer::parse(code).unwrap()
}

/// A hook with a delivery id.
fn hook(id: &str, payload: HookPayload) -> TruckEvent {
    TruckEvent::Hook { id: id.into(), by_content: false, payload, received_at_ms: 0, scoring_id: None }
}

/// A hook known only by its content (MUST sent no delivery id).
fn content_hook(digest: &str, payload: HookPayload) -> TruckEvent {
    TruckEvent::Hook { id: digest.into(), by_content: true, payload, received_at_ms: 0, scoring_id: None }
}

fn file(blob: &str) -> ArchivedFile {
    ArchivedFile {
        blob_id: blob.into(),
        bucket: "bucket".into(),
        key: format!("k/{blob}.pdf"),
        size: 10,
        sha256: "00".into(),
        content_type: "application/pdf".into(),
    }
}

/// The result the runner would apply after performing `effect` successfully.
fn success(effect: &TruckEffect) -> Option<TruckEvent> {
    match effect {
        TruckEffect::InitScoring { scoring } => Some(TruckEvent::Initialized {
            scoring_id: ScoringId::parse(&format!("sc-{}", scoring.max(&1))).unwrap(),
        }),
        TruckEffect::SubmitDocuments { round, .. } => Some(TruckEvent::DocumentsSubmitted { round: *round }),
        TruckEffect::SubmitContract { round, .. } => Some(TruckEvent::ContractSubmitted { round: *round }),
        TruckEffect::RequestPayment { insurer, .. } => {
            Some(TruckEvent::PaymentRequested { insurer: insurer.clone() })
        }
        TruckEffect::ArchiveFiles { purpose, files } => Some(TruckEvent::FilesArchived {
            purpose: *purpose,
            files: files.iter().map(|f| file(&f.source_id())).collect(),
            pending: Vec::new(),
        }),
        TruckEffect::SubmitPaymentOrder { .. } => Some(TruckEvent::PaymentOrderSubmitted),
        TruckEffect::Notify(_) => None,
    }
}

/// Plays the step runner: performs every runnable effect successfully, feeding its
/// result back, and collects the notifications it would send.
fn run_effects(p: &mut TruckProcess, sent: &mut Vec<TruckNotification>) {
    while let Some(effect) = p.outbox.next().cloned() {
        if let TruckEffect::Notify(n) = &effect {
            sent.push(n.clone());
        }
        p.outbox.complete(&effect.key(), true);
        if let Some(event) = success(&effect) {
            let outcome = p.apply(event);
            assert!(!matches!(outcome, Outcome::Rejected(_)), "{outcome:?}");
        }
    }
}

fn started_with(request: TruckPolicyRequest) -> (TruckProcess, Vec<TruckNotification>) {
    let mut p = TruckProcess::start(request);
    let mut sent = Vec::new();
    run_effects(&mut p, &mut sent);
    (p, sent)
}

fn started() -> (TruckProcess, Vec<TruckNotification>) {
    started_with(request(PaymentMethod::Link, None))
}

fn feed(p: &mut TruckProcess, sent: &mut Vec<TruckNotification>, events: Vec<TruckEvent>) {
    for e in events {
        p.apply(e);
        run_effects(p, sent);
    }
}

fn blob(id: &str) -> MustFile {
    MustFile::from(crate::domain::ids::BlobId::parse(id).unwrap())
}

fn happy_hooks() -> Vec<TruckEvent> {
    vec![
        hook("h1", HookPayload::DocumentsTypesRequired { type_ids: vec![11, 12] }),
        hook("h2", HookPayload::DocumentsUploadCompleted),
        hook("h3", HookPayload::ContractUpdateCompleted { prefilled_contract: None }),
        hook("h4", HookPayload::Started { insurers: vec![ins("ingostrah")] }),
        hook("h5", HookPayload::Approved { insurer: ins("ingostrah"), premium: Some(1000.0) }),
        hook("h6", HookPayload::DraftIssued { insurer: None, files: vec![blob("d1")] }),
        hook("h7", HookPayload::PaymentLinkGenerated { insurer: None, url: "https://pay/x".into() }),
        hook("h8", HookPayload::PolicyIsPaid { insurer: None }),
        hook(
            "h9",
            HookPayload::PolicyIssued {
                insurer: None,
                policy_number: Some("XXX 1".into()),
                files: vec![blob("p1")],
            },
        ),
    ]
}

fn kinds(sent: &[TruckNotification]) -> Vec<&'static str> {
    sent.iter().map(|n| n.notice.kind()).collect()
}

const HAPPY: [&str; 4] = ["truck.offer", "truck.payment-link-ready", "truck.paid", "truck.policy-issued"];

#[test]
fn happy_path_issues_and_archives_the_policy_and_its_draft() {
    let (mut p, mut sent) = started();
    assert_eq!(p.stage, TruckStage::Preparing);
    feed(&mut p, &mut sent, happy_hooks());
    assert_eq!(p.stage, TruckStage::Issued);
    assert!(p.outbox.is_empty());
    assert_eq!(p.contract, Contract::Accepted { round: 1 });
    assert_eq!(p.documents, Documents::Accepted);
    assert_eq!(p.chosen, Some(ins("ingostrah")));
    assert_eq!(p.policy.as_ref().unwrap().files, [file("p1")]);
    assert_eq!(p.draft_files, [file("d1")]);
    assert_eq!(kinds(&sent), HAPPY);
    let TruckNotice::PolicyIssued { drafts, pending_files, .. } = &sent[3].notice else { panic!() };
    assert_eq!((drafts.as_slice(), pending_files.is_empty()), (&[file("d1")][..], true));
    assert!(sent[3].event_id.starts_with("REQ-2026-0001-"));
}

#[test]
fn the_contract_goes_once_the_documents_are_recognised_not_when_associated_or_accepted() {
    let (mut p, _) = started();
    p.apply(hook("h1", HookPayload::DocumentsTypesRequired { type_ids: vec![11] }));
    assert_eq!(p.outbox.pending(), [TruckEffect::SubmitDocuments { round: 1, type_ids: vec![11] }]);
    p.outbox.complete("documents-1", true);
    p.apply(TruckEvent::DocumentsSubmitted { round: 1 });
    assert!(p.outbox.is_empty(), "associated is not accepted (changelog v3: recognition may follow)");
    p.apply(hook("h2", HookPayload::DocumentsUploadCompleted));
    assert!(p.outbox.is_empty(), "accepted: recognition runs now and would overwrite our card");
    assert_eq!((p.stage_name().as_str(), &p.contract), ("awaiting-recognition", &Contract::NotSent));
    let recognised = serde_json::json!({"engineNumber": "5738777"});
    p.apply(hook("h3", HookPayload::ContractUpdateCompleted { prefilled_contract: Some(recognised) }));
    assert_eq!(p.outbox.pending(), [TruckEffect::SubmitContract { round: 1, scoring: 1 }]);
    assert_eq!(p.stage, TruckStage::Preparing, "the wait is over");
    assert_eq!(p.contract_card()["engineNumber"], "5738777");
}

#[test]
fn a_recognition_that_does_not_come_in_time_leaves_our_card_to_go_alone_once() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..2].to_vec());
    assert_eq!(p.stage, TruckStage::AwaitingRecognition);
    let overdue = |id: &str| TruckEvent::RecognitionOverdue { id: id.into(), since_ms: 7 };
    assert_eq!(p.apply(overdue("recognition-overdue-7")), Outcome::Advanced);
    assert_eq!(p.outbox.pending(), [TruckEffect::SubmitContract { round: 1, scoring: 1 }]);
    assert!(p.prefilled_contract.is_none());
    assert_eq!(p.apply(overdue("recognition-overdue-7")), Outcome::Duplicate, "the same wait, once");
    assert!(matches!(p.apply(overdue("recognition-overdue-8")), Outcome::Ignored(_)), "not waiting now");
    run_effects(&mut p, &mut sent);
    assert_eq!(p.contract, Contract::Submitted { round: 1 });
    // MUST scores on the card it holds: ours.
    feed(&mut p, &mut sent, happy_hooks()[3..].to_vec());
    assert_eq!((p.stage, &p.contract), (TruckStage::Issued, &Contract::Accepted { round: 1 }));
    let (mut early, _) = started();
    assert!(matches!(early.apply(overdue("recognition-overdue-1")), Outcome::Ignored(_)), "nothing awaited");
}

#[test]
fn a_recognised_contract_before_ours_fills_our_gaps_and_ours_is_sent() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..1].to_vec());
    let recognised = serde_json::json!({"vin": "RECOGNISED0000001", "engineNumber": "5738777"});
    p.apply(hook(
        "c0",
        HookPayload::ContractUpdateCompleted { prefilled_contract: Some(recognised.clone()) },
    ));
    assert_eq!(
        p.outbox.pending(),
        [TruckEffect::SubmitContract { round: 1, scoring: 1 }],
        "recognition done: ours goes"
    );
    let card = p.contract_card();
    assert_eq!(card["vin"], "WMA06XZZ8GP000001", "the bank's VIN wins");
    assert_eq!(card["engineNumber"], "5738777", "recognition fills the gap");
    run_effects(&mut p, &mut sent);
    feed(&mut p, &mut sent, happy_hooks()[1..].to_vec());
    assert_eq!(p.contract, Contract::Accepted { round: 1 });
    assert_eq!(p.stage, TruckStage::Issued);
}

#[test]
fn hooks_that_overtake_the_answer_to_our_card_are_kept_for_when_it_comes() {
    // Found by the simulation: MUST acknowledged our card, then recognition overwrote it,
    // both before our runner (which died after the call) knew the call had gone through.
    // Ignored then, the process waited for MUST and MUST for our card again.
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..2].to_vec());
    p.apply(overdue_recognition());
    while let Some(TruckEffect::Notify(_)) = p.outbox.next().cloned() {
        let key = p.outbox.next().map(EffectSpec::key).unwrap_or_default();
        p.outbox.complete(&key, true);
    }
    let mut pending = p.clone();
    // Our card is in flight (not completed): MUST's hooks come first.
    pending.apply(hook("a", HookPayload::ContractUpdateCompleted { prefilled_contract: None }));
    let overwrite = serde_json::json!({"vin": "RECOGNISED0000001", "owner": {"name": "someone else"}});
    pending.apply(hook("b", HookPayload::ContractUpdateCompleted { prefilled_contract: Some(overwrite) }));
    assert!(pending.outbox.is_pending("contract-1"));
    // The attempt that died is found: its outcome unknown, but MUST's hooks prove it.
    let uncertain =
        TruckEvent::CallUncertain { effect: "contract-1".into(), at_ms: 9, detail: "died".into() };
    assert_eq!(pending.apply(uncertain), Outcome::Advanced);
    assert!(pending.outbox.review().is_none(), "not held: proven already");
    assert_eq!(pending.outbox.calls_made("contract"), 1);
    assert_eq!(
        pending.outbox.pending(),
        [TruckEffect::SubmitContract { round: 2, scoring: 1 }],
        "overwritten: ours goes again"
    );
    // Acknowledged only: accepted when the answer comes.
    let mut acked = p.clone();
    acked.apply(hook("a", HookPayload::ContractUpdateCompleted { prefilled_contract: None }));
    assert_eq!(acked.apply(TruckEvent::ContractSubmitted { round: 1 }), Outcome::Advanced);
    assert_eq!(acked.contract, Contract::Accepted { round: 1 });
    let _ = sent;
}

/// The watchdog's event when recognition did not come in time.
fn overdue_recognition() -> TruckEvent {
    TruckEvent::RecognitionOverdue { id: "recognition-overdue-1".into(), since_ms: 1 }
}

#[test]
fn a_recognised_contract_after_ours_does_not_silently_replace_it() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..2].to_vec());
    feed(&mut p, &mut sent, vec![overdue_recognition()]);
    assert_eq!(p.contract, Contract::Submitted { round: 1 });
    let overwrite = serde_json::json!({"vin": "RECOGNISED0000001", "owner": {"name": "someone else"}});
    feed(
        &mut p,
        &mut sent,
        vec![hook(
            "c1",
            HookPayload::ContractUpdateCompleted { prefilled_contract: Some(overwrite.clone()) },
        )],
    );
    assert_eq!(p.contract, Contract::Submitted { round: 2 }, "ours went again");
    assert_eq!(p.contract_card()["vin"], "WMA06XZZ8GP000001");
    feed(
        &mut p,
        &mut sent,
        vec![hook("c2", HookPayload::ContractUpdateCompleted { prefilled_contract: None })],
    );
    assert_eq!(p.contract, Contract::Accepted { round: 2 });
    // Recognition overwriting ours after MUST had accepted it: ours goes again too.
    let (mut r, mut sent) = started();
    feed(&mut r, &mut sent, happy_hooks()[..2].to_vec());
    feed(&mut r, &mut sent, vec![overdue_recognition(), happy_hooks()[2].clone()]);
    assert_eq!(r.contract, Contract::Accepted { round: 1 });
    let late = serde_json::json!({"vin": "RECOGNISED0000009"});
    feed(
        &mut r,
        &mut sent,
        vec![hook("late", HookPayload::ContractUpdateCompleted { prefilled_contract: Some(late) })],
    );
    assert_eq!(r.contract, Contract::Submitted { round: 2 });
    let (mut q, mut sent) = started();
    feed(&mut q, &mut sent, happy_hooks()[..2].to_vec());
    feed(&mut q, &mut sent, vec![overdue_recognition()]);
    for (i, id) in ["o1", "o2", "o3"].iter().enumerate() {
        let again = serde_json::json!({"vin": format!("RECOGNISED000000{i}")});
        feed(
            &mut q,
            &mut sent,
            vec![hook(id, HookPayload::ContractUpdateCompleted { prefilled_contract: Some(again) })],
        );
    }
    assert_eq!(
        q.contract,
        Contract::Accepted { round: CONTRACT_ROUNDS },
        "sent at most {CONTRACT_ROUNDS} times in all"
    );
}

#[test]
fn missing_documents_are_asked_from_the_bank_then_all_sent() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, vec![hook("h1", HookPayload::DocumentsTypesRequired { type_ids: vec![11, 22] })]);
    assert!(matches!(&p.documents, Documents::NeedsFix { problems } if problems[0].type_id == 22));
    assert_eq!(kinds(&sent), ["truck.documents-to-fix"]);
    let passport = BankDocument { type_id: 22, s3_key: "in/pass.pdf".into(), file_name: "pass.pdf".into() };
    p.apply(TruckEvent::DocumentsCorrected { id: "b1".into(), documents: vec![passport] });
    assert_eq!(p.outbox.pending(), [TruckEffect::SubmitDocuments { round: 1, type_ids: vec![11, 22] }]);
}

#[test]
fn the_same_upload_failed_body_in_a_later_round_is_new_and_a_repeat_in_the_same_round_is_not() {
    let (mut p, mut sent) = started();
    feed(
        &mut p,
        &mut sent,
        vec![content_hook("t", HookPayload::DocumentsTypesRequired { type_ids: vec![11, 12] })],
    );
    let failed = || {
        content_hook(
            "same-digest",
            HookPayload::DocumentsUploadFailed {
                problems: vec![DocumentProblem { type_id: 11, reason: Some("unreadable".into()) }],
            },
        )
    };
    feed(&mut p, &mut sent, vec![failed()]);
    assert_eq!(p.apply(failed()), Outcome::Duplicate, "MUST's retry of the hook, before our next call");
    assert_eq!(kinds(&sent), ["truck.documents-to-fix"]);
    let sts = BankDocument { type_id: 11, s3_key: "in/sts2.pdf".into(), file_name: "sts2.pdf".into() };
    feed(
        &mut p,
        &mut sent,
        vec![TruckEvent::DocumentsCorrected { id: "b1".into(), documents: vec![sts.clone()] }],
    );
    assert_eq!(p.documents, Documents::Submitted { round: 2 });
    feed(&mut p, &mut sent, vec![failed()]);
    assert_eq!(kinds(&sent), ["truck.documents-to-fix"; 2], "after another upload, the same body is news");
    assert_ne!(sent[0].event_id, sent[1].event_id);
    feed(&mut p, &mut sent, vec![TruckEvent::DocumentsCorrected { id: "b2".into(), documents: vec![sts] }]);
    assert_eq!(p.documents, Documents::Submitted { round: 3 });
    assert_eq!(p.contract, Contract::NotSent, "the contract waits for accepted documents");
}

#[test]
fn a_repeat_after_the_call_the_hook_itself_caused_is_still_a_repeat() {
    let (mut p, mut sent) = started();
    let types = || content_hook("types", HookPayload::DocumentsTypesRequired { type_ids: vec![11, 12] });
    feed(&mut p, &mut sent, vec![types()]);
    assert_eq!(p.documents, Documents::Submitted { round: 1 }, "the hook made us upload round 1");
    assert_eq!(p.apply(types()), Outcome::Duplicate, "MUST's retry of types-required asks for nothing new");
    let completed = || content_hook("done", HookPayload::DocumentsUploadCompleted);
    feed(&mut p, &mut sent, vec![completed()]);
    let recognised = serde_json::json!({"engineNumber": "5738777"});
    let recognition = || {
        content_hook(
            "recognised",
            HookPayload::ContractUpdateCompleted { prefilled_contract: Some(recognised.clone()) },
        )
    };
    feed(&mut p, &mut sent, vec![recognition()]);
    assert_eq!(p.contract, Contract::Submitted { round: 1 });
    assert_eq!(p.apply(completed()), Outcome::Duplicate, "an earlier hook's repeat, after the call");
    assert_eq!(p.apply(recognition()), Outcome::Duplicate, "not new after the contract call it caused");
}

/// Two insurers scoring; Ingosstrakh has approved (20,000), Renaissance not answered yet.
fn ingostrah_approved_renaissance_scoring() -> (TruckProcess, Vec<TruckNotification>) {
    ingostrah_approved_renaissance_scoring_for(request(PaymentMethod::Link, None))
}

/// As [`ingostrah_approved_renaissance_scoring`], for `request`.
fn ingostrah_approved_renaissance_scoring_for(
    request: TruckPolicyRequest,
) -> (TruckProcess, Vec<TruckNotification>) {
    let (mut p, mut sent) = started_with(request);
    feed(&mut p, &mut sent, happy_hooks()[..3].to_vec());
    feed(
        &mut p,
        &mut sent,
        vec![
            hook("s", HookPayload::Started { insurers: vec![ins("ingostrah"), ins("renaissance")] }),
            hook("a1", HookPayload::Approved { insurer: ins("ingostrah"), premium: Some(20000.0) }),
        ],
    );
    (p, sent)
}

#[test]
fn two_insurers_cheapest_approved_is_chosen_after_both_answer() {
    let (mut p, mut sent) = ingostrah_approved_renaissance_scoring();
    assert_eq!(p.chosen, None, "waits for the second insurer");
    feed(
        &mut p,
        &mut sent,
        vec![hook("a2", HookPayload::Approved { insurer: ins("renaissance"), premium: Some(17847.29) })],
    );
    assert_eq!(p.chosen, Some(ins("renaissance")));
    assert_eq!(p.payment, Payment::Requested);
}

#[test]
fn preferred_insurer_is_taken_as_soon_as_it_approves() {
    let (mut p, mut sent) = started_with(request(PaymentMethod::Link, Some("renaissance")));
    feed(
        &mut p,
        &mut sent,
        vec![
            hook("s", HookPayload::Started { insurers: vec![ins("ingostrah"), ins("renaissance")] }),
            hook("a", HookPayload::Approved { insurer: ins("renaissance"), premium: Some(30000.0) }),
        ],
    );
    assert_eq!(p.chosen, Some(ins("renaissance")));
}

#[test]
fn no_insurer_left_ends_the_process_rejected_and_only_a_payment_after_that_is_kept() {
    let (mut p, mut sent) = started();
    feed(
        &mut p,
        &mut sent,
        vec![
            hook("s", HookPayload::Started { insurers: vec![ins("ingostrah"), ins("renaissance")] }),
            hook("r", HookPayload::Rejected { insurer: ins("ingostrah"), reason: None }),
        ],
    );
    assert_eq!(p.stage, TruckStage::Scoring);
    feed(
        &mut p,
        &mut sent,
        vec![hook(
            "f",
            HookPayload::CompanyFailed { insurer: ins("renaissance"), code: 1601, message: None },
        )],
    );
    assert_eq!(p.stage, TruckStage::Rejected);
    assert_eq!(kinds(&sent), ["truck.offer", "truck.offer", "truck.rejected"]);
    let late = p.apply(hook("late", HookPayload::Approved { insurer: ins("ingostrah"), premium: None }));
    assert!(matches!(late, Outcome::Ignored(_)), "MUST's history after the end pages nobody: {late:?}");
    let link = p.apply(hook(
        "link",
        HookPayload::PaymentLinkGenerated { insurer: None, url: "https://pay/1".into() },
    ));
    assert!(
        matches!(link, Outcome::Rejected(_)),
        "a payment asked for after the end is kept for a person: {link:?}"
    );
    assert_eq!(p.apply(hook("f", HookPayload::Failed { code: 1, message: None })), Outcome::Duplicate);
}

#[test]
fn chosen_insurer_failing_before_payment_falls_back_to_the_next_offer() {
    let (mut p, mut sent) = started();
    feed(
        &mut p,
        &mut sent,
        vec![
            hook("s", HookPayload::Started { insurers: vec![ins("ingostrah"), ins("renaissance")] }),
            hook("a1", HookPayload::Approved { insurer: ins("ingostrah"), premium: Some(100.0) }),
            hook("a2", HookPayload::Approved { insurer: ins("renaissance"), premium: Some(200.0) }),
        ],
    );
    assert_eq!(p.chosen, Some(ins("ingostrah")));
    feed(
        &mut p,
        &mut sent,
        vec![hook("f", HookPayload::CompanyFailed { insurer: ins("ingostrah"), code: 1502, message: None })],
    );
    assert_eq!(p.chosen, Some(ins("renaissance")));
    assert_eq!(p.payment, Payment::Requested);
    feed(&mut p, &mut sent, vec![hook("paid", HookPayload::PolicyIsPaid { insurer: None })]);
    feed(
        &mut p,
        &mut sent,
        vec![hook(
            "f2",
            HookPayload::CompanyFailed { insurer: ins("renaissance"), code: 1603, message: None },
        )],
    );
    assert_eq!(p.stage, TruckStage::Failed, "after payment there is no switching insurers");
    assert_eq!(p.error.as_ref().unwrap().code, "1603");
}

fn refused(insurer: &str) -> TruckEvent {
    TruckEvent::PaymentRefused {
        insurer: ins(insurer),
        error: ErrorReport::integration(PAYMENT_REFUSED, "HTTP 403: not approved"),
    }
}

#[test]
fn a_payment_refused_with_403_takes_the_next_approved_offer_and_the_last_fails() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..3].to_vec());
    for event in [
        hook("s", HookPayload::Started { insurers: vec![ins("ingostrah"), ins("renaissance")] }),
        hook("a1", HookPayload::Approved { insurer: ins("ingostrah"), premium: Some(100.0) }),
        hook("a2", HookPayload::Approved { insurer: ins("renaissance"), premium: Some(200.0) }),
    ] {
        p.apply(event);
    }
    // The runner's payment request for the cheaper insurer comes back 403.
    assert!(p.outbox.is_pending("payment-ingostrah"));
    p.outbox.complete("payment-ingostrah", false);
    assert_eq!(p.apply(refused("ingostrah")), Outcome::Advanced);
    assert_eq!(p.chosen, Some(ins("renaissance")));
    assert!(p.outbox.is_pending("payment-renaissance"));
    p.outbox.complete("payment-renaissance", false);
    assert_eq!(p.apply(refused("renaissance")), Outcome::Advanced);
    assert_eq!(p.stage, TruckStage::Failed, "approved, yet nobody could be paid");
    assert_eq!(p.error.as_ref().unwrap().code, PAYMENT_REFUSED);
    run_effects(&mut p, &mut sent);
    assert_eq!(kinds(&sent).last(), Some(&"truck.failed"));
}

#[test]
fn a_system_failure_ends_the_process_with_the_code_and_customer_text() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, vec![hook("f", HookPayload::Failed { code: 1202, message: None })]);
    assert_eq!(p.stage, TruckStage::Failed);
    let TruckNotice::Failed { error } = &sent[0].notice else { panic!("{sent:?}") };
    assert_eq!(error.code, "1202");
    assert_eq!(error.category, "system");
    assert_eq!(error.customer_text_ru, "Произошла непредвиденная ошибка. Уже работаем над ее устранением.");
}

#[test]
fn invoice_flow_archives_the_invoice_and_submits_the_payment_order() {
    let (mut p, mut sent) = started_with(request(PaymentMethod::Invoice, None));
    let mut hooks = happy_hooks()[..5].to_vec();
    hooks.push(hook("inv", HookPayload::PaymentInvoiceGenerated { insurer: None, files: vec![blob("i1")] }));
    feed(&mut p, &mut sent, hooks);
    assert!(matches!(&p.payment, Payment::InvoiceReady { files } if files[0].blob_id == "i1"));
    let order = BankDocument { type_id: 100, s3_key: "in/po.pdf".into(), file_name: "po.pdf".into() };
    feed(
        &mut p,
        &mut sent,
        vec![TruckEvent::PaymentOrderReceived { id: "po".into(), document: order, insurer: None }],
    );
    assert_eq!(p.payment, Payment::OrderSubmitted);
    assert_eq!(kinds(&sent), ["truck.offer", "truck.invoice-ready"]);
}

#[test]
fn contradictions_are_rejected_and_leave_the_process_unchanged() {
    let mut fresh = TruckProcess::start(request(PaymentMethod::Link, None));
    let before = fresh.clone();
    let o = fresh.apply(hook("x", HookPayload::PolicyIsPaid { insurer: None }));
    assert!(matches!(o, Outcome::Rejected(_)), "{o:?}");
    assert_eq!(fresh, before);
    let (mut p, _) = started();
    let before = p.clone();
    let o =
        p.apply(hook("y", HookPayload::PaymentLinkGenerated { insurer: None, url: "https://x/y".into() }));
    assert!(matches!(o, Outcome::Rejected(_)), "{o:?}");
    assert_eq!(p, before);
    let o = p.apply(TruckEvent::Initialized { scoring_id: ScoringId::parse("other").unwrap() });
    assert!(matches!(o, Outcome::Rejected(_)), "{o:?}");
    let o = p.apply(TruckEvent::ReviewResolved {
        id: "r".into(),
        effect: "init".into(),
        attempt: 1,
        resolution: Resolution::DidNotHappen,
    });
    assert!(matches!(o, Outcome::Ignored(_)), "nothing is held (answered already): {o:?}");
}

#[test]
fn a_duplicate_hook_changes_nothing() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..5].to_vec());
    let before = p.clone();
    assert_eq!(p.apply(happy_hooks()[4].clone()), Outcome::Duplicate);
    assert_eq!(p, before);
}

/// The process after the payment request for ingostrah is held: its outcome is unknown.
fn held_on_payment() -> (TruckProcess, Vec<TruckNotification>) {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..4].to_vec());
    p.apply(hook("h5", HookPayload::Approved { insurer: ins("ingostrah"), premium: Some(1000.0) }));
    assert!(p.outbox.is_pending("payment-ingostrah"));
    // The engine journals the attempt whose outcome is unknown, then holds on it.
    p.outbox.record(CallRecord {
        effect: "payment-ingostrah".into(),
        attempt: 1,
        at_ms: 7,
        duration_ms: 20_000,
        outcome: CallOutcome::Ambiguous { detail: "HTTP 502".into() },
    });
    let uncertain =
        TruckEvent::CallUncertain { effect: "payment-ingostrah".into(), at_ms: 7, detail: "HTTP 502".into() };
    assert_eq!(p.apply(uncertain.clone()), Outcome::Advanced);
    assert!(matches!(p.apply(uncertain), Outcome::Ignored(_)), "held once");
    run_effects(&mut p, &mut sent);
    (p, sent)
}

#[test]
fn an_unknown_outcome_holds_the_process_and_tells_the_bank_and_nothing_is_sent_again() {
    let (p, sent) = held_on_payment();
    assert_eq!(p.stage_name(), "needs-review");
    assert_eq!(kinds(&sent), ["truck.offer", "truck.needs-review"]);
    let TruckNotice::NeedsReview { effect, since_ms, detail } = &sent[1].notice else { panic!() };
    assert_eq!((effect.as_str(), *since_ms, detail.as_str()), ("payment-ingostrah", 7, "HTTP 502"));
    assert_eq!(p.outbox.next(), None, "the payment request waits for a person or a proof");
    assert_eq!(p.payment, Payment::Requesting);
}

#[test]
fn a_hook_that_can_only_follow_the_held_call_proves_it_happened() {
    let (mut p, mut sent) = held_on_payment();
    feed(&mut p, &mut sent, happy_hooks()[6..].to_vec());
    assert_eq!(p.stage, TruckStage::Issued);
    assert!(p.outbox.review().is_none() && p.outbox.is_empty());
    assert_eq!(
        kinds(&sent),
        [
            "truck.offer",
            "truck.needs-review",
            "truck.payment-link-ready",
            "truck.paid",
            "truck.policy-issued"
        ]
    );
}

#[test]
fn an_operator_resolves_a_review_either_way() {
    let (mut happened, mut sent) = held_on_payment();
    let yes = TruckEvent::ReviewResolved {
        id: "r1".into(),
        effect: "payment-ingostrah".into(),
        attempt: 1,
        resolution: Resolution::Happened { reference: None, number: None },
    };
    assert_eq!(happened.apply(yes.clone()), Outcome::Advanced);
    assert_eq!(happened.payment, Payment::Requested, "its result is applied: nothing is sent again");
    assert_eq!(happened.apply(yes), Outcome::Duplicate);
    run_effects(&mut happened, &mut sent);
    assert_eq!(happened.outbox.next(), None);

    let (mut not, _) = held_on_payment();
    not.apply(TruckEvent::ReviewResolved {
        id: "r2".into(),
        effect: "payment-ingostrah".into(),
        attempt: 1,
        resolution: Resolution::DidNotHappen,
    });
    assert!(not.outbox.review().is_none());
    assert_eq!(not.outbox.next().map(EffectSpec::key), Some("payment-ingostrah".into()), "sent again");
}

#[test]
fn an_answer_about_a_call_no_longer_held_is_not_applied_to_the_next_hold() {
    // The operator answered "happened" for an earlier hold that a hook had lifted meanwhile;
    // applied to the payment held now, it would mark a call MUST never got as made.
    let (mut p, _) = held_on_payment();
    let stale = TruckEvent::ReviewResolved {
        id: "r1".into(),
        effect: "documents-1".into(),
        attempt: 1,
        resolution: Resolution::Happened { reference: None, number: None },
    };
    assert!(matches!(p.apply(stale), Outcome::Ignored(_)));
    assert_eq!(p.outbox.review().map(|r| r.effect.as_str()), Some("payment-ingostrah"), "still held");
    assert_eq!(p.payment, Payment::Requesting);
}

#[test]
fn an_answer_applies_to_the_attempt_it_names_and_not_to_a_later_hold_on_the_same_call() {
    // "did not happen" for attempt 1 sends attempt 2; attempt 2 is held in its turn. An
    // answer about attempt 1 given again (the command retried, under another id) must not
    // release attempt 2, which nobody has looked at.
    let (mut p, _) = held_on_payment();
    let answer = |id: &str, attempt| TruckEvent::ReviewResolved {
        id: id.into(),
        effect: "payment-ingostrah".into(),
        attempt,
        resolution: Resolution::DidNotHappen,
    };
    assert_eq!(p.apply(answer("review-payment-ingostrah-a1", 1)), Outcome::Advanced);
    assert_eq!(p.outbox.next().map(EffectSpec::key), Some("payment-ingostrah".into()), "attempt 2 goes out");
    assert_eq!(p.apply(answer("review-payment-ingostrah-a1", 1)), Outcome::Duplicate, "the same answer");
    p.outbox.record(CallRecord {
        effect: "payment-ingostrah".into(),
        attempt: 2,
        at_ms: 9,
        duration_ms: 20_000,
        outcome: CallOutcome::Ambiguous { detail: "timed out".into() },
    });
    let held = TruckEvent::CallUncertain {
        effect: "payment-ingostrah".into(),
        at_ms: 9,
        detail: "timed out".into(),
    };
    assert_eq!(p.apply(held), Outcome::Advanced);
    assert_eq!(p.outbox.held_attempt(), Some(("payment-ingostrah", 2)));
    let again = p.apply(answer("retried-answer", 1));
    assert!(matches!(again, Outcome::Ignored(_)), "{again:?}");
    assert!(p.outbox.next().is_none_or(EffectSpec::is_notice), "attempt 2 stays held for its own answer");
    assert_eq!(p.outbox.held_attempt(), Some(("payment-ingostrah", 2)));
    assert_eq!(p.apply(answer("review-payment-ingostrah-a2", 2)), Outcome::Advanced);
    assert_eq!(p.outbox.next().map(EffectSpec::key), Some("payment-ingostrah".into()));
}

#[test]
fn an_answer_that_arrives_after_the_end_is_moot_not_kept() {
    // Found by the simulation: MUST's policy proved a held payment order and the process
    // ended; the operator's answer, already queued, was kept and replayed forever.
    let (mut p, mut sent) = held_on_payment();
    feed(&mut p, &mut sent, happy_hooks()[6..].to_vec());
    assert_eq!(p.stage, TruckStage::Issued);
    let late = TruckEvent::ReviewResolved {
        id: "r9".into(),
        effect: "payment-ingostrah".into(),
        attempt: 1,
        resolution: Resolution::DidNotHappen,
    };
    assert!(matches!(p.apply(late), Outcome::Ignored(_)));
    let correction = TruckEvent::DocumentsCorrected {
        id: "fix-1".into(),
        documents: vec![BankDocument { type_id: 11, s3_key: "in/b.pdf".into(), file_name: "b.pdf".into() }],
    };
    assert!(matches!(p.apply(correction), Outcome::Ignored(_)), "a correction after the end is moot too");
}

#[test]
fn init_held_for_review_needs_the_scoring_id_to_resolve_as_happened() {
    let mut p = TruckProcess::start(request(PaymentMethod::Link, None));
    p.apply(TruckEvent::CallUncertain { effect: "init".into(), at_ms: 1, detail: "timed out".into() });
    // Held before any attempt was journalled: the hold's attempt is then 0.
    let bare = TruckEvent::ReviewResolved {
        id: "r".into(),
        effect: "init".into(),
        attempt: 0,
        resolution: Resolution::Happened { reference: None, number: None },
    };
    assert!(matches!(p.apply(bare), Outcome::Rejected(_)));
    let with_id = TruckEvent::ReviewResolved {
        id: "r2".into(),
        effect: "init".into(),
        attempt: 0,
        resolution: Resolution::Happened { reference: Some("sc-77".into()), number: None },
    };
    assert_eq!(p.apply(with_id), Outcome::Advanced);
    assert_eq!(p.scoring_id, Some(ScoringId::parse("sc-77").unwrap()));
    assert_eq!(p.stage, TruckStage::Preparing);
    assert_eq!(p.message_group(), "sc-77", "from now on, the hooks' group");
}

#[test]
fn once_issued_nothing_turns_the_policy_into_failed() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..8].to_vec());
    p.apply(hook(
        "h9",
        HookPayload::PolicyIssued {
            insurer: None,
            policy_number: Some("XXX 1".into()),
            files: vec![blob("p1"), blob("p2")],
        },
    ));
    // The runner could archive p1 only: p2 is pending.
    p.outbox.retain(|e| !matches!(e, TruckEffect::ArchiveFiles { purpose: ArchivePurpose::Policy, .. }));
    let pending = vec![PendingFile { blob_id: "p2".into(), reason: "over the size cap".into() }];
    p.apply(TruckEvent::FilesArchived { purpose: ArchivePurpose::Policy, files: vec![file("p1")], pending });
    run_effects(&mut p, &mut sent);
    assert_eq!(p.stage, TruckStage::Issued);
    let TruckNotice::PolicyIssued { pending_files, files, .. } = &sent.last().unwrap().notice else {
        panic!()
    };
    assert_eq!((files.len(), pending_files[0].blob_id.as_str()), (1, "p2"));
    feed(&mut p, &mut sent, vec![hook("late", HookPayload::Failed { code: 1504, message: None })]);
    p.apply(TruckEvent::EffectFailed { effect: "x".into(), error: ErrorReport::integration("x", "y") });
    assert_eq!(p.stage, TruckStage::Issued, "issued stays issued");
    assert!(p.error.is_none());
    assert_eq!(p.late_errors.len(), 2, "late errors are kept beside the policy");
    // An operator's replay archives what was pending.
    feed(&mut p, &mut sent, vec![TruckEvent::RetryArchive { id: "retry-1".into() }]);
    let policy = p.policy.as_ref().unwrap();
    assert_eq!((policy.files.len(), policy.pending_files.len()), (2, 0));
    assert_eq!(
        kinds(&sent).iter().filter(|k| **k == "truck.policy-issued").count(),
        2,
        "told again, complete"
    );
}

#[test]
fn a_payment_link_that_comes_after_the_policy_was_paid_and_issued_is_history() {
    // Found by the simulation: the link's delivery went to a dead-letter queue, the
    // customer paid by MUST's own channel, and the re-driven hook was kept for a person forever.
    let (mut p, mut sent) = started();
    let hooks: Vec<TruckEvent> = happy_hooks()
        .into_iter()
        .filter(|h| !matches!(h, TruckEvent::Hook { payload: HookPayload::PaymentLinkGenerated { .. }, .. }))
        .collect();
    feed(&mut p, &mut sent, hooks);
    assert_eq!((p.stage, &p.payment), (TruckStage::Issued, &Payment::Paid));
    let late = hook(
        "late-link",
        HookPayload::PaymentLinkGenerated { insurer: None, url: "https://pay.must.example/pay/1".into() },
    );
    assert!(matches!(p.apply(late), Outcome::Ignored(_)), "history, not something for a person");
    assert!(!kinds(&sent).contains(&"truck.payment-link-ready"));
}

#[test]
fn policy_is_paid_after_policy_issued_is_history_not_an_error() {
    let (mut p, mut sent) = started();
    let mut hooks = happy_hooks();
    hooks.swap(7, 8);
    feed(&mut p, &mut sent, hooks);
    assert_eq!(p.stage, TruckStage::Issued);
    assert_eq!(p.payment, Payment::Paid);
    assert_eq!(
        kinds(&sent),
        ["truck.offer", "truck.payment-link-ready", "truck.policy-issued", "truck.paid"]
    );
}

#[test]
fn a_policy_issued_after_an_error_ended_the_process_is_archived_and_issued() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..8].to_vec());
    feed(
        &mut p,
        &mut sent,
        vec![hook("f", HookPayload::CompanyFailed { insurer: ins("ingostrah"), code: 1503, message: None })],
    );
    assert_eq!(p.stage, TruckStage::Failed);
    feed(&mut p, &mut sent, happy_hooks()[8..].to_vec());
    assert_eq!(p.stage, TruckStage::Issued, "the insurer issued after all: the customer has a policy");
    assert_eq!(kinds(&sent).last(), Some(&"truck.policy-issued"));
}

#[test]
fn notice_ids_depend_on_what_caused_them_not_on_their_order() {
    let (mut a, mut sent_a) = started();
    let (mut b, mut sent_b) = started();
    let mut hooks = vec![
        hook("s", HookPayload::Started { insurers: vec![ins("ingostrah"), ins("renaissance")] }),
        hook("r", HookPayload::Rejected { insurer: ins("renaissance"), reason: None }),
        hook("x", HookPayload::Rejected { insurer: ins("ingostrah"), reason: None }),
    ];
    feed(&mut a, &mut sent_a, hooks.clone());
    hooks.swap(1, 2);
    feed(&mut b, &mut sent_b, hooks);
    let ids = |sent: &[TruckNotification], kind: &str| -> Vec<String> {
        let mut ids: Vec<String> =
            sent.iter().filter(|n| n.notice.kind() == kind).map(|n| n.event_id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&sent_a, "truck.offer"), ids(&sent_b, "truck.offer"));
    let all: std::collections::BTreeSet<_> = sent_a.iter().map(|n| &n.event_id).collect();
    assert_eq!(all.len(), sent_a.len(), "no two notices share an id");
}

/// The final state with the order of applied ids forgotten.
fn normalised(mut p: TruckProcess) -> TruckProcess {
    p.applied.sort();
    p
}

proptest! {
    /// Recognition before or after our card, and any hook delivered again at any later
    /// point, reach the same policy and the same notifications.
    #[test]
    fn recognition_order_and_duplicates_do_not_change_the_outcome(
        recognition in 0usize..3,
        duplicates in proptest::collection::vec((0usize..9, 0usize..10), 0..6),
    ) {
        let (mut reference, mut ref_sent) = started();
        feed(&mut reference, &mut ref_sent, happy_hooks());

        let mut hooks = happy_hooks();
        let recognised = hook("pre", HookPayload::ContractUpdateCompleted {
            prefilled_contract: Some(serde_json::json!({"engineNumber": "5738777"})),
        });
        match recognition {
            1 => hooks.insert(1, recognised),
            2 => hooks.insert(2, recognised),
            _ => {}
        }
        for (which, offset) in duplicates {
            let original = happy_hooks()[which].clone();
            let pos = hooks.iter().position(|h| *h == original).unwrap();
            let at = (pos + 1 + offset).min(hooks.len());
            hooks.insert(at, original);
        }
        let (mut p, mut sent) = started();
        feed(&mut p, &mut sent, hooks);
        prop_assert_eq!(p.stage, TruckStage::Issued);
        let accepted = matches!(p.contract, Contract::Accepted { .. });
        prop_assert!(accepted);
        prop_assert_eq!(kinds(&sent), HAPPY);
        prop_assert_eq!(
            sent.iter().map(|n| &n.event_id).collect::<Vec<_>>(),
            ref_sent.iter().map(|n| &n.event_id).collect::<Vec<_>>()
        );
        if recognition == 0 {
            prop_assert_eq!(normalised(p), normalised(reference));
        }
    }

    /// Any sequence of any events: no panic, and the invariants hold after each.
    #[test]
    fn apply_is_total_and_keeps_invariants(events in proptest::collection::vec(any_event(), 0..40), by_bank in any::<bool>()) {
        let (mut p, mut sent) = if by_bank { started_with(bank_choice(PaymentMethod::Link)) } else { started() };
        for e in events {
            let before = p.clone();
            let a_choice = matches!(e, TruckEvent::InsurerChosen { .. });
            let outcome = p.apply(e);
            if !matches!(outcome, Outcome::Advanced) {
                prop_assert_eq!(&p, &before);
            }
            if before.policy.is_some() {
                prop_assert!(p.stage != TruckStage::Failed, "an issued policy never turns failed");
            }
            if p.stage.is_terminal() && p.policy.is_none() {
                prop_assert!(p.outbox.pending().iter().all(|e| matches!(e, TruckEffect::Notify(_))));
            }
            if let Some(chosen) = &p.chosen {
                let approved = matches!(p.offers.get(chosen), Some(Offer::Approved { .. }));
                prop_assert!(approved, "chose an insurer that did not approve");
            }
            if let Some(review) = p.outbox.review() {
                prop_assert!(p.outbox.is_pending(&review.effect), "a hold is on a pending call");
            }
            if by_bank && p.chosen != before.chosen && p.chosen.is_some() {
                prop_assert!(a_choice, "only the bank's choice chooses");
            }
            prop_assert!(
                !(p.stage == TruckStage::AwaitingChoice && p.chosen.is_some()),
                "waiting for a choice made already"
            );
            run_effects(&mut p, &mut sent);
            let ids: std::collections::BTreeSet<_> = sent.iter().map(|n| (&n.event_id, n.notice.kind())).collect();
            let distinct: std::collections::BTreeSet<_> = sent.iter().map(|n| &n.event_id).collect();
            prop_assert_eq!(ids.len(), distinct.len(), "one id, one kind of notice");
            let reminders = sent.iter().filter(|n| n.notice.kind() == "truck.choice-reminder").count();
            prop_assert!(reminders <= 1 + sent.iter().filter(|n| n.notice.kind() == "truck.offer").count());
        }
    }
}

// --- The bank's choice (`"choice": "bank"`) ---

/// A `"choice": "bank"` request, paid by `method` unless the choice says otherwise.
fn bank_choice(method: PaymentMethod) -> TruckPolicyRequest {
    let mut r = request(method, None);
    r.choice = InsurerChoice::Bank;
    r
}

fn chosen(id: &str, insurer: &str, method: Option<PaymentMethod>) -> TruckEvent {
    TruckEvent::InsurerChosen { id: id.into(), insurer: ins(insurer), method }
}

fn overdue(since_ms: u64) -> TruckEvent {
    TruckEvent::ChoiceOverdue { id: format!("choice-overdue-{since_ms}"), since_ms }
}

/// Documents and contract done, scoring started with both insurers.
fn scoring_two(request: TruckPolicyRequest) -> (TruckProcess, Vec<TruckNotification>) {
    let (mut p, mut sent) = started_with(request);
    feed(&mut p, &mut sent, happy_hooks()[..3].to_vec());
    feed(
        &mut p,
        &mut sent,
        vec![hook("s", HookPayload::Started { insurers: vec![ins("ingostrah"), ins("renaissance")] })],
    );
    (p, sent)
}

/// Both insurers approved: renaissance the cheaper.
fn both_approved(p: &mut TruckProcess, sent: &mut Vec<TruckNotification>) {
    feed(
        p,
        sent,
        vec![
            hook("a1", HookPayload::Approved { insurer: ins("ingostrah"), premium: Some(21310.5) }),
            hook("a2", HookPayload::Approved { insurer: ins("renaissance"), premium: Some(17847.29) }),
        ],
    );
}

fn awaiting_choice() -> (TruckProcess, Vec<TruckNotification>) {
    let (mut p, mut sent) = scoring_two(bank_choice(PaymentMethod::Link));
    both_approved(&mut p, &mut sent);
    (p, sent)
}

/// The problems of the last notice, which must be a `truck.request-invalid` for `event_id`.
fn refusal(sent: &[TruckNotification], event_id: &str) -> Vec<FieldError> {
    match &sent.last().expect("a notice").notice {
        TruckNotice::RequestInvalid { rejected_event_id, problems } => {
            assert_eq!(rejected_event_id, event_id);
            problems.clone()
        }
        other => panic!("expected truck.request-invalid, got {other:?}"),
    }
}

fn payment_requests(p: &TruckProcess) -> Vec<(Insurer, PaymentMethod)> {
    p.outbox
        .pending()
        .iter()
        .filter_map(|e| match e {
            TruckEffect::RequestPayment { insurer, method } => Some((insurer.clone(), *method)),
            _ => None,
        })
        .collect()
}

#[test]
fn with_the_banks_choice_the_process_waits_after_the_offers_and_requests_no_payment() {
    let (p, sent) = awaiting_choice();
    assert_eq!(p.stage, TruckStage::AwaitingChoice);
    assert_eq!(p.stage_name(), "awaiting-choice");
    assert_eq!((p.chosen.clone(), p.payment.clone()), (None, Payment::NotRequested));
    assert!(payment_requests(&p).is_empty());
    assert_eq!(kinds(&sent), ["truck.offer", "truck.offer"]);
}

#[test]
fn the_bank_may_choose_the_dearer_offer_and_its_payment_is_requested_once_then_the_policy_is_issued() {
    let (mut p, mut sent) = awaiting_choice();
    assert_eq!(p.apply(chosen("evt-c", "ingostrah", None)), Outcome::Advanced);
    assert_eq!(p.chosen, Some(ins("ingostrah")));
    assert_eq!(p.stage, TruckStage::AwaitingPayment);
    assert_eq!(payment_requests(&p), [(ins("ingostrah"), PaymentMethod::Link)]);
    assert!(p.applied.contains(&"evt-c".to_owned()));
    feed(&mut p, &mut sent, happy_hooks()[6..].to_vec());
    assert_eq!(p.stage, TruckStage::Issued);
    match &sent.last().unwrap().notice {
        TruckNotice::PolicyIssued { insurer, .. } => assert_eq!(insurer.as_ref(), Some(&ins("ingostrah"))),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &sent.iter().find(|n| n.notice.kind() == "truck.payment-link-ready").unwrap().notice,
        TruckNotice::PaymentLinkReady { insurer, .. } if *insurer == ins("ingostrah")
    ));
}

#[test]
fn a_choice_of_an_insurer_that_did_not_approve_is_refused_naming_the_approved_ones_and_the_process_waits_on()
{
    let (mut p, mut sent) = scoring_two(bank_choice(PaymentMethod::Link));
    feed(
        &mut p,
        &mut sent,
        vec![
            hook("a1", HookPayload::Approved { insurer: ins("renaissance"), premium: Some(17847.29) }),
            hook("r1", HookPayload::Rejected { insurer: ins("ingostrah"), reason: None }),
        ],
    );
    assert_eq!(p.stage, TruckStage::AwaitingChoice);
    for (id, insurer, says) in [
        ("evt-1", "ingostrah", "ingostrah rejected; approved offers: renaissance"),
        ("evt-2", "alfa", "alfa has made no offer; approved offers: renaissance"),
    ] {
        assert_eq!(p.apply(chosen(id, insurer, None)), Outcome::Advanced, "applied: the bank is told");
        run_effects(&mut p, &mut sent);
        let problems = refusal(&sent, id);
        assert_eq!(problems, [FieldError { field: "insurer".into(), problem: says.into() }]);
        assert_eq!((p.stage, p.chosen.clone()), (TruckStage::AwaitingChoice, None));
        assert!(payment_requests(&p).is_empty());
    }
    // A redelivery of a refused choice is a duplicate: one notice.
    assert_eq!(p.apply(chosen("evt-1", "ingostrah", None)), Outcome::Duplicate);
    // Then a valid choice completes it.
    assert_eq!(p.apply(chosen("evt-3", "renaissance", None)), Outcome::Advanced);
    assert_eq!(payment_requests(&p), [(ins("renaissance"), PaymentMethod::Link)]);
}

#[test]
fn a_choice_before_the_offers_is_refused_and_the_same_choice_after_the_approval_is_taken() {
    let (mut p, mut sent) = started_with(bank_choice(PaymentMethod::Link));
    // Before scoring started: no offer at all.
    assert_eq!(p.apply(chosen("evt-early", "renaissance", None)), Outcome::Advanced);
    run_effects(&mut p, &mut sent);
    assert_eq!(
        refusal(&sent, "evt-early"),
        [FieldError {
            field: "insurer".into(),
            problem: "renaissance has made no offer; approved offers: none yet".into()
        }]
    );
    feed(&mut p, &mut sent, happy_hooks()[..3].to_vec());
    feed(
        &mut p,
        &mut sent,
        vec![hook("s", HookPayload::Started { insurers: vec![ins("ingostrah"), ins("renaissance")] })],
    );
    // Still scoring.
    assert_eq!(p.apply(chosen("evt-pending", "renaissance", None)), Outcome::Advanced);
    run_effects(&mut p, &mut sent);
    assert_eq!(
        refusal(&sent, "evt-pending")[0].problem,
        "renaissance is still scoring; approved offers: none yet"
    );
    // An approved offer may be taken while another insurer is still scoring.
    feed(
        &mut p,
        &mut sent,
        vec![hook("a2", HookPayload::Approved { insurer: ins("renaissance"), premium: Some(17847.29) })],
    );
    assert_eq!(p.stage, TruckStage::Scoring, "ingostrah has not answered");
    assert_eq!(p.apply(chosen("evt-now", "renaissance", None)), Outcome::Advanced);
    assert_eq!((p.stage, p.chosen.clone()), (TruckStage::AwaitingPayment, Some(ins("renaissance"))));
    // The late answer of the other insurer changes nothing.
    feed(
        &mut p,
        &mut sent,
        vec![hook("a1", HookPayload::Approved { insurer: ins("ingostrah"), premium: Some(1.0) })],
    );
    assert_eq!(p.chosen, Some(ins("renaissance")));
}

#[test]
fn a_repeated_choice_is_a_duplicate_the_same_choice_anew_is_ignored_and_another_is_refused() {
    let (mut p, mut sent) = awaiting_choice();
    p.apply(chosen("evt-c", "ingostrah", None));
    run_effects(&mut p, &mut sent);
    let before = p.clone();
    assert_eq!(p.apply(chosen("evt-c", "ingostrah", None)), Outcome::Duplicate);
    assert!(matches!(p.apply(chosen("evt-d", "ingostrah", None)), Outcome::Ignored(_)));
    assert_eq!(p, before);
    assert_eq!(p.apply(chosen("evt-e", "renaissance", None)), Outcome::Advanced);
    run_effects(&mut p, &mut sent);
    let problems = refusal(&sent, "evt-e");
    assert_eq!(problems[0].field, "insurer");
    assert!(problems[0].problem.contains("ingostrah was chosen already"), "{problems:?}");
    assert_eq!(p.apply(chosen("evt-f", "ingostrah", Some(PaymentMethod::Invoice))), Outcome::Advanced);
    run_effects(&mut p, &mut sent);
    assert_eq!(refusal(&sent, "evt-f")[0].field, "paymentMethod");
    assert_eq!(p.chosen, Some(ins("ingostrah")));
    assert_eq!(p.outbox.calls().len(), before.outbox.calls().len(), "no second payment request");
}

#[test]
fn a_choice_after_the_process_ended_is_refused_and_changes_nothing_else() {
    let (mut p, mut sent) = awaiting_choice();
    p.apply(chosen("evt-c", "renaissance", None));
    feed(&mut p, &mut sent, happy_hooks()[6..].to_vec());
    assert_eq!(p.stage, TruckStage::Issued);
    let policy = p.policy.clone();
    assert_eq!(p.apply(chosen("evt-late", "ingostrah", None)), Outcome::Advanced);
    run_effects(&mut p, &mut sent);
    assert_eq!(
        refusal(&sent, "evt-late"),
        [FieldError { field: "requestId".into(), problem: "the process has ended (issued)".into() }]
    );
    assert_eq!(
        (p.stage, p.chosen.clone(), p.policy.clone()),
        (TruckStage::Issued, Some(ins("renaissance")), policy)
    );
    assert_eq!(p.apply(chosen("evt-late", "ingostrah", None)), Outcome::Duplicate);
}

#[test]
fn a_choice_for_a_request_polis_chooses_for_is_refused() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..5].to_vec());
    assert_eq!(p.chosen, Some(ins("ingostrah")));
    assert_eq!(p.apply(chosen("evt-c", "ingostrah", None)), Outcome::Advanced);
    run_effects(&mut p, &mut sent);
    assert_eq!(refusal(&sent, "evt-c")[0].field, "type");
}

#[test]
fn a_legal_entity_may_choose_an_invoice_and_a_person_may_not() {
    let (mut p, mut sent) = awaiting_choice();
    assert_eq!(p.apply(chosen("evt-c", "ingostrah", Some(PaymentMethod::Invoice))), Outcome::Advanced);
    assert_eq!(payment_requests(&p), [(ins("ingostrah"), PaymentMethod::Invoice)]);
    run_effects(&mut p, &mut sent);
    feed(
        &mut p,
        &mut sent,
        vec![hook("inv", HookPayload::PaymentInvoiceGenerated { insurer: None, files: vec![blob("i1")] })],
    );
    assert!(matches!(p.payment, Payment::InvoiceReady { .. }));
    assert_eq!(kinds(&sent).last(), Some(&"truck.invoice-ready"));

    let mut person = bank_choice(PaymentMethod::Link);
    person.policyholder.kind = PartyKind::Individual;
    let (mut p, mut sent) = scoring_two(person);
    both_approved(&mut p, &mut sent);
    assert_eq!(p.apply(chosen("evt-c", "ingostrah", Some(PaymentMethod::Invoice))), Outcome::Advanced);
    run_effects(&mut p, &mut sent);
    assert_eq!(
        refusal(&sent, "evt-c"),
        [FieldError {
            field: "paymentMethod".into(),
            problem: "invoice payment is for legal entities only".into()
        }]
    );
    assert!(payment_requests(&p).is_empty() && p.chosen.is_none());
    // Every problem at once: a rejected insurer and an invoice.
    p.apply(chosen("evt-d", "alfa", Some(PaymentMethod::Invoice)));
    run_effects(&mut p, &mut sent);
    let fields: Vec<String> = refusal(&sent, "evt-d").into_iter().map(|f| f.field).collect();
    assert_eq!(fields, ["insurer", "paymentMethod"]);
}

#[test]
fn an_overdue_choice_reminds_the_bank_once_per_wait_naming_the_offers_cheapest_first() {
    let (mut p, mut sent) = awaiting_choice();
    assert_eq!(p.apply(overdue(1000)), Outcome::Advanced);
    run_effects(&mut p, &mut sent);
    match &sent.last().unwrap().notice {
        TruckNotice::ChoiceReminder { offers, waiting_since_ms } => {
            assert_eq!(*waiting_since_ms, 1000);
            let named: Vec<(&str, Option<f64>)> =
                offers.iter().map(|o| (o.insurer.as_str(), o.premium)).collect();
            assert_eq!(named, [("renaissance", Some(17847.29)), ("ingostrah", Some(21310.5))]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.apply(overdue(1000)), Outcome::Duplicate, "the same wait from another run");
    assert!(matches!(p.apply(overdue(2000)), Outcome::Ignored(_)), "reminded of this wait already");
    assert_eq!(kinds(&sent).iter().filter(|k| **k == "truck.choice-reminder").count(), 1);
    // Once chosen, or ended, an overdue message is moot.
    p.apply(chosen("evt-c", "renaissance", None));
    assert!(matches!(p.apply(overdue(3000)), Outcome::Ignored(_)));
    feed(&mut p, &mut sent, happy_hooks()[6..].to_vec());
    assert!(matches!(p.apply(overdue(4000)), Outcome::Ignored(_)), "after the end: ignored, not kept");
}

#[test]
fn an_overdue_message_for_a_process_not_waiting_for_the_bank_is_ignored() {
    let (mut p, _) = scoring_two(bank_choice(PaymentMethod::Link));
    assert!(matches!(p.apply(overdue(1)), Outcome::Ignored(_)), "still scoring");
    let (mut p, _) = started();
    assert!(matches!(p.apply(overdue(1)), Outcome::Ignored(_)));
}

#[test]
fn a_payment_refused_for_the_banks_choice_waits_for_a_new_choice_with_a_new_reminder() {
    let (mut p, mut sent) = awaiting_choice();
    p.apply(overdue(10));
    p.apply(chosen("evt-c", "ingostrah", None));
    run_effects_except_payment(&mut p, &mut sent);
    p.outbox.complete("payment-ingostrah", false);
    assert_eq!(p.apply(refused("ingostrah")), Outcome::Advanced);
    assert_eq!((p.stage, p.chosen.clone(), p.choice_reminded), (TruckStage::AwaitingChoice, None, false));
    assert!(payment_requests(&p).is_empty(), "the bank chooses again; nothing chosen for it");
    assert_eq!(p.apply(overdue(20)), Outcome::Advanced, "a new wait, a new reminder");
    p.apply(chosen("evt-d", "renaissance", None));
    run_effects_except_payment(&mut p, &mut sent);
    p.outbox.complete("payment-renaissance", false);
    p.apply(refused("renaissance"));
    assert_eq!(p.stage, TruckStage::Failed, "approved, yet nobody could be paid");
}

#[test]
fn with_the_banks_choice_no_approval_at_all_still_ends_rejected() {
    let (mut p, mut sent) = scoring_two(bank_choice(PaymentMethod::Link));
    feed(
        &mut p,
        &mut sent,
        vec![
            hook("r1", HookPayload::Rejected { insurer: ins("ingostrah"), reason: None }),
            hook("r2", HookPayload::Rejected { insurer: ins("renaissance"), reason: None }),
        ],
    );
    assert_eq!(p.stage, TruckStage::Rejected);
}

#[test]
fn a_preferred_insurer_does_not_choose_for_the_bank() {
    let mut r = request(PaymentMethod::Link, Some("renaissance"));
    r.choice = InsurerChoice::Bank;
    let (mut p, mut sent) = scoring_two(r);
    both_approved(&mut p, &mut sent);
    assert_eq!((p.stage, p.chosen.clone()), (TruckStage::AwaitingChoice, None));
}

/// Performs every effect but the payment request (left pending, as a call in flight).
fn run_effects_except_payment(p: &mut TruckProcess, sent: &mut Vec<TruckNotification>) {
    while let Some(effect) = p.outbox.next().cloned() {
        if matches!(effect, TruckEffect::RequestPayment { .. }) {
            return;
        }
        if let TruckEffect::Notify(n) = &effect {
            sent.push(n.clone());
        }
        p.outbox.complete(&effect.key(), true);
        if let Some(event) = success(&effect) {
            p.apply(event);
        }
    }
}

fn any_insurer() -> impl Strategy<Value = Insurer> {
    prop_oneof![Just(ins("ingostrah")), Just(ins("renaissance"))]
}

fn any_event() -> impl Strategy<Value = TruckEvent> {
    let id = "[a-d]{1,2}";
    let payload = prop_oneof![
        proptest::collection::vec(prop_oneof![Just(11u32), Just(12), Just(22)], 0..3)
            .prop_map(|type_ids| HookPayload::DocumentsTypesRequired { type_ids }),
        Just(HookPayload::DocumentsUploadFailed {
            problems: vec![DocumentProblem { type_id: 11, reason: None }]
        }),
        Just(HookPayload::DocumentsUploadCompleted),
        Just(HookPayload::ContractUpdateCompleted { prefilled_contract: None }),
        Just(HookPayload::ContractUpdateCompleted {
            prefilled_contract: Some(serde_json::json!({"vin": "R"}))
        }),
        proptest::collection::vec(any_insurer(), 0..3).prop_map(|insurers| HookPayload::Started { insurers }),
        (any_insurer(), proptest::option::of(1.0f64..1e6))
            .prop_map(|(insurer, premium)| HookPayload::Approved { insurer, premium }),
        any_insurer().prop_map(|insurer| HookPayload::Rejected { insurer, reason: None }),
        any_insurer().prop_map(|insurer| HookPayload::CompanyFailed { insurer, code: 1501, message: None }),
        Just(HookPayload::PaymentLinkGenerated { insurer: None, url: "https://p/1".into() }),
        Just(HookPayload::PaymentInvoiceGenerated { insurer: None, files: vec![blob("i")] }),
        Just(HookPayload::DraftIssued { insurer: None, files: vec![blob("d")] }),
        Just(HookPayload::PolicyIsPaid { insurer: None }),
        Just(HookPayload::PolicyIssued { insurer: None, policy_number: None, files: vec![blob("p")] }),
        (1000u32..2000).prop_map(|code| HookPayload::Failed { code, message: None }),
    ];
    let doc = BankDocument { type_id: 11, s3_key: "in/a.pdf".into(), file_name: "a.pdf".into() };
    let effect = prop_oneof![
        Just("init".to_owned()),
        Just("documents-1".to_owned()),
        Just("contract-1".to_owned()),
        Just("payment-ingostrah".to_owned()),
    ];
    let resolution = prop_oneof![
        Just(Resolution::DidNotHappen),
        Just(Resolution::Happened { reference: None, number: None }),
        Just(Resolution::Happened { reference: Some("sc-9".into()), number: None }),
    ];
    prop_oneof![
        8 => (id, payload, any::<bool>()).prop_map(|(id, payload, by_content)| TruckEvent::Hook { id, by_content, payload, received_at_ms: 0 , scoring_id: None}),
        1 => (id, Just(doc.clone())).prop_map(|(id, d)| TruckEvent::DocumentsCorrected { id, documents: vec![d] }),
        1 => (id, Just(doc)).prop_map(|(id, document)| TruckEvent::PaymentOrderReceived { id, document, insurer: None }),
        1 => (0u32..3).prop_map(|round| TruckEvent::DocumentsSubmitted { round }),
        1 => (0u32..3).prop_map(|round| TruckEvent::ContractSubmitted { round }),
        1 => any_insurer().prop_map(|insurer| TruckEvent::PaymentRequested { insurer }),
        1 => any_insurer().prop_map(|insurer| TruckEvent::PaymentRefused {
            insurer,
            error: ErrorReport::integration(PAYMENT_REFUSED, "403"),
        }),
        1 => Just(TruckEvent::EffectFailed { effect: "x".into(), error: ErrorReport::integration("x", "y") }),
        1 => (effect.clone(), 0u64..10).prop_map(|(effect, at_ms)| TruckEvent::CallUncertain { effect, at_ms, detail: "?".into() }),
        1 => (id, effect, resolution).prop_map(|(id, effect, resolution)| TruckEvent::ReviewResolved { id, effect, attempt: 1, resolution }),
        1 => id.prop_map(|id| TruckEvent::RetryArchive { id }),
        1 => (id, any_insurer(), proptest::option::of(prop_oneof![Just(PaymentMethod::Link), Just(PaymentMethod::Invoice)]))
            .prop_map(|(id, insurer, method)| TruckEvent::InsurerChosen { id, insurer, method }),
        1 => (0u64..3).prop_map(|since_ms| TruckEvent::ChoiceOverdue { id: format!("choice-overdue-{since_ms}"), since_ms }),
    ]
}

/// Two insurers approved, the cheaper (renaissance) chosen and its link sent to the bank.
fn link_of_the_cheaper_of_two() -> (TruckProcess, Vec<TruckNotification>) {
    let (mut p, mut sent) = ingostrah_approved_renaissance_scoring();
    feed(
        &mut p,
        &mut sent,
        vec![
            hook("a2", HookPayload::Approved { insurer: ins("renaissance"), premium: Some(17847.29) }),
            hook(
                "l1",
                HookPayload::PaymentLinkGenerated {
                    insurer: Some(ins("renaissance")),
                    url: "https://pay/renaissance/1".into(),
                },
            ),
        ],
    );
    assert_eq!(p.payment, Payment::LinkReady { url: "https://pay/renaissance/1".into() });
    (p, sent)
}

#[test]
fn an_insurer_dropping_out_after_its_link_reached_the_bank_has_the_link_withdrawn_before_the_next_one() {
    let (mut p, mut sent) = link_of_the_cheaper_of_two();
    let failed = HookPayload::CompanyFailed { insurer: ins("renaissance"), code: 1602, message: None };
    feed(&mut p, &mut sent, vec![hook("cf", failed)]);
    assert_eq!(p.chosen, Some(ins("ingostrah")), "the next approved offer");
    let after: Vec<&str> =
        kinds(&sent).into_iter().skip_while(|k| *k != "truck.payment-link-ready").skip(1).collect();
    assert_eq!(
        after,
        ["truck.payment-link-withdrawn", "truck.offer"],
        "withdrawn first, then the failed offer"
    );
    let withdrawn = sent.iter().find(|n| n.notice.kind() == "truck.payment-link-withdrawn").unwrap();
    let TruckNotice::PaymentLinkWithdrawn { insurer, url, reason, .. } = &withdrawn.notice else { panic!() };
    assert_eq!((insurer, url.as_deref()), (&ins("renaissance"), Some("https://pay/renaissance/1")));
    assert!(reason.contains("1602"), "{reason}");
    // MUST's late link for the insurer that dropped out: never shown as the new insurer's.
    let late = HookPayload::PaymentLinkGenerated {
        insurer: Some(ins("renaissance")),
        url: "https://pay/renaissance/2".into(),
    };
    let outcome = p.apply(hook("l2", late));
    assert!(
        matches!(&outcome, Outcome::Rejected(why) if why.contains("ingostrah is the insurer chosen")),
        "{outcome:?}"
    );
    let link = HookPayload::PaymentLinkGenerated {
        insurer: Some(ins("ingostrah")),
        url: "https://pay/ingostrah/1".into(),
    };
    feed(&mut p, &mut sent, vec![hook("l3", link)]);
    let TruckNotice::PaymentLinkReady { insurer, .. } = &sent.last().unwrap().notice else {
        panic!("{sent:?}")
    };
    assert_eq!(insurer, &ins("ingostrah"));
}

/// Renaissance, the cheaper, is chosen; its payment request is held (timed out); then
/// Renaissance rejects.
fn renaissance_request_held_then_it_rejects() -> (TruckProcess, Vec<TruckNotification>) {
    let (mut p, sent) = ingostrah_approved_renaissance_scoring();
    p.apply(hook("a2", HookPayload::Approved { insurer: ins("renaissance"), premium: Some(1.0) }));
    p.outbox.record(CallRecord {
        effect: "payment-renaissance".into(),
        attempt: 1,
        at_ms: 7,
        duration_ms: 20_000,
        outcome: CallOutcome::Ambiguous { detail: "timed out".into() },
    });
    p.apply(TruckEvent::CallUncertain {
        effect: "payment-renaissance".into(),
        at_ms: 7,
        detail: "timed out".into(),
    });
    p.apply(hook("r", HookPayload::Rejected { insurer: ins("renaissance"), reason: None }));
    (p, sent)
}

#[test]
fn a_held_payment_request_of_an_insurer_that_drops_out_waits_for_its_answer_before_the_switch() {
    let (mut p, _) = renaissance_request_held_then_it_rejects();
    assert_eq!(p.outbox.held_attempt(), Some(("payment-renaissance", 1)), "not dropped without a decision");
    assert_eq!(p.chosen, Some(ins("renaissance")));
    let answer = TruckEvent::ReviewResolved {
        id: "review-payment-renaissance-a1".into(),
        effect: "payment-renaissance".into(),
        attempt: 1,
        resolution: Resolution::DidNotHappen,
    };
    assert_eq!(p.apply(answer), Outcome::Advanced);
    assert_eq!(p.chosen, Some(ins("ingostrah")), "the answer given, the next offer is taken");
    let work: Vec<String> =
        p.outbox.pending().iter().filter(|e| !e.is_notice()).map(EffectSpec::key).collect();
    assert_eq!(work, ["payment-ingostrah"], "the dropped insurer's request is not sent again");
}

#[test]
fn a_payment_or_a_policy_for_a_process_that_requested_no_payment_is_not_believed() {
    // The payment request was refused (a 4xx): the process failed before anything was asked
    // of MUST. A hook that says it was paid, or issued, is not MUST's: kept for a person.
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..4].to_vec());
    p.apply(hook("h5", HookPayload::Approved { insurer: ins("ingostrah"), premium: Some(1000.0) }));
    assert_eq!(p.payment, Payment::Requesting);
    let error = ErrorReport::integration("must-http-400", "HTTP 400: bad request".to_owned());
    assert_eq!(
        p.apply(TruckEvent::EffectFailed { effect: "payment-ingostrah".into(), error }),
        Outcome::Advanced
    );
    assert_eq!(p.stage, TruckStage::Failed);
    let paid = p.apply(hook("p", HookPayload::PolicyIsPaid { insurer: None }));
    assert!(matches!(&paid, Outcome::Rejected(why) if why.contains("no payment was requested")), "{paid:?}");
    let issued = HookPayload::PolicyIssued {
        insurer: None,
        policy_number: Some("XXX 9".into()),
        files: vec![blob("p9")],
    };
    let issued = p.apply(hook("i", issued));
    assert!(
        matches!(&issued, Outcome::Rejected(why) if why.contains("no payment was requested")),
        "{issued:?}"
    );
    assert_eq!((p.stage, p.policy.is_none()), (TruckStage::Failed, true));
}

#[test]
fn a_held_request_proven_by_the_dropped_insurers_unnamed_link_is_withdrawn_not_shown_as_the_next_ones() {
    // Renaissance's payment request is held; Renaissance drops out; then its link, naming no
    // insurer, proves the request. The link is Renaissance's: told, then withdrawn, and the
    // next offer taken; never shown as Ingosstrakh's.
    let (mut p, mut sent) = renaissance_request_held_then_it_rejects();
    run_effects(&mut p, &mut sent);
    let before = sent.len();
    let link = HookPayload::PaymentLinkGenerated { insurer: None, url: "https://pay/renaissance/1".into() };
    feed(&mut p, &mut sent, vec![hook("l", link)]);
    let told: Vec<(&str, String)> = sent[before..]
        .iter()
        .filter_map(|n| match &n.notice {
            TruckNotice::PaymentLinkReady { insurer, url } => Some(("ready", format!("{insurer} {url}"))),
            TruckNotice::PaymentLinkWithdrawn { insurer, url, .. } => {
                Some(("withdrawn", format!("{insurer} {}", url.as_deref().unwrap_or_default())))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        [
            ("ready", "renaissance https://pay/renaissance/1".to_owned()),
            ("withdrawn", "renaissance https://pay/renaissance/1".to_owned()),
        ]
    );
    assert_eq!(
        (p.chosen.clone(), p.dropped_after_request.clone()),
        (Some(ins("ingostrah")), vec![ins("renaissance")])
    );
    // A link naming no insurer now may still be Renaissance's: kept, not shown as Ingosstrakh's.
    let unnamed = HookPayload::PaymentLinkGenerated { insurer: None, url: "https://pay/x/2".into() };
    assert!(matches!(p.apply(hook("l2", unnamed)), Outcome::Rejected(why) if why.contains("may be theirs")));
}

#[test]
fn an_invoice_of_an_insurer_that_dropped_out_is_withdrawn_and_a_payment_order_must_name_its_insurer() {
    let mut request = request(PaymentMethod::Invoice, None);
    request.policyholder.kind = PartyKind::LegalEntity;
    request.policyholder.inn = Some("7731440001".into());
    request.policyholder.kpp = Some("503100001".into());
    let (mut p, mut sent) = ingostrah_approved_renaissance_scoring_for(request);
    feed(
        &mut p,
        &mut sent,
        vec![
            hook("a2", HookPayload::Approved { insurer: ins("renaissance"), premium: Some(17000.0) }),
            hook(
                "i1",
                HookPayload::PaymentInvoiceGenerated {
                    insurer: Some(ins("renaissance")),
                    files: vec![blob("inv-r")],
                },
            ),
        ],
    );
    assert!(matches!(&p.payment, Payment::InvoiceReady { .. }));
    feed(
        &mut p,
        &mut sent,
        vec![hook(
            "cf",
            HookPayload::CompanyFailed { insurer: ins("renaissance"), code: 1602, message: None },
        )],
    );
    let withdrawn =
        sent.iter().find(|n| n.notice.kind() == "truck.payment-link-withdrawn").expect("withdrawn");
    let TruckNotice::PaymentLinkWithdrawn { invoice_files, url, .. } = &withdrawn.notice else { panic!() };
    assert_eq!((invoice_files.len(), url), (1, &None), "the invoice, not a link");
    assert_eq!(p.chosen, Some(ins("ingostrah")));
    let order = |insurer: Option<&str>| TruckEvent::PaymentOrderReceived {
        id: format!("po-{insurer:?}"),
        document: BankDocument { type_id: 100, s3_key: "in/po.pdf".into(), file_name: "po.pdf".into() },
        insurer: insurer.map(ins),
    };
    feed(
        &mut p,
        &mut sent,
        vec![hook(
            "i2",
            HookPayload::PaymentInvoiceGenerated {
                insurer: Some(ins("ingostrah")),
                files: vec![blob("inv-i")],
            },
        )],
    );
    for whose in [None, Some("renaissance")] {
        let outcome = p.apply(order(whose));
        assert!(
            matches!(&outcome, Outcome::Rejected(why) if why.contains("whose invoice")),
            "{whose:?}: {outcome:?}"
        );
    }
    assert_eq!(
        p.apply(order(Some("ingostrah"))),
        Outcome::Advanced,
        "the order naming the invoice's insurer goes"
    );
}

#[test]
fn a_must_whose_hooks_name_no_insurer_is_one_insurer_offered_requested_and_issued_as_in_the_seed() {
    let (mut p, mut sent) = started();
    let seed =
        |id: &str, kind: HookKind, body: &str| hook(id, HookPayload::parse(kind, body.as_bytes()).unwrap());
    feed(
        &mut p,
        &mut sent,
        vec![
            seed("h1", HookKind::DocumentsTypesRequired, r#"{"documentTypes":[11,12]}"#),
            seed("h2", HookKind::DocumentsUploadCompleted, "{}"),
            seed("h3", HookKind::ContractUpdateCompleted, "{}"),
            seed("h4", HookKind::Started, "{}"),
            seed("h5", HookKind::Approved, r#"{"writtenPremium":17847.29}"#),
        ],
    );
    assert_eq!(p.chosen, Some(Insurer::unnamed()), "the agent's one insurer");
    assert_eq!(p.payment, Payment::Requested);
    let request = crate::domain::must::api::PaymentRequest::for_insurer(&Insurer::unnamed());
    assert_eq!(serde_json::to_value(request).unwrap(), serde_json::json!({}), "names no insurer");
    feed(
        &mut p,
        &mut sent,
        vec![
            seed("h6", HookKind::PaymentLinkGenerated, r#"{"paymentLink":"https://pay.example/1"}"#),
            seed("h7", HookKind::PolicyIsPaid, "{}"),
            seed("h8", HookKind::PolicyIssued, r#"{"policyNumber":"XXX 1","blobIds":["p1"]}"#),
        ],
    );
    assert_eq!(p.stage, TruckStage::Issued);
    assert_eq!(kinds(&sent), HAPPY);
}

#[test]
fn a_policy_or_invoice_naming_no_file_polis_can_read_is_issued_or_ready_with_the_file_pending() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..7].to_vec());
    feed(&mut p, &mut sent, vec![happy_hooks()[7].clone()]);
    let bare =
        HookPayload::PolicyIssued { insurer: None, policy_number: Some("XXX 2".into()), files: vec![] };
    feed(&mut p, &mut sent, vec![hook("issued", bare)]);
    assert_eq!(p.stage, TruckStage::Issued, "never a process waiting forever");
    let TruckNotice::PolicyIssued { files, pending_files, .. } = &sent.last().unwrap().notice else {
        panic!("{:?}", sent.last())
    };
    assert!(files.is_empty());
    assert_eq!(pending_files[0].blob_id, "unnamed");
    assert!(pending_files[0].reason.contains("policyLink"), "{}", pending_files[0].reason);
    let retry = TruckEvent::RetryArchive { id: "op-1".into() };
    assert!(matches!(p.apply(retry), Outcome::Ignored(_)), "nothing MUST named to try again");

    let (mut q, mut sent) = started_with(request(PaymentMethod::Invoice, None));
    feed(&mut q, &mut sent, happy_hooks()[..5].to_vec());
    let invoice = HookPayload::PaymentInvoiceGenerated { insurer: None, files: vec![] };
    feed(&mut q, &mut sent, vec![hook("inv", invoice)]);
    let TruckNotice::InvoiceReady { pending_files, .. } = &sent.last().unwrap().notice else {
        panic!("{:?}", sent.last())
    };
    assert_eq!(pending_files[0].blob_id, "unnamed");
}

/// A hook from the MUST process `scoring` (its path's scoringId).
fn hook_of(scoring: &str, id: &str, payload: HookPayload) -> TruckEvent {
    TruckEvent::Hook {
        id: format!("{scoring}-{id}"),
        by_content: false,
        payload,
        received_at_ms: 0,
        scoring_id: Some(ScoringId::parse(scoring).unwrap()),
    }
}

fn failed(code: u32) -> HookPayload {
    HookPayload::Failed { code, message: None }
}

fn corrected(id: &str, correction: RequestCorrection) -> TruckEvent {
    TruckEvent::RequestCorrected { id: id.into(), correction: Box::new(correction) }
}

fn with_inspection(p: &TruckProcess, end_on: &str) -> RequestCorrection {
    let mut vehicle = p.request.vehicle.clone();
    vehicle.technical_inspection = Some(crate::domain::truck::bank::TechnicalInspection {
        series: None,
        number: "012345678901234".into(),
        start_on: "2026-11-01".into(),
        end_on: end_on.into(),
    });
    RequestCorrection { vehicle: Some(vehicle), ..RequestCorrection::default() }
}

#[test]
fn a_code_the_customer_can_correct_waits_for_the_bank_and_the_correction_starts_a_new_must_process() {
    let (mut p, mut sent) = started();
    feed(
        &mut p,
        &mut sent,
        vec![hook_of("sc-1", "types", HookPayload::DocumentsTypesRequired { type_ids: vec![11] })],
    );
    feed(&mut p, &mut sent, vec![hook_of("sc-1", "f", failed(1421))]);
    assert_eq!(p.stage, TruckStage::AwaitingCorrection);
    assert!(p.outbox.is_empty(), "nothing more goes to the stopped process");
    assert_eq!((p.scoring_id.as_ref(), p.closed_scorings.len()), (None, 1));
    let TruckNotice::CorrectionNeeded { field, error, corrections_left } = &sent.last().unwrap().notice
    else {
        panic!("{sent:?}")
    };
    assert_eq!(
        (field.as_str(), error.code.as_str(), *corrections_left),
        ("vehicle.technicalInspection", "1421", 3)
    );
    assert_eq!(error.customer_text_ru, "Введите действующую Диагностическую Карту.");

    // Late hooks of the stopped process are history; one claiming money is for a person.
    let late = p.apply(hook_of("sc-1", "late", HookPayload::DocumentsUploadCompleted));
    assert!(matches!(late, Outcome::Ignored(_)), "{late:?}");
    let paid = p.apply(hook_of("sc-1", "paid", HookPayload::PolicyIsPaid { insurer: None }));
    assert!(matches!(paid, Outcome::Rejected(_)), "{paid:?}");

    // A correction that does not make a valid request is refused, naming the field.
    let bad = with_inspection(&p, "not-a-date");
    feed(&mut p, &mut sent, vec![corrected("fix-0", bad)]);
    assert_eq!(p.stage, TruckStage::AwaitingCorrection);
    let TruckNotice::RequestInvalid { problems, .. } = &sent.last().unwrap().notice else {
        panic!("{sent:?}")
    };
    assert_eq!(problems[0].field, "vehicle.technicalInspection.endOn");

    let fix = with_inspection(&p, "2027-11-01");
    assert_eq!(p.apply(corrected("fix-1", fix.clone())), Outcome::Advanced);
    assert_eq!(p.outbox.pending(), [TruckEffect::InitScoring { scoring: 2 }]);
    assert_eq!(p.outbox.pending()[0].key(), "init-s2", "a new call, not a repeat of the first init");
    assert_eq!(p.request.vehicle, fix.vehicle.clone().unwrap());
    assert_eq!(p.apply(corrected("fix-1", fix)), Outcome::Duplicate);
    run_effects(&mut p, &mut sent);
    assert_eq!(
        (p.scoring_id.as_ref().map(ScoringId::as_str), p.stage),
        (Some("sc-2"), TruckStage::Preparing)
    );

    let hooks = happy_hooks()
        .into_iter()
        .map(|h| match h {
            TruckEvent::Hook { id, payload, .. } => hook_of("sc-2", &id, payload),
            other => other,
        })
        .collect();
    feed(&mut p, &mut sent, hooks);
    assert_eq!(p.stage, TruckStage::Issued);
    assert_eq!(p.outbox.calls_made(CALL_INIT), 2);
}

#[test]
fn corrections_are_bounded_and_only_awaited_ones_are_taken() {
    let (mut p, mut sent) = started();
    let early = with_inspection(&p, "2027-11-01");
    feed(&mut p, &mut sent, vec![corrected("early", early)]);
    assert_eq!(p.stage, TruckStage::Preparing, "nothing to correct: refused");
    assert_eq!(kinds(&sent), ["truck.request-invalid"]);
    for n in 1..=MAX_CORRECTIONS {
        let sid = format!("sc-{n}");
        feed(&mut p, &mut sent, vec![hook_of(&sid, "f", failed(1403))]);
        assert_eq!(p.stage, TruckStage::AwaitingCorrection, "correction {n}");
        let mut policy = p.request.policy.clone();
        policy.start_on = "2026-12-20".into();
        let fix = RequestCorrection { policy: Some(policy), ..RequestCorrection::default() };
        feed(&mut p, &mut sent, vec![corrected(&format!("fix-{n}"), fix)]);
        assert_eq!(p.scoring_id.as_ref().map(ScoringId::as_str), Some(format!("sc-{}", n + 1).as_str()));
    }
    let last = format!("sc-{}", MAX_CORRECTIONS + 1);
    feed(&mut p, &mut sent, vec![hook_of(&last, "f", failed(1403))]);
    assert_eq!(p.stage, TruckStage::Failed, "no request loops at MUST for ever");
    assert_eq!(p.closed_scorings.len() as u32, MAX_CORRECTIONS);
}

#[test]
fn a_temporary_error_before_payment_is_retried_as_a_new_process_a_bounded_number_of_times() {
    let (mut p, mut sent) = started();
    for n in 1..=MAX_RETRIES {
        feed(&mut p, &mut sent, vec![hook_of(&format!("sc-{n}"), "f", failed(1205))]);
        assert_eq!(p.stage, TruckStage::AwaitingRetry);
        let TruckNotice::RetryScheduled { error, retry, .. } = &sent.last().unwrap().notice else {
            panic!("{sent:?}")
        };
        assert_eq!(
            (error.customer_text_ru.as_str(), *retry),
            ("Оформление для Юридических лиц временно недоступно.", n)
        );
        let due = TruckEvent::RetryDue { id: format!("retry-due-{n}"), since_ms: u64::from(n) };
        assert_eq!(p.apply(due.clone()), Outcome::Advanced);
        assert_eq!(p.apply(due), Outcome::Duplicate);
        let again = TruckEvent::RetryDue { id: "retry-due-other".into(), since_ms: 9 };
        assert!(matches!(p.apply(again), Outcome::Ignored(_)), "not waiting any more");
        run_effects(&mut p, &mut sent);
    }
    assert_eq!(p.outbox.calls_made(CALL_INIT), 1 + MAX_RETRIES);
    feed(&mut p, &mut sent, vec![hook_of(&format!("sc-{}", MAX_RETRIES + 1), "f", failed(1206))]);
    assert_eq!(p.stage, TruckStage::Failed);
}

#[test]
fn after_a_payment_was_asked_for_nothing_restarts_and_1603_expires_without_asking_another_insurer() {
    // A code the customer could correct, once a link is out: the documented end, no new process.
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..7].to_vec());
    feed(&mut p, &mut sent, vec![hook("f", failed(1421))]);
    assert_eq!((p.stage, p.outbox.calls_made(CALL_INIT)), (TruckStage::Failed, 1));

    // 1603 on the process: expired, with a notice.
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..7].to_vec());
    feed(&mut p, &mut sent, vec![hook("f", failed(PAYMENT_EXPIRED))]);
    assert_eq!(p.stage, TruckStage::Expired);
    let TruckNotice::Expired { insurer, error } = &sent.last().unwrap().notice else { panic!("{sent:?}") };
    assert_eq!((insurer.as_ref(), error.code.as_str()), (Some(&ins("ingostrah")), "1603"));

    // 1603 for the chosen of two approved insurers: expired; the other is not asked.
    let (mut p, mut sent) = ingostrah_approved_renaissance_scoring();
    let approved = HookPayload::Approved { insurer: ins("renaissance"), premium: Some(30000.0) };
    feed(&mut p, &mut sent, vec![hook("a2", approved)]);
    assert_eq!((p.chosen.clone(), p.payment.clone()), (Some(ins("ingostrah")), Payment::Requested));
    let deadline =
        HookPayload::CompanyFailed { insurer: ins("ingostrah"), code: PAYMENT_EXPIRED, message: None };
    feed(&mut p, &mut sent, vec![hook("f", deadline)]);
    assert_eq!(p.stage, TruckStage::Expired);
    assert_eq!(p.outbox.calls_made(CALL_PAYMENT), 1, "no payment asked from renaissance");
    assert_eq!(kinds(&sent).last(), Some(&"truck.expired"));
}

#[test]
fn what_the_bank_sends_while_a_stopped_process_waits_does_not_act_on_it() {
    let (mut p, mut sent) = ingostrah_approved_renaissance_scoring();
    feed(&mut p, &mut sent, vec![hook_of("sc-1", "f", failed(1205))]);
    assert_eq!(p.stage, TruckStage::AwaitingRetry);
    let choice = TruckEvent::InsurerChosen { id: "choice".into(), insurer: ins("ingostrah"), method: None };
    let rescans =
        TruckEvent::DocumentsCorrected { id: "rescan".into(), documents: p.request.documents.clone() };
    feed(&mut p, &mut sent, vec![choice, rescans]);
    assert_eq!((p.stage, p.chosen.as_ref()), (TruckStage::AwaitingRetry, None));
    assert!(p.outbox.is_empty(), "nothing goes to a closed MUST process: {:?}", p.outbox.pending());
    assert_eq!(kinds(&sent).last(), Some(&"truck.request-invalid"), "the choice is refused");
}

#[test]
fn once_a_payment_was_decided_on_nothing_restarts_even_after_that_insurer_dropped_out() {
    let (mut p, mut sent) = ingostrah_approved_renaissance_scoring();
    // The payment for ingostrah is decided on (and may have gone), then ingostrah drops out
    // before its result is known, and renaissance rejects: nobody is left.
    p.apply(hook("a2", HookPayload::Approved { insurer: ins("renaissance"), premium: Some(30000.0) }));
    assert!(p.outbox.is_pending("payment-ingostrah"));
    p.apply(hook("out", HookPayload::Rejected { insurer: ins("ingostrah"), reason: None }));
    p.apply(hook("f", failed(1205)));
    run_effects(&mut p, &mut sent);
    assert_ne!(p.stage, TruckStage::AwaitingRetry, "never a new MUST process after a payment was decided on");
    assert_eq!(p.outbox.calls_made(CALL_INIT), 1);
}
