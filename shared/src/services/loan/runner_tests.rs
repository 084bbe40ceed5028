//! The credit-life runner on the in-memory ports with BIMA as a script: calc → sale →
//! print link → print form archived → the bank told; refusals; a sale whose outcome is
//! unknown held for review and never sent again; a bare sale answer.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::adapters::memory::{MemoryObjects, MemorySqs, MemoryTable};
use crate::domain::bima::api::SaleAccepted;
use crate::domain::loan::process::LoanStage;
use crate::domain::workflow::{Resolution, Workflow};
use crate::ports::{Download, ProcessStore};
use crate::services::retry::Backoff;
use crate::services::test_support::{
    kept, loan_issued, loan_key, sent_json, Flaky, Plan, ScriptedBima, LOAN_NUMBER, PRINT_FORM_PDF,
};

type Runner = LoanRunner<MemoryTable, ScriptedBima, MemoryObjects, MemorySqs>;

/// The credit-life line's ports, with the example loan stored.
struct Loans {
    table: MemoryTable,
    bima: ScriptedBima,
    objects: MemoryObjects,
    bank: MemorySqs,
}

impl Loans {
    async fn new() -> Loans {
        let loans = Loans::empty();
        loans.table.create(&LoanProcess::start(loan_issued())).await.unwrap();
        loans
    }

    fn empty() -> Loans {
        Loans {
            table: MemoryTable::default(),
            bima: ScriptedBima::default(),
            objects: MemoryObjects::default(),
            bank: MemorySqs::default(),
        }
    }

    fn runner(&self, print_link: PrintLinkCaller) -> Runner {
        self.runner_telling(print_link, self.bank.clone())
    }

    /// A runner whose notices go to `outbox`.
    fn runner_telling<B>(
        &self,
        print_link: PrintLinkCaller,
        outbox: B,
    ) -> LoanRunner<MemoryTable, ScriptedBima, MemoryObjects, B> {
        LoanRunner {
            engine: Engine {
                store: self.table.clone(),
                effect_lease: Duration::from_millis(50),
                backoff: Backoff { attempts: 1, first_delay: Duration::from_millis(1), ..Backoff::default() },
                refusal: bima_refusal,
                partner_idempotent: false,
            },
            bima: self.bima.clone(),
            objects: self.objects.clone(),
            outbox,
            archive_bucket: "archive".into(),
            print_link,
        }
    }

    async fn process(&self) -> LoanProcess {
        self.table.load::<LoanProcess>(&loan_key()).await.unwrap().expect("the loan is stored").value
    }

    fn notices(&self) -> Vec<Value> {
        sent_json(&self.bank)
    }

    /// The one notice sent so far.
    fn notice(&self) -> Value {
        let notices = self.notices();
        let [notice] = &notices[..] else { panic!("expected one notice: {notices:?}") };
        notice.clone()
    }
}

fn drive() -> LoanMessage {
    LoanMessage::Drive { loan_number: LOAN_NUMBER.into() }
}

fn operator(event: LoanEvent) -> LoanMessage {
    LoanMessage::Event { loan_number: LOAN_NUMBER.into(), event }
}

fn print_link_of(policy_id: &str) -> String {
    format!("https://bima.example/print/{policy_id}.pdf")
}

#[tokio::test]
async fn a_loan_is_calculated_sold_linked_archived_and_reported_issued_once() {
    let l = Loans::new().await;
    l.runner(PrintLinkCaller::Polis).handle(drive()).await.unwrap();
    let p = l.process().await;
    assert_eq!(p.stage, LoanStage::Issued);
    assert_eq!(l.bima.sales(), [(loan_issued().sale_request(), "1234567890:sale".to_owned())]);
    let (request, key) = &l.bima.print_links()[0];
    assert_eq!(
        (request.policy_id.as_str(), request.email.as_deref(), request.phone.as_deref(), key.as_str()),
        ("100002", Some("Testov@bima.tj"), Some("935550011"), "1234567890:print-link"),
        "BIMA sends the link to the first e-mail and the first mobile"
    );
    assert_eq!(l.bima.fetches(), [(print_link_of("100002"), MAX_FILE_BYTES)]);
    let stored = l.objects.object("archive", "credit-life/1234567890/100002.pdf").expect("archived");
    assert_eq!(stored.bytes, PRINT_FORM_PDF);
    let notice = l.notice();
    assert_eq!(notice["type"], "bima.policy-issued");
    assert_eq!(notice["loanNumber"], LOAN_NUMBER);
    assert_eq!(
        (notice["policyId"].as_str(), notice["policyNumber"].as_str()),
        (Some("100002"), Some("CL-00000002"))
    );
    assert_eq!(
        (notice["premium"].as_str(), notice["sumInsured"].as_str()),
        (Some("3000.00"), Some("500000"))
    );
    assert_eq!(notice["risks"], json!(["death", "disability"]));
    assert_eq!(notice["printLink"], print_link_of("100002"));
    assert_eq!(notice["printForm"]["key"], "credit-life/1234567890/100002.pdf");
    assert_eq!(notice["printForm"]["sha256"], stored.sha256);
    assert!(notice.get("printFormPending").is_none());
    assert!(kept(&l.table).await.is_empty());
}

