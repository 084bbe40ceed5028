//! "My products" over the in-memory index: what a customer sees, the paging, and the
//! precise 4xx for what a caller got wrong.

use serde_json::json;

use super::*;
use crate::adapters::memory::MemoryTable;
use crate::domain::bima::api::{Calculation, SaleAccepted};
use crate::domain::ids::{BlobId, ScoringId};
use crate::domain::loan::process::{LoanEvent, LoanProcess, LoanStage};
use crate::domain::must::hook::HookPayload;
use crate::domain::must::insurer::Insurer;
use crate::domain::truck::process::{ArchivePurpose, TruckEvent, TruckProcess, TruckStage};
use crate::ports::{InfraError, ProcessStore};
use crate::services::test_support::{loan_issued, truck_request, Flaky};

/// Links as `https://signed.example/{bucket}/{key}?ttl={seconds}`; none for the key `broken`.
#[derive(Clone, Default)]
struct Links {
    broken: Option<String>,
}

impl Presigner for Links {
    async fn presign_get(&self, bucket: &str, key: &str, ttl: Duration) -> Result<String, InfraError> {
        if self.broken.as_deref() == Some(key) {
            return Err(InfraError::call("s3", "presigning failed"));
        }
        Ok(format!("https://signed.example/{bucket}/{key}?ttl={}", ttl.as_secs()))
    }
}

fn products<I>(index: I) -> Products<I, Links> {
    Products { index, presigner: Links::default(), link_ttl: Duration::from_secs(300) }
}

fn calculation() -> Calculation {
    Calculation { premium: "3000.00".into(), sum_insured: "500000".into(), risks: vec!["death".into()] }
}

/// The example loan under another number and customer, calculated.
fn calculated_loan(number: &str, customer: &str) -> LoanProcess {
    let mut loan = loan_issued();
    loan.loan_number = number.into();
    loan.customer_id = CustomerId::parse(customer).unwrap();
    let mut p = LoanProcess::start(loan);
    p.apply(LoanEvent::Calculated { calculation: calculation() });
    p
}

fn issued_loan(number: &str, customer: &str) -> LoanProcess {
    let mut p = calculated_loan(number, customer);
    let policy = SaleAccepted { policy_id: Some("100002".into()), policy_number: Some("CL-00000002".into()) };
    p.apply(LoanEvent::Sold { policy });
    p.apply(LoanEvent::PrintLinkReady { url: "https://bima.example/print/100002.pdf".into() });
    p.apply(LoanEvent::PrintFormArchived { file: None, problem: None });
    assert_eq!(p.stage, LoanStage::Issued);
    p
}

fn policy_file() -> ArchivedFile {
    ArchivedFile {
        blob_id: "b-7".into(),
        bucket: "archive".into(),
        key: "policies/REQ-2026-0001/b-7.pdf".into(),
        size: 15,
        sha256: "cf3c".into(),
        content_type: "application/pdf".into(),
    }
}

/// The example truck request, issued by Ingosstrakh with one archived file.
fn issued_truck() -> TruckProcess {
    let mut p = TruckProcess::start(truck_request());
    let ingostrah = Insurer::parse("ingostrah").unwrap();
    p.apply(TruckEvent::Initialized { scoring_id: ScoringId::parse("sc-1").unwrap() });
    for (id, payload) in [
        ("h-1", HookPayload::Started { insurers: vec![ingostrah.clone()] }),
        ("h-2", HookPayload::Approved { insurer: ingostrah.clone(), premium: Some(17847.29) }),
        (
            "h-3",
            HookPayload::PolicyIssued {
                insurer: None,
                policy_number: Some("XXX 5425779624".into()),
                files: vec![BlobId::parse("b-7").unwrap().into()],
            },
        ),
    ] {
        p.apply(TruckEvent::Hook {
            id: id.into(),
            by_content: false,
            payload,
            received_at_ms: 0,
            scoring_id: None,
        });
        if id == "h-2" {
            // The payment request the approval led to, made.
            p.apply(TruckEvent::PaymentRequested { insurer: ingostrah.clone() });
        }
    }
    p.apply(TruckEvent::FilesArchived {
        purpose: ArchivePurpose::Policy,
        files: vec![policy_file()],
        pending: vec![],
    });
    assert_eq!(p.stage, TruckStage::Issued);
    p
}

