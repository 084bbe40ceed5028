use proptest::prelude::*;

use super::*;
use crate::domain::bank::truck::{PaymentChoice, TruckBankEvent};

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

fn hook(id: &str, payload: HookPayload) -> ProcessEvent {
    ProcessEvent::Hook { id: id.into(), payload }
}

/// Plays the step runner: performs every pending effect successfully, feeding
/// its result back, and collects the notifications it would send.
fn run_effects(p: &mut TruckProcess, sent: &mut Vec<TruckNotification>) {
    while let Some(effect) = p.pending.first().cloned() {
        let result = match &effect {
            Effect::InitScoring => {
                Some(ProcessEvent::Initialized { scoring_id: ScoringId::parse("sc-1").unwrap() })
            }
            Effect::SubmitDocuments { round, .. } => Some(ProcessEvent::DocumentsSubmitted { round: *round }),
            Effect::SubmitContract => Some(ProcessEvent::ContractSubmitted),
            Effect::RequestPayment { insurer, .. } => {
                Some(ProcessEvent::PaymentRequested { insurer: insurer.clone() })
            }
            Effect::ArchiveFiles { purpose, blob_ids } => Some(ProcessEvent::FilesArchived {
                purpose: *purpose,
                files: blob_ids
                    .iter()
                    .map(|b| ArchivedFile {
                        blob_id: b.to_string(),
                        bucket: "bucket".into(),
                        key: format!("k/{b}"),
                        size: 10,
                        sha256: "00".into(),
                    })
                    .collect(),
            }),
            Effect::SubmitPaymentOrder { .. } => Some(ProcessEvent::PaymentOrderSubmitted),
            Effect::Notify(n) => {
                sent.push(n.clone());
                None
            }
        };
        p.complete(&effect.key());
        if let Some(event) = result {
            let outcome = p.apply(event);
            assert!(outcome != Outcome::Rejected(String::new()), "{outcome:?}");
        }
    }
}

fn started() -> (TruckProcess, Vec<TruckNotification>) {
    let mut p = TruckProcess::start(request(PaymentMethod::Link, None));
    let mut sent = Vec::new();
    run_effects(&mut p, &mut sent);
    (p, sent)
}

fn feed(p: &mut TruckProcess, sent: &mut Vec<TruckNotification>, events: Vec<ProcessEvent>) {
    for e in events {
        p.apply(e);
        run_effects(p, sent);
    }
}

fn blob(id: &str) -> BlobId {
    BlobId::parse(id).unwrap()
}

fn happy_hooks() -> Vec<ProcessEvent> {
    vec![
        hook("h1", HookPayload::DocumentsTypesRequired { type_ids: vec![11, 12] }),
        hook("h2", HookPayload::DocumentsUploadCompleted),
        hook("h3", HookPayload::ContractUpdateCompleted { prefilled_contract: None }),
        hook("h4", HookPayload::Started { insurers: vec![ins("ingostrah")] }),
        hook("h5", HookPayload::Approved { insurer: ins("ingostrah"), premium: Some(1000.0) }),
        hook("h6", HookPayload::DraftIssued { insurer: None, blob_ids: vec![blob("d1")] }),
        hook("h7", HookPayload::PaymentLinkGenerated { insurer: None, url: "https://pay/x".into() }),
        hook("h8", HookPayload::PolicyIsPaid),
        hook(
            "h9",
            HookPayload::PolicyIssued { policy_number: Some("XXX 1".into()), blob_ids: vec![blob("p1")] },
        ),
    ]
}