#[tokio::test]
async fn a_redelivered_message_after_the_issue_changes_nothing() {
    let l = Loans::new().await;
    let runner = l.runner(PrintLinkCaller::Polis);
    runner.handle(drive()).await.unwrap();
    let before = l.table.processes();
    for _ in 0..3 {
        runner.handle(drive()).await.unwrap();
    }
    assert_eq!(l.table.processes(), before, "not written again");
    assert_eq!((l.bima.calls("calc"), l.bima.calls("sale"), l.bima.calls("print-link")), (1, 1, 1));
    assert_eq!(l.notices().len(), 1);
}

#[tokio::test]
async fn a_refused_calculation_fails_the_loan_and_tells_the_bank_why() {
    let l = Loans::new().await;
    l.bima.plan("calc", &[Plan::Refused(422)]);
    l.runner(PrintLinkCaller::Polis).handle(drive()).await.unwrap();
    assert_eq!(l.process().await.stage, LoanStage::Failed);
    assert_eq!(l.bima.calls("sale"), 0, "no sale without a premium");
    let notice = l.notice();
    assert_eq!(notice["type"], "bima.failed");
    assert_eq!(
        (
            notice["error"]["code"].as_str(),
            notice["error"]["category"].as_str(),
            notice["error"]["message"].as_str()
        ),
        (Some("bima-http-422"), Some("bima"), Some("calc refused"))
    );
}

#[tokio::test]
async fn a_refused_sale_fails_the_loan_and_is_not_sent_again() {
    let l = Loans::new().await;
    l.bima.plan("sale", &[Plan::Refused(400)]);
    let runner = l.runner(PrintLinkCaller::Polis);
    runner.handle(drive()).await.unwrap();
    runner.handle(drive()).await.unwrap();
    let p = l.process().await;
    assert_eq!(p.stage, LoanStage::Failed);
    assert_eq!(p.error.as_ref().map(|e| e.code.as_str()), Some("bima-http-400"));
    assert_eq!(l.bima.calls("sale"), 1);
    assert_eq!(l.bima.calls("print-link"), 0);
    assert_eq!(l.notice()["type"], "bima.failed");
}

#[tokio::test]
async fn an_ambiguous_sale_is_held_for_review_and_never_sent_again() {
    let l = Loans::new().await;
    l.bima.plan("sale", &[Plan::LostAnswer]);
    let runner = l.runner(PrintLinkCaller::Polis);
    runner.handle(drive()).await.unwrap();
    let p = l.process().await;
    assert_eq!(p.stage_name(), "needs-review");
    let items = kept(&l.table).await;
    let [item] = &items[..] else { panic!("{items:?}") };
    assert_eq!(item.origin, KeptOrigin::Review { process: loan_key(), effect: "sale".into(), attempt: 1 });
    assert_eq!(item.reason, "HTTP 502 Bad Gateway");
    let notice = l.notice();
    assert_eq!(
        (notice["type"].as_str(), notice["effect"].as_str()),
        (Some("bima.needs-review"), Some("sale"))
    );
    for _ in 0..3 {
        runner.handle(drive()).await.unwrap();
    }
    assert_eq!((l.bima.calls("sale"), l.bima.changes("sale")), (1, 1), "a sale made twice is money");
    assert_eq!(l.bima.calls("print-link"), 0);
    assert_eq!(l.notices().len(), 1, "the bank is told once");
    assert_eq!(l.process().await.stage_name(), "needs-review");
}

#[tokio::test]
async fn an_operator_saying_the_held_sale_happened_gets_the_policy_issued_without_a_second_sale() {
    let l = Loans::new().await;
    l.bima.plan("sale", &[Plan::LostAnswer]);
    let runner = l.runner(PrintLinkCaller::Polis);
    runner.handle(drive()).await.unwrap();
    let happened = Resolution::Happened { reference: Some("100234".into()), number: Some("CL-9".into()) };
    runner
        .handle(operator(LoanEvent::ReviewResolved {
            id: "op-1".into(),
            effect: "sale".into(),
            attempt: 1,
            resolution: happened,
        }))
        .await
        .unwrap();
    let p = l.process().await;
    assert_eq!(p.stage, LoanStage::Issued);
    assert_eq!(l.bima.calls("sale"), 1);
    assert_eq!(l.bima.print_links()[0].0.policy_id, "100234");
    assert!(kept(&l.table).await.is_empty(), "the review is off the list");
    let issued = l.notices().into_iter().find(|n| n["type"] == "bima.policy-issued").expect("issued");
    assert_eq!(
        (issued["policyId"].as_str(), issued["policyNumber"].as_str()),
        (Some("100234"), Some("CL-9"))
    );
}

