//! No personal data in any log line: full flows (a truck policy, a credit-life
//! policy), a refused loan event, one with a tax id sent as a number, and a quarantined hook run with known personal
//! data (names, passport and licence numbers, tax ids, phones, e-mails,
//! addresses), with every function logging at debug level, then every line every
//! function wrote is searched for each value.

mod common;

use common::{harness, ids, run_on, FLOW_TIMEOUT};
use polis_e2e::{Harness, StackOptions, HOOK_SECRET};
use polis_must_sim::Scenario;
use serde_json::json;

/// Personal data of the test's customers; each value is unique enough to find anywhere.
const CANARIES: [&str; 14] = [
    "Канарейкин",   // truck policyholder's name
    "770812345678", // their INN
    "+79995550101", // their phone
    "canary.truck@pii.test",
    "Стрижов Игнат", // driver's name
    "7701999888",    // driver's licence
    "ЛАСТОЧКИНА",    // borrower's last name
    "ГУЛЬНОРА",      // borrower's first name
    "987654321",     // borrower's tax id
    "PIIPASS4242",   // passport number
    "931112233",     // phone
    "canary.loan@pii.tj",
    "ул. Канареечная",   // street
    "Отдел ПИИ Душанбе", // passport issuer
];

#[test]
fn no_personal_data_reaches_any_log_line() {
    // Debug logs everywhere (ours and the libraries'): not even those may carry personal data.
    run_on(StackOptions { log_filter: Some("debug"), ..StackOptions::default() }, async {
        let h = harness();
        let (pid, vin) = ids("pii");
        let mut request = Harness::truck_request(
            &pid,
            &format!("cust-{pid}"),
            &vin,
            false,
            vec![
                h.put_document(&pid, 11, "sts.pdf").await.unwrap(),
                h.put_document(&pid, 12, "pts.pdf").await.unwrap(),
            ],
        );
        for party in ["policyholder", "owner"] {
            request[party]["name"] = json!("Канарейкин Пётр Петрович");
            request[party]["inn"] = json!("770812345678");
            request[party]["phone"] = json!("+79995550101");
            request[party]["email"] = json!("canary.truck@pii.test");
        }
        request["drivers"][0]["fullName"] = json!("Стрижов Игнат");
        request["drivers"][0]["licenseNumber"] = json!("7701999888");
        h.must.sim.set_scenario(&vin, Scenario::default());
        h.send_bank_event(&request).await.unwrap();

        let (number, _) = ids("pii-loan");
        // BIMA names the policy: the print link (the customer's own link) goes through us too.
        let named = polis_bima_sim::Scenario {
            sale_answer: Some(polis_bima_sim::SaleAnswer::WithIds),
            ..Default::default()
        };
        h.bima.sim.set_scenario("432100", named);
        let mut loan = Harness::loan_event(&number, &format!("C-{number}"), "432100");
        let borrower = &mut loan["borrower"];
        borrower["lastName"] = json!("ЛАСТОЧКИНА");
        borrower["firstName"] = json!("ГУЛЬНОРА");
        borrower["tin"] = json!("987654321");
        borrower["identityDocuments"][0]["number"] = json!("PIIPASS4242");
        borrower["identityDocuments"][0]["issuedBy"] = json!("Отдел ПИИ Душанбе");
        borrower["phones"] = json!([{"kind": "mobile", "number": "931112233"}]);
        borrower["emails"] = json!(["canary.loan@pii.tj"]);
        borrower["addresses"][0]["street"] = json!("ул. Канареечная");
        h.send_bank_event(&loan).await.unwrap();

        // Refusal paths too: an invalid loan (bad tax id beside good personal data) and a bad hook.
        let (refused, _) = ids("pii-bad");
        let mut invalid = loan.clone();
        invalid["loanNumber"] = json!(refused);
        invalid["eventId"] = json!(format!("evt-{refused}"));
        invalid["borrower"]["birthDate"] = json!("1990-13-45");
        h.send_bank_event(&invalid).await.unwrap();
        // A tax id sent as a number: the decoder's message would quote it.
        let (wrong_typed, _) = ids("pii-typed");
        let mut typed = loan.clone();
        typed["loanNumber"] = json!(wrong_typed);
        typed["eventId"] = json!(format!("evt-{wrong_typed}"));
        typed["borrower"]["tin"] = json!(987654321u64);
        h.send_bank_event(&typed).await.unwrap();
        let (sid, _) = ids("pii-hook");
        reqwest::Client::new()
            .post(format!("{}/api/hooks/{sid}/approved", h.cloud.http_url))
            .header("x-hook-secret", HOOK_SECRET)
            .body(r#"{"writtenPremium": 1, "note": "Канарейкин 770812345678 canary.truck@pii.test"}"#)
            .send()
            .await
            .unwrap();

        h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        h.wait_for_loan_stage(&number, "issued", FLOW_TIMEOUT).await.unwrap();
        h.wait_for_notification(&refused, "bima.failed", FLOW_TIMEOUT).await.unwrap();
        let told = h.wait_for_notification(&wrong_typed, "bima.failed", FLOW_TIMEOUT).await.unwrap();
        assert!(told.to_string().contains("borrower.tin"), "the bank is told which field: {told}");
        assert!(!told.to_string().contains("987654321"), "{told}");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;

        let mut lines = 0;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&h.log_dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for line in text.lines() {
                lines += 1;
                for canary in CANARIES {
                    if line.contains(canary) {
                        found.push(format!("{}: {canary}: {line}", path.display()));
                    }
                }
            }
        }
        println!(
            "personal data: {} values searched in {lines} log lines, {} found",
            CANARIES.len(),
            found.len()
        );
        assert!(lines > 50, "the functions did log ({lines} lines)");
        assert!(found.is_empty(), "{found:#?}");
    });
}