fn kinds(sent: &[TruckNotification]) -> Vec<String> {
    sent.iter()
        .map(|n| serde_json::to_value(&n.notice).unwrap()["type"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn happy_path_issues_and_archives_the_policy() {
    let (mut p, mut sent) = started();
    assert_eq!(p.stage, Stage::Preparing);
    feed(&mut p, &mut sent, happy_hooks());
    assert_eq!(p.stage, Stage::Issued);
    assert!(p.pending.is_empty());
    assert_eq!(p.contract, Contract::Accepted);
    assert_eq!(p.documents, Documents::Accepted);
    assert_eq!(p.chosen, Some(ins("ingostrah")));
    assert_eq!(p.policy.as_ref().unwrap().files.len(), 1);
    assert_eq!(
        kinds(&sent),
        ["truck.offer", "truck.payment-link-ready", "truck.paid", "truck.policy-issued"]
    );
    assert_eq!(sent[3].event_id, "REQ-2026-0001-4");
}

#[test]
fn contract_goes_after_documents() {
    let (mut p, _) = started();
    p.apply(hook("h1", HookPayload::DocumentsTypesRequired { type_ids: vec![11] }));
    assert_eq!(p.pending, vec![Effect::SubmitDocuments { round: 1, type_ids: vec![11] }]);
    assert_eq!(p.contract, Contract::NotSent);
    p.complete("documents-1");
    p.apply(ProcessEvent::DocumentsSubmitted { round: 1 });
    assert_eq!(p.pending, vec![Effect::SubmitContract]);
}

#[test]
fn prefilled_contract_before_ours_is_recorded_not_taken_as_acceptance() {
    let (mut p, mut sent) = started();
    let prefilled = serde_json::json!({"vin": "WMA06XZZ8GP000001"});
    p.apply(hook("c0", HookPayload::ContractUpdateCompleted { prefilled_contract: Some(prefilled.clone()) }));
    assert_eq!(p.contract, Contract::NotSent);
    assert_eq!(p.prefilled_contract, Some(prefilled));
    feed(&mut p, &mut sent, happy_hooks());
    assert_eq!(p.stage, Stage::Issued);
}

#[test]
fn missing_documents_are_asked_from_the_bank_then_all_sent() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, vec![hook("h1", HookPayload::DocumentsTypesRequired { type_ids: vec![11, 22] })]);
    assert!(matches!(&p.documents, Documents::NeedsFix { problems } if problems[0].type_id == 22));
    assert_eq!(kinds(&sent), ["truck.documents-to-fix"]);
    let passport = BankDocument { type_id: 22, s3_key: "in/pass.pdf".into(), file_name: "pass.pdf".into() };
    p.apply(ProcessEvent::DocumentsCorrected { id: "b1".into(), documents: vec![passport] });
    assert_eq!(p.pending, vec![Effect::SubmitDocuments { round: 1, type_ids: vec![11, 22] }]);
}

#[test]
fn rejected_upload_is_fixed_by_the_bank_and_only_the_fix_resent() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, vec![hook("h1", HookPayload::DocumentsTypesRequired { type_ids: vec![11, 12] })]);
    let problems = vec![DocumentProblem { type_id: 11, reason: Some("unreadable".into()) }];
    feed(&mut p, &mut sent, vec![hook("h2", HookPayload::DocumentsUploadFailed { problems })]);
    assert_eq!(kinds(&sent), ["truck.documents-to-fix"]);
    let sts = BankDocument { type_id: 11, s3_key: "in/sts2.pdf".into(), file_name: "sts2.pdf".into() };
    p.apply(ProcessEvent::DocumentsCorrected { id: "b1".into(), documents: vec![sts] });
    assert_eq!(p.pending, vec![Effect::SubmitDocuments { round: 2, type_ids: vec![11] }]);
    run_effects(&mut p, &mut sent);
    // The contract already went with round 1; it is not sent twice.
    assert_eq!(p.contract, Contract::Submitted);
    assert_eq!(p.documents, Documents::Submitted { round: 2 });
}

#[test]
fn two_insurers_cheapest_approved_is_chosen_after_both_answer() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..3].to_vec());
    feed(
        &mut p,
        &mut sent,
        vec![
            hook("s", HookPayload::Started { insurers: vec![ins("ingostrah"), ins("renaissance")] }),
            hook("a1", HookPayload::Approved { insurer: ins("ingostrah"), premium: Some(20000.0) }),
        ],
    );
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
    let mut p = TruckProcess::start(request(PaymentMethod::Link, Some("renaissance")));
    let mut sent = Vec::new();
    run_effects(&mut p, &mut sent);
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
fn no_insurer_left_ends_the_process_rejected() {
    let (mut p, mut sent) = started();
    feed(
        &mut p,
        &mut sent,
        vec![
            hook("s", HookPayload::Started { insurers: vec![ins("ingostrah"), ins("renaissance")] }),
            hook("r", HookPayload::Rejected { insurer: ins("ingostrah"), reason: None }),
        ],
    );
    assert_eq!(p.stage, Stage::Scoring);
    feed(
        &mut p,
        &mut sent,
        vec![hook(
            "f",
            HookPayload::CompanyFailed { insurer: ins("renaissance"), code: 1601, message: None },
        )],
    );
    assert_eq!(p.stage, Stage::Rejected);
    assert_eq!(kinds(&sent), ["truck.offer", "truck.offer", "truck.rejected"]);
    let late = p.apply(hook("late", HookPayload::Approved { insurer: ins("ingostrah"), premium: None }));
    assert!(matches!(late, Outcome::Ignored(_)));
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
    feed(&mut p, &mut sent, vec![hook("paid", HookPayload::PolicyIsPaid)]);
    feed(
        &mut p,
        &mut sent,
        vec![hook(
            "f2",
            HookPayload::CompanyFailed { insurer: ins("renaissance"), code: 1603, message: None },
        )],
    );
    assert_eq!(p.stage, Stage::Failed, "after payment there is no switching insurers");
    assert_eq!(p.error.as_ref().unwrap().code, "1603");
}

