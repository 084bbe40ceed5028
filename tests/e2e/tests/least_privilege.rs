//! Each function may do exactly what its code does: flows that reach every
//! function (a truck policy, a loan's policy whose print form an earlier attempt
//! archived, My products, quarantined input, a replay) run through the local
//! stack while every AWS call the functions make is counted by the local cloud;
//! then, per function, every call made must be allowed by its policy in
//! `template.yaml`, and every action its policy allows must have been used. And
//! no secret value is in the template or the repository.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{harness, ids, run, FLOW_TIMEOUT};
use polis_e2e::{Harness, BIMA_CLIENT_SECRET, HOOK_SECRET, MUST_PASSWORD};
use polis_local_cloud::template::{as_list, Template};
use polis_must_sim::{Call, CallFault, Failure, Scenario};
use serde_json::{json, Value};

/// Allowed but not seen as a call of the function itself, each with why it is needed.
const USED_WITHOUT_A_CALL: [(&str, &str, &str); 2] = [
    (
        "ProductsApiFunction",
        "s3:GetObject",
        "its credentials sign the presigned links to policy PDFs; the GET is made by whoever follows the link",
    ),
    (
        "ProductsApiFunction",
        "kms:Decrypt",
        "the PDFs are SSE-KMS: the GET through a presigned link decrypts with the signer's permissions",
    ),
];

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs something through every function of the stack.
async fn exercise_every_function(h: &Harness) {
    let (pid, vin) = ids("lp");
    h.start_truck_process_for("CUST-LP", &pid, &vin, Scenario::default(), false).await.unwrap();
    // The bank chooses the insurer and does not: the scheduled watchdog reminds it.
    let (waiting, waiting_vin) = ids("lp-choice");
    h.start_truck_process_bank_chooses(&waiting, &waiting_vin, Scenario::default(), false).await.unwrap();
    // A loan whose print form an earlier attempt already archived: the runner reads it back.
    let (number, _) = ids("lp-loan");
    h.loan_with_print_form_already_archived(&number, "CUST-LP", "654000").await.unwrap();
    let post = |sid: String, body: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/api/hooks/{sid}/approved", h.cloud.http_url))
            .header("x-hook-secret", HOOK_SECRET)
            .body(body)
            .send()
    };
    // Kept by the hook function, and (a scoringId nobody knows) by the runner.
    post(ids("lp-bad").0, r#"{"writtenPremium": 1}"#).await.unwrap();
    post(ids("lp-unknown").0, r#"{"insuranceCompany":"ingostrah","writtenPremium":1}"#).await.unwrap();
    let mut invalid = Harness::loan_event(&ids("lp-invalid").0, "CUST-LP", "654000");
    invalid["borrower"]["tin"] = json!("1");
    h.send_bank_event(&invalid).await.unwrap();
    h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
    h.wait_for_loan_stage(&number, "issued", FLOW_TIMEOUT).await.unwrap();
    h.wait_for_notification(&waiting, "truck.choice-reminder", FLOW_TIMEOUT).await.unwrap();
    let (status, _) = h.products("CUST-LP", "", true).await.unwrap();
    assert_eq!(status, 200);
    // Something to re-drive from a dead-letter queue, then the replay Lambda, once the
    // unknown scoringId's hook has been kept by the runner.
    let dlq = h.cloud.physical("TruckDeadLetterQueue").unwrap();
    h.sqs()
        .send_message()
        .queue_url(dlq)
        .message_body(json!({"message": "drive", "process_id": pid}).to_string())
        .message_group_id(pid.clone())
        .message_deduplication_id(format!("lp-{pid}"))
        .send()
        .await
        .unwrap();
    // And one that would lead to a sale (money): a bulk re-drive looks at it and leaves it.
    let unsold = Harness::loan_event(&ids("lp-dead-loan").0, "CUST-LP", "654000");
    h.sqs()
        .send_message()
        .queue_url(h.cloud.physical("BankEventsDeadLetterQueue").unwrap())
        .message_body(unsold.to_string())
        .send()
        .await
        .unwrap();
    let start = std::time::Instant::now();
    while !h
        .quarantined()
        .await
        .unwrap()
        .iter()
        .any(|q| q["reason"].as_str().is_some_and(|r| r.starts_with("unknown scoringId")))
    {
        assert!(start.elapsed() < FLOW_TIMEOUT, "the runner never kept the unknown scoringId's hook");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let report = h
        .cloud
        .invoke("ReplayFunction", &json!({"by": "e2e-operator", "quarantine": true, "deadLetters": true}))
        .await
        .unwrap();
    assert!(!report["quarantine"]["replayed"].as_array().unwrap().is_empty(), "{report}");
    let bank_events =
        report["deadLetters"].as_array().unwrap().iter().find(|r| r["queue"] == "bank-events").unwrap();
    assert!(bank_events["left"][0][1].as_str().unwrap().contains("sale (money)"), "{report}");
    // A bank event about an existing process: the intake looks up the process's message group.
    let rescan = h.put_document(&pid, 11, "sts-again.pdf").await.unwrap();
    let corrected = json!({"type": "truck.documents-corrected", "eventId": format!("lp-fix-{pid}"), "requestId": pid, "documents": [rescan]});
    h.send_bank_event(&corrected).await.unwrap();
    // Held calls: a truck's init that never reached MUST, answered through the replay Lambda
    // (which finds the process's group); a loan's sale BIMA made, answered by the command. Each
    // runner takes the resolved review off the list.
    let (held, held_vin) = ids("lp-held");
    let fault = CallFault { call: Call::Init, failure: Failure::BadGateway, committed: false };
    h.start_truck_process_for(
        "CUST-LP",
        &held,
        &held_vin,
        Scenario { faults: vec![fault], ..Scenario::default() },
        false,
    )
    .await
    .unwrap();
    h.wait_for_stage(&held, "needs-review", FLOW_TIMEOUT, |_| {}).await.unwrap();
    let record = h.process(&held).await.unwrap().unwrap();
    let (effect, attempt) =
        (record["outbox"]["review"]["effect"].clone(), polis_e2e::operator::held_attempt(&record));
    let resolve = json!({"by": "e2e-operator", "resolve": {"process": format!("TRUCK#{held}"), "effect": effect, "attempt": attempt, "resolution": "did-not-happen"}});
    h.cloud.invoke("ReplayFunction", &resolve).await.unwrap();
    h.wait_for_stage(&held, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
    let (loan, _) = ids("lp-sale");
    let sale_fault =
        polis_bima_sim::Scenario { sale_fault: Some((Failure::BadGateway, true)), ..Default::default() };
    h.bima.sim.set_scenario("655000", sale_fault);
    h.send_bank_event(&Harness::loan_event(&loan, "CUST-LP", "655000")).await.unwrap();
    h.wait_for_loan_stage(&loan, "needs-review", FLOW_TIMEOUT).await.unwrap();
    h.answer_loan_reviews(&loan).await.unwrap();
    // MUST's helpers for the bank, after MUST forgot every token: the helpers function reads the
    // shared token, is refused, takes a new one and shares it.
    h.must.sim.expire_tokens();
    let (_, helper_vin) = ids("lp-helper");
    let (status, body) =
        common::bank_post(h, "/api/trucks/license-category", &json!({"vin": helper_vin}), true).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[test]
fn every_function_is_allowed_exactly_the_aws_calls_its_code_makes() {
    run(async {
        let h = harness();
        exercise_every_function(h).await;
        let template = Template::load(&root().join("template.yaml")).unwrap();
        let functions = template.functions().unwrap();
        // The 14 hook functions are one handler: they share one policy and are judged together.
        let group =
            |id: &str| if id.starts_with("Hook") { "Hook*Function".to_owned() } else { id.to_owned() };
        let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for ((function, action), _) in h.cloud.aws.iam_actions() {
            if functions.iter().any(|f| f.logical_id == function) {
                used.entry(group(&function)).or_default().insert(action);
            }
        }
        let mut allowed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut hook_policies = BTreeSet::new();
        for f in &functions {
            let statements = template.policy_statements(&f.logical_id);
            if f.logical_id.starts_with("Hook") {
                hook_policies.insert(Value::Array(statements.clone()).to_string().replace(&f.logical_id, ""));
            }
            for s in &statements {
                for action in as_list(&s["Action"]) {
                    allowed
                        .entry(group(&f.logical_id))
                        .or_default()
                        .insert(action.as_str().unwrap().to_owned());
                }
            }
        }
        assert_eq!(hook_policies.len(), 1, "every hook function has the same policy");
        for (function, action, _why) in USED_WITHOUT_A_CALL {
            used.entry(function.to_owned()).or_default().insert(action.to_owned());
        }
        let mut findings = Vec::new();
        for (function, actions) in &allowed {
            let seen = used.get(function).cloned().unwrap_or_default();
            for a in seen.difference(actions) {
                findings.push(format!("{function} calls {a}, which its policy does not allow"));
            }
            for a in actions.difference(&seen) {
                findings.push(format!("{function} is allowed {a}, which its code never used"));
            }
            println!("{function}: allowed {actions:?}");
        }
        // Every partition key a function touched is one its dynamodb:LeadingKeys allow.
        let mut keys_checked = 0;
        for ((function, key), _) in h.cloud.aws.partition_keys() {
            let Some(f) = functions.iter().find(|f| f.logical_id == function) else { continue };
            let patterns: Vec<String> = template
                .policy_statements(&f.logical_id)
                .iter()
                .filter(|s| {
                    as_list(&s["Action"])
                        .iter()
                        .any(|a| a.as_str().is_some_and(|a| a.starts_with("dynamodb:")))
                })
                .flat_map(|s| as_list(&s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]))
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect();
            keys_checked += 1;
            let allowed_key = patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix),
                None => &key == p,
            });
            if !allowed_key {
                findings.push(format!(
                    "{function} touched partition key {key}, outside its LeadingKeys {patterns:?}"
                ));
            }
        }
        println!(
            "least privilege: {} functions checked, {keys_checked} partition keys checked, {} findings",
            allowed.len(),
            findings.len()
        );
        assert!(findings.is_empty(), "{findings:#?}");
    });
}