#[tokio::test]
async fn an_operator_saying_the_held_sale_did_not_happen_gets_it_sent_again() {
    let l = Loans::new().await;
    l.bima.plan("sale", &[Plan::LostAnswer]);
    let runner = l.runner(PrintLinkCaller::Polis);
    runner.handle(drive()).await.unwrap();
    let answer = LoanEvent::ReviewResolved {
        id: "op-1".into(),
        effect: "sale".into(),
        attempt: 1,
        resolution: Resolution::DidNotHappen,
    };
    runner.handle(operator(answer)).await.unwrap();
    assert_eq!(l.process().await.stage, LoanStage::Issued);
    assert_eq!(l.bima.calls("sale"), 2);
}

#[tokio::test]
async fn a_sale_that_surely_was_not_sent_is_sent_again_on_the_next_delivery() {
    let l = Loans::new().await;
    l.bima.plan("sale", &[Plan::NotSent]);
    let runner = l.runner(PrintLinkCaller::Polis);
    assert!(matches!(runner.handle(drive()).await, Err(RetryLater::Call(CallError::NotSent(_)))));
    assert_eq!(l.process().await.stage, LoanStage::Selling, "the premium is kept; only the sale waits");
    runner.handle(drive()).await.unwrap();
    assert_eq!((l.bima.calls("calc"), l.bima.calls("sale"), l.bima.changes("sale")), (1, 2, 1));
    assert_eq!(l.process().await.stage, LoanStage::Issued);
}

#[tokio::test]
async fn a_bare_sale_answer_leaves_the_loan_sold_with_its_number_pending() {
    let l = Loans::new().await;
    l.bima.answer_sale(SaleAccepted::default());
    l.runner(PrintLinkCaller::Polis).handle(drive()).await.unwrap();
    let p = l.process().await;
    assert_eq!(p.stage, LoanStage::Sold);
    assert!(l.bima.print_links().is_empty(), "no print link without a policy id");
    assert!(l.bima.fetches().is_empty());
    assert_eq!(
        l.notice(),
        json!({
            "type": "bima.policy-sold",
            "eventId": l.notice()["eventId"],
            "loanNumber": LOAN_NUMBER,
            "premium": "3000.00",
            "sumInsured": "500000",
            "risks": ["death", "disability"],
        })
    );
}

#[tokio::test]
async fn a_print_link_bima_sends_itself_is_not_asked_for() {
    let l = Loans::new().await;
    l.runner(PrintLinkCaller::Bima).handle(drive()).await.unwrap();
    assert_eq!(l.process().await.stage, LoanStage::Issued);
    assert!(l.bima.print_links().is_empty() && l.bima.fetches().is_empty());
    let notice = l.notice();
    assert_eq!(
        (notice["type"].as_str(), notice["policyId"].as_str()),
        (Some("bima.policy-issued"), Some("100002"))
    );
    for field in ["printLink", "printForm", "printFormPending"] {
        assert!(notice.get(field).is_none(), "{field}: {notice}");
    }
}

#[tokio::test]
async fn a_print_link_refused_after_the_sale_leaves_the_policy_issued() {
    let l = Loans::new().await;
    l.bima.plan("print-link", &[Plan::Refused(404)]);
    l.runner(PrintLinkCaller::Polis).handle(drive()).await.unwrap();
    let p = l.process().await;
    assert_eq!(p.stage, LoanStage::Issued, "BIMA has sold: never failed for what follows");
    assert_eq!(p.late_errors.len(), 1);
    let notice = l.notice();
    assert_eq!(notice["type"], "bima.policy-issued");
    assert_eq!(notice["printFormPending"], "bima-http-404: print-link refused");
    assert!(l.bima.fetches().is_empty());
}

#[tokio::test]
async fn a_print_form_on_a_host_we_do_not_trust_is_linked_not_archived() {
    let l = Loans::new().await;
    l.bima.serve_print_form(None);
    l.runner(PrintLinkCaller::Polis).handle(drive()).await.unwrap();
    assert_eq!(l.process().await.stage, LoanStage::Issued);
    assert!(l.objects.keys("archive").is_empty());
    let notice = l.notice();
    assert_eq!(notice["printLink"], print_link_of("100002"));
    assert!(notice.get("printForm").is_none() && notice.get("printFormPending").is_none(), "{notice}");
    assert!(kept(&l.table).await.is_empty());
}