#[test]
fn failed_hook_ends_the_process_with_the_code_and_customer_text() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, vec![hook("f", HookPayload::Failed { code: 1421, message: None })]);
    assert_eq!(p.stage, Stage::Failed);
    let TruckNotice::Failed { error } = &sent[0].notice else { panic!("{sent:?}") };
    assert_eq!(error.code, "1421");
    assert_eq!(error.category, "policy-issuing");
    assert_eq!(error.customer_text_ru, "Введите действующую Диагностическую Карту.");
}

#[test]
fn invoice_flow_archives_the_invoice_and_submits_the_payment_order() {
    let mut p = TruckProcess::start(request(PaymentMethod::Invoice, None));
    let mut sent = Vec::new();
    run_effects(&mut p, &mut sent);
    let mut hooks = happy_hooks()[..5].to_vec();
    hooks.push(hook(
        "inv",
        HookPayload::PaymentInvoiceGenerated { insurer: None, blob_ids: vec![blob("i1")] },
    ));
    feed(&mut p, &mut sent, hooks);
    assert!(matches!(&p.payment, Payment::InvoiceReady { files } if files[0].blob_id == "i1"));
    let order = BankDocument { type_id: 100, s3_key: "in/po.pdf".into(), file_name: "po.pdf".into() };
    feed(&mut p, &mut sent, vec![ProcessEvent::PaymentOrderReceived { id: "po".into(), document: order }]);
    assert_eq!(p.payment, Payment::OrderSubmitted);
    assert_eq!(kinds(&sent), ["truck.offer", "truck.invoice-ready"]);
}

#[test]
fn contradictions_are_rejected_and_leave_the_process_unchanged() {
    let mut fresh = TruckProcess::start(request(PaymentMethod::Link, None));
    let before = fresh.clone();
    let o = fresh.apply(hook("x", HookPayload::PolicyIsPaid));
    assert!(matches!(o, Outcome::Rejected(_)), "{o:?}");
    assert_eq!(fresh, before);
    let (mut p, _) = started();
    let before = p.clone();
    let o =
        p.apply(hook("y", HookPayload::PaymentLinkGenerated { insurer: None, url: "https://x/y".into() }));
    assert!(matches!(o, Outcome::Rejected(_)), "{o:?}");
    assert_eq!(p, before);
    let o = p.apply(ProcessEvent::Initialized { scoring_id: ScoringId::parse("other").unwrap() });
    assert!(matches!(o, Outcome::Rejected(_)), "{o:?}");
}

#[test]
fn a_duplicate_hook_is_ignored() {
    let (mut p, mut sent) = started();
    feed(&mut p, &mut sent, happy_hooks()[..5].to_vec());
    let before = p.clone();
    let o = p.apply(happy_hooks()[4].clone());
    assert_eq!(o, Outcome::Ignored("duplicate event h5".into()));
    assert_eq!(p, before);
}

/// The final state with the order of applied ids forgotten.
fn normalised(mut p: TruckProcess) -> TruckProcess {
    p.applied.sort();
    p
}