fn error_of(reply: &Reply) -> &str {
    reply.body["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_customer_sees_their_loans_and_truck_policies_with_short_lived_links() {
    let table = MemoryTable::default();
    table.create(&issued_loan("1234567890", "CUST-42")).await.unwrap();
    table.create(&issued_truck()).await.unwrap();
    table.create(&issued_loan("999", "CUST-7")).await.unwrap();
    let reply = products(table).list(Some("CUST-42"), None, None).await;
    let expected = json!({
        "customerId": "CUST-42",
        "loans": [{
            "loanNumber": "1234567890",
            "sum": "500000",
            "termMonths": 12,
            "startDate": "2023-10-27",
            "insuranceStatus": "issued",
            "creditLife": {
                "policyId": "100002",
                "policyNumber": "CL-00000002",
                "numberPending": false,
                "premium": "3000.00",
                "sumInsured": "500000",
                "risks": ["death"],
                "status": "issued",
                "printLink": "https://bima.example/print/100002.pdf",
                "printFormPending": null,
            },
        }],
        "truckPolicies": [{
            "processId": "REQ-2026-0001",
            "status": "issued",
            "insurer": "ingostrah",
            "premium": 17847.29,
            "policyNumber": "XXX 5425779624",
            "documents": [{
                "url": "https://signed.example/archive/policies/REQ-2026-0001/b-7.pdf?ttl=300",
                "expiresInSeconds": 300,
                "sha256": "cf3c",
                "contentType": "application/pdf",
            }],
            "pendingFiles": [],
            "drafts": [],
        }],
        "nextToken": null,
    });
    assert_eq!(reply, Reply::new(200, expected));
}

#[tokio::test]
async fn a_sale_without_a_policy_number_shows_it_pending_and_an_unsold_loan_shows_no_policy() {
    let table = MemoryTable::default();
    let mut sold = calculated_loan("L-1", "CUST-42");
    sold.apply(LoanEvent::Sold { policy: SaleAccepted::default() });
    table.create(&sold).await.unwrap();
    table.create(&calculated_loan("L-2", "CUST-42")).await.unwrap();
    let mut named = calculated_loan("L-3", "CUST-42");
    named.apply(LoanEvent::Sold {
        policy: SaleAccepted { policy_id: Some("100003".into()), policy_number: None },
    });
    table.create(&named).await.unwrap();
    let reply = products(table).list(Some("CUST-42"), None, None).await;
    assert_eq!(reply.status, 200);
    let loans = &reply.body["loans"];
    assert_eq!(
        (loans[0]["loanNumber"].as_str(), loans[0]["insuranceStatus"].as_str()),
        (Some("L-1"), Some("sold"))
    );
    let credit_life = &loans[0]["creditLife"];
    assert_eq!(credit_life["numberPending"], true);
    assert!(credit_life["policyNumber"].is_null() && credit_life["policyId"].is_null());
    assert_eq!(credit_life["premium"], "3000.00");
    assert_eq!(
        (loans[1]["insuranceStatus"].as_str(), loans[1]["creditLife"].is_null()),
        (Some("selling"), true)
    );
    let named = &loans[2]["creditLife"];
    assert_eq!((named["policyId"].as_str(), named["numberPending"].as_bool()), (Some("100003"), Some(true)));
}

#[tokio::test]
async fn a_missing_or_malformed_customer_id_is_a_400_naming_the_rule() {
    let list = products(MemoryTable::default());
    let long = "C".repeat(65);
    for customer in [None, Some(""), Some("a/b"), Some("CUST 42"), Some(long.as_str())] {
        let reply = list.list(customer, Some("0"), Some("zz")).await;
        assert_eq!(reply.status, 400, "{customer:?}");
        assert!(error_of(&reply).starts_with("customerId must be 1 to 64 characters"), "{reply:?}");
    }
}

#[tokio::test]
async fn a_limit_outside_1_to_100_is_a_400() {
    let table = MemoryTable::default();
    table.create(&calculated_loan("L-1", "CUST-42")).await.unwrap();
    let list = products(table);
    for limit in ["0", "101", "x", "-1", "2.5", "", " 5"] {
        let reply = list.list(Some("CUST-42"), Some(limit), None).await;
        assert_eq!(
            reply,
            Reply::new(400, json!({"error": "limit must be a whole number from 1 to 100"})),
            "{limit:?}"
        );
    }
    for limit in ["1", "100"] {
        assert_eq!(list.list(Some("CUST-42"), Some(limit), None).await.status, 200, "{limit}");
    }
}

#[tokio::test]
async fn a_next_token_this_api_did_not_issue_is_a_400() {
    let table = MemoryTable::default();
    table.create(&calculated_loan("L-1", "CUST-42")).await.unwrap();
    let list = products(table);
    let foreign = [
        "zz".to_owned(),
        String::new(),
        hex::encode("QUARANTINE#x\nTRUCK#y"),
        hex::encode("TRUCK#REQ-1"),
        hex::encode("LOAN#L-1\nLOAN#a/b#c"),
    ];
    for token in &foreign {
        let reply = list.list(Some("CUST-42"), None, Some(token)).await;
        assert_eq!(
            reply,
            Reply::new(400, json!({"error": "nextToken is not one this API issued"})),
            "{token:?}"
        );
    }
}

#[tokio::test]
async fn a_customer_with_no_products_is_a_404() {
    let table = MemoryTable::default();
    table.create(&calculated_loan("L-1", "CUST-7")).await.unwrap();
    let reply = products(table).list(Some("CUST-404"), None, None).await;
    assert_eq!(reply, Reply::new(404, json!({"error": "no products for customer CUST-404"})));
}

#[tokio::test]
async fn long_lists_come_in_pages_that_follow_each_other() {
    let table = MemoryTable::default();
    for n in 1..=5 {
        table.create(&calculated_loan(&format!("L-{n}"), "CUST-42")).await.unwrap();
    }
    table.create(&calculated_loan("L-9", "CUST-7")).await.unwrap();
    let list = products(table);
    let (mut seen, mut token, mut pages) = (Vec::new(), None::<String>, Vec::new());
    loop {
        let reply = list.list(Some("CUST-42"), Some("2"), token.as_deref()).await;
        assert_eq!(reply.status, 200);
        let loans = reply.body["loans"].as_array().unwrap().clone();
        pages.push(loans.len());
        seen.extend(loans.iter().map(|l| l["loanNumber"].as_str().unwrap().to_owned()));
        match reply.body["nextToken"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, [2, 2, 1]);
    assert_eq!(seen, ["L-1", "L-2", "L-3", "L-4", "L-5"], "each once, in order, none of another customer's");
}

#[tokio::test]
async fn a_page_after_the_last_is_empty_not_a_404() {
    let table = MemoryTable::default();
    table.create(&calculated_loan("L-1", "CUST-42")).await.unwrap();
    let after_all = Cursor { sort: "TRUCK#ZZZ".into(), pk: "TRUCK#ZZZ".into() }.encode();
    let reply = products(table).list(Some("CUST-42"), None, Some(&after_all)).await;
    assert_eq!(
        reply,
        Reply::new(
            200,
            json!({"customerId": "CUST-42", "loans": [], "truckPolicies": [], "nextToken": null})
        )
    );
}

#[tokio::test]
async fn an_index_that_fails_is_a_503() {
    let index = Flaky::new(MemoryTable::default());
    index.inner.create(&calculated_loan("L-1", "CUST-42")).await.unwrap();
    index.fail_next(1);
    let list = products(index);
    let reply = list.list(Some("CUST-42"), None, None).await;
    assert_eq!(reply, Reply::new(503, json!({"error": "temporarily unavailable, retry"})));
    assert_eq!(list.list(Some("CUST-42"), None, None).await.status, 200, "the caller's retry works");
}

#[tokio::test]
async fn a_file_that_cannot_be_linked_is_left_out_and_the_rest_is_answered() {
    let table = MemoryTable::default();
    table.create(&issued_truck()).await.unwrap();
    let list = Products {
        index: table,
        presigner: Links { broken: Some(policy_file().key) },
        link_ttl: Duration::from_secs(300),
    };
    let reply = list.list(Some("CUST-42"), None, None).await;
    assert_eq!(reply.status, 200);
    let truck = &reply.body["truckPolicies"][0];
    assert_eq!(truck["documents"], json!([]));
    assert_eq!(truck["policyNumber"], "XXX 5425779624");
}