#[tokio::test]
async fn a_print_form_over_the_size_cap_is_marked_pending_and_kept_for_an_operator() {
    let l = Loans::new().await;
    let huge = vec![b'%'; MAX_FILE_BYTES as usize + 1];
    l.bima.serve_print_form(Some(Download { bytes: huge, content_type: Some("application/pdf".into()) }));
    l.runner(PrintLinkCaller::Polis).handle(drive()).await.unwrap();
    let p = l.process().await;
    assert_eq!(p.stage, LoanStage::Issued);
    assert!(l.objects.keys("archive").is_empty());
    let pending = p.print_form_pending.expect("noted on the policy");
    assert!(pending.starts_with("bima-unusable-answer:") && pending.contains("over the"), "{pending}");
    assert_eq!(l.notice()["printFormPending"], pending);
    let items = kept(&l.table).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].origin, KeptOrigin::ArchivePending { process: loan_key(), attempt: 1 });
}

#[tokio::test]
async fn a_print_form_failing_again_and_again_is_marked_pending_after_the_attempts_then_retried_by_an_operator(
) {
    let l = Loans::new().await;
    let runner = l.runner(PrintLinkCaller::Polis);
    l.bima.plan("print-form", &[Plan::NotSent; ARCHIVE_ATTEMPTS as usize]);
    for delivery in 1..ARCHIVE_ATTEMPTS {
        assert!(runner.handle(drive()).await.is_err(), "delivery {delivery} is given back");
        assert_eq!(l.process().await.stage, LoanStage::Archiving);
    }
    runner.handle(drive()).await.unwrap();
    let p = l.process().await;
    assert_eq!(p.stage, LoanStage::Issued);
    assert_eq!(
        p.print_form_pending.as_deref(),
        Some("still failing after 5 attempts: not sent: connection refused")
    );
    let items = kept(&l.table).await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].origin,
        KeptOrigin::ArchivePending { process: loan_key(), attempt: ARCHIVE_ATTEMPTS }
    );
    // The operator's retry archives it, and the bank hears of the policy again, with its form.
    runner.handle(operator(LoanEvent::RetryArchive { id: "retry-1".into() })).await.unwrap();
    let p = l.process().await;
    assert_eq!((p.stage, p.print_form_pending.as_deref()), (LoanStage::Issued, None));
    assert!(l.objects.object("archive", "credit-life/1234567890/100002.pdf").is_some());
    let issued: Vec<Value> = l.notices().into_iter().filter(|n| n["type"] == "bima.policy-issued").collect();
    assert_eq!(issued.len(), 2);
    assert!(issued[0].get("printForm").is_none() && issued[1]["printForm"]["key"].is_string());
}

#[tokio::test]
async fn a_policy_id_unfit_for_a_key_is_archived_under_a_plain_name() {
    let l = Loans::new().await;
    l.bima.answer_sale(SaleAccepted { policy_id: Some("100/../2".into()), policy_number: None });
    l.runner(PrintLinkCaller::Polis).handle(drive()).await.unwrap();
    assert_eq!(l.objects.keys("archive"), ["credit-life/1234567890/print-form.pdf"]);
}

#[tokio::test]
async fn a_loan_not_stored_yet_is_given_back_for_later() {
    let l = Loans::empty();
    match l.runner(PrintLinkCaller::Polis).handle(drive()).await {
        Err(RetryLater::NotYet(why)) => assert!(why.contains("LOAN#1234567890"), "{why}"),
        other => panic!("expected a retry later, got {other:?}"),
    }
    assert_eq!(l.bima.calls("calc"), 0);
    assert!(kept(&l.table).await.is_empty() && l.notices().is_empty());
}

#[tokio::test]
async fn a_held_sale_whose_notice_could_not_be_sent_is_told_on_the_next_delivery() {
    let l = Loans::new().await;
    l.bima.plan("sale", &[Plan::LostAnswer]);
    let outbox = Flaky::new(l.bank.clone());
    let runner = l.runner_telling(PrintLinkCaller::Polis, outbox.clone());
    outbox.fail_next(1);
    assert!(runner.handle(drive()).await.is_err(), "the notice is not sent: given back");
    // The hold was written before the notice; the next delivery reads it and tells the bank.
    runner.handle(drive()).await.unwrap();
    assert_eq!(l.process().await.stage_name(), "needs-review");
    assert_eq!(l.notice()["type"], "bima.needs-review");
    assert_eq!(l.bima.calls("sale"), 1);
}