/// A Standard Webhooks secret: `whsec_` and at least 16 base64 characters.
fn holds_signing_secret(text: &str) -> bool {
    text.match_indices("whsec_").any(|(at, _)| {
        text[at + 6..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
            .count()
            >= 16
    })
}

#[test]
fn no_secret_value_is_in_the_template_or_the_repository() {
    let template = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let parsed = Template::load(&root().join("template.yaml")).unwrap();
    for (name, default) in &parsed.parameters {
        // A true/false switch (e.g. MustHonoursIdempotencyKey) holds no secret.
        let switch = matches!(default.as_deref(), Some("true" | "false"));
        // A KMS key's ARN (DataKeyArn, LogsKeyArn) names a key; it is not a secret.
        let key_arn = name.ends_with("KeyArn");
        let secretish =
            !switch && !key_arn && ["Password", "Secret", "Token", "Key"].iter().any(|w| name.contains(w));
        if secretish {
            assert!(
                name.ends_with("ParameterName"),
                "{name}: a secret is passed by its SSM name, never by value"
            );
            assert!(
                default.as_deref().is_none_or(|d| d.starts_with('/')),
                "{name}'s default is a parameter path"
            );
        }
    }
    assert!(!holds_signing_secret(&template), "the template holds a signing secret");
    // Split so this file does not match its own search.
    let private_key = format!("PRIVATE {}-----", "KEY"); // the end of any PEM private key header
    for local in [HOOK_SECRET, MUST_PASSWORD, BIMA_CLIENT_SECRET, private_key.as_str()] {
        assert!(!template.contains(local), "the template holds a secret value");
    }
    let files = std::process::Command::new("git").args(["ls-files"]).current_dir(root()).output().unwrap();
    let mut scanned = 0;
    for file in String::from_utf8(files.stdout).unwrap().lines() {
        let Ok(text) = std::fs::read_to_string(root().join(file)) else { continue };
        scanned += 1;
        assert!(!text.contains(&private_key), "{file} contains a private key");
        // AWS access key ids: AKIA followed by 16 upper-case letters or digits.
        for (at, _) in text.match_indices("AKIA") {
            let id: String = text[at + 4..].chars().take(16).collect();
            assert!(
                !(id.len() == 16 && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())),
                "{file} contains an AWS access key id"
            );
        }
        // Signing secrets and local passwords live only in the test harness, as local stand-ins.
        if holds_signing_secret(&text) || text.contains("polis-local-password") {
            let test_fixture = file.starts_with("tests/")
                || file.contains("/tests/")
                || file.contains("/benches/")
                || file.ends_with("hook_auth.rs");
            assert!(test_fixture, "{file} holds a secret value outside the tests' local stand-ins");
        }
    }
    println!("secrets: template and {scanned} tracked files scanned, none found");
}