proptest! {
    /// Steps 3 and 4 in either order, and any hook delivered again at any later
    /// point, reach the same final state and the same notifications.
    #[test]
    fn order_of_steps_3_and_4_and_duplicates_do_not_change_the_outcome(
        contract_first in any::<bool>(),
        prefill_first in any::<bool>(),
        duplicates in proptest::collection::vec((0usize..9, 0usize..10), 0..6),
    ) {
        let (mut reference, mut ref_sent) = started();
        feed(&mut reference, &mut ref_sent, happy_hooks());

        let mut hooks = happy_hooks();
        if contract_first {
            hooks.swap(1, 2);
        }
        if prefill_first {
            hooks.insert(0, hook("pre", HookPayload::ContractUpdateCompleted {
                prefilled_contract: Some(serde_json::json!({"vin": "X"})),
            }));
        }
        for (which, offset) in duplicates {
            let original = happy_hooks()[which].clone();
            let pos = hooks.iter().position(|h| *h == original).unwrap();
            let at = (pos + 1 + offset).min(hooks.len());
            hooks.insert(at, original);
        }
        let (mut p, mut sent) = started();
        feed(&mut p, &mut sent, hooks);
        if prefill_first {
            prop_assert_eq!(p.prefilled_contract.take(), Some(serde_json::json!({"vin": "X"})));
            p.applied.retain(|id| id != "pre");
        }
        prop_assert_eq!(normalised(p), normalised(reference));
        prop_assert_eq!(sent, ref_sent);
    }

    /// Any sequence of any events: no panic, and the invariants hold after each.
    #[test]
    fn apply_is_total_and_keeps_invariants(events in proptest::collection::vec(any_event(), 0..40)) {
        let (mut p, mut sent) = started();
        for e in events {
            let was_terminal = p.stage.is_terminal();
            let before = p.clone();
            let outcome = p.apply(e);
            if !matches!(outcome, Outcome::Advanced) {
                prop_assert_eq!(&p, &before);
            }
            if was_terminal {
                prop_assert_eq!(&p, &before);
            }
            if p.stage.is_terminal() {
                prop_assert!(p.pending.iter().all(|e| matches!(e, Effect::Notify(_))));
            }
            if let Some(chosen) = &p.chosen {
                let approved = matches!(p.offers.get(chosen), Some(Offer::Approved { .. }));
                prop_assert!(approved, "chose an insurer that did not approve");
            }
            run_effects(&mut p, &mut sent);
        }
    }
}

fn any_insurer() -> impl Strategy<Value = Insurer> {
    prop_oneof![Just(ins("ingostrah")), Just(ins("renaissance"))]
}

fn any_event() -> impl Strategy<Value = ProcessEvent> {
    let id = "[a-d]{1,2}";
    let payload = prop_oneof![
        proptest::collection::vec(prop_oneof![Just(11u32), Just(12), Just(22)], 0..3)
            .prop_map(|type_ids| HookPayload::DocumentsTypesRequired { type_ids }),
        Just(HookPayload::DocumentsUploadFailed {
            problems: vec![DocumentProblem { type_id: 11, reason: None }]
        }),
        Just(HookPayload::DocumentsUploadCompleted),
        Just(HookPayload::ContractUpdateCompleted { prefilled_contract: None }),
        proptest::collection::vec(any_insurer(), 0..3).prop_map(|insurers| HookPayload::Started { insurers }),
        (any_insurer(), proptest::option::of(1.0f64..1e6))
            .prop_map(|(insurer, premium)| HookPayload::Approved { insurer, premium }),
        any_insurer().prop_map(|insurer| HookPayload::Rejected { insurer, reason: None }),
        any_insurer().prop_map(|insurer| HookPayload::CompanyFailed { insurer, code: 1501, message: None }),
        Just(HookPayload::PaymentLinkGenerated { insurer: None, url: "https://p/1".into() }),
        Just(HookPayload::PaymentInvoiceGenerated { insurer: None, blob_ids: vec![blob("i")] }),
        Just(HookPayload::PolicyIsPaid),
        Just(HookPayload::PolicyIssued { policy_number: None, blob_ids: vec![blob("p")] }),
        (1000u32..2000).prop_map(|code| HookPayload::Failed { code, message: None }),
    ];
    let doc = BankDocument { type_id: 11, s3_key: "in/a.pdf".into(), file_name: "a.pdf".into() };
    prop_oneof![
        8 => (id, payload).prop_map(|(id, payload)| ProcessEvent::Hook { id, payload }),
        1 => (id, Just(doc.clone())).prop_map(|(id, d)| ProcessEvent::DocumentsCorrected { id, documents: vec![d] }),
        1 => (id, Just(doc)).prop_map(|(id, document)| ProcessEvent::PaymentOrderReceived { id, document }),
        1 => (0u32..3).prop_map(|round| ProcessEvent::DocumentsSubmitted { round }),
        1 => any_insurer().prop_map(|insurer| ProcessEvent::PaymentRequested { insurer }),
        1 => Just(ProcessEvent::ContractSubmitted),
        1 => Just(ProcessEvent::EffectFailed { error: ErrorReport::integration("x", "y") }),
    ]
}
