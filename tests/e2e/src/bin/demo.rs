//! `make run`: one customer's truck eOSAGO policy through MUST and the same
//! customer's loan insured through BIMA, on the whole local stack, printed as
//! it happens; ends with the archived files and the customer's "My products".
//! `demo up` instead leaves the stack running (for `make up`) until Ctrl-C, its functions
//! calling our simulators or, named by `POLIS_MUST_URL` / `POLIS_BIMA_URL` (with their
//! credentials), a partner's sandbox.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use polis_e2e::{BoxError, Harness, Partners, Ports, StackOptions, HOOK_SECRET};
use polis_must_sim::{InsurerResult, OfferOutcome, Scenario};
use sha2::{Digest, Sha256};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let serve = std::env::args().nth(1).as_deref() == Some("up");
    let stack = format!("polis-{}", if serve { "up" } else { "run" });
    let logs = PathBuf::from(".local/logs").join(&stack);
    // A partner's sandbox instead of our simulator: POLIS_MUST_URL / POLIS_BIMA_URL (see the README).
    let partners = Partners::from_env()?;
    if !serve && partners != Partners::SIMULATORS {
        return Err("make run drives our simulators' scenarios; point `make up` at a sandbox instead".into());
    }
    // The template's defaults: BIMA sends the customer its print link itself (the seed's step 4).
    let options =
        StackOptions { partners: partners.clone(), bima_print_link_by: None, ..StackOptions::default() };
    let h = Harness::start_with(&stack, Ports::fixed(), logs.clone(), options).await?;
    println!("local stack up:");
    println!(
        "  hook API        {}  (POST /api/hooks/{{scoringId}}/...; header x-hook-secret: {HOOK_SECRET})",
        h.cloud.http_url
    );
    println!("  AWS emulator    {}", std::env::var("AWS_ENDPOINT_URL").unwrap_or_default());
    match &partners.must {
        Some(must) => {
            println!("  MUST            {} (external, login {})", must.url, must.login);
            println!(
                "  register with MUST as the hook base URL: {}  (MUST must reach it: a tunnel or a public address)",
                h.cloud.http_url
            );
        }
        None => println!("  MUST simulator  {}", h.must.base_url()),
    }
    match &partners.bima {
        Some(bima) => println!("  BIMA            {} (external, client id {})", bima.url, bima.login),
        None => println!("  BIMA simulator  {}", h.bima.base_url()),
    }
    println!(
        "  My products     {}/api/customers/{{customerId}}/products  (SigV4-signed, service execute-api)",
        h.cloud.http_url
    );
    println!("  bank events in  {}", h.bank_events_url);
    println!("  bank notices    {}", h.notifications_url);
    println!(
        "  table {} | documents s3://{} | archive s3://{}",
        h.table, h.documents_bucket, h.archive_bucket
    );
    println!("  function logs   {}/", logs.display());
    if serve {
        println!("stack is running; Ctrl-C (or make down) stops it");
        tokio::signal::ctrl_c().await?;
        return Ok(());
    }

    let process_id = format!("REQ-{}", std::process::id());
    let customer = format!("CUST-{}", std::process::id());
    let scenario = Scenario {
        insurers: vec![
            InsurerResult {
                insurer: "ingostrah".into(),
                outcome: OfferOutcome::Approved,
                premium: 21310.5,
                error_code: None,
            },
            InsurerResult {
                insurer: "renaissance".into(),
                outcome: OfferOutcome::Approved,
                premium: 17847.29,
                error_code: None,
            },
        ],
        ..Scenario::default()
    };
    println!("\nbank -> truck.policy-requested {process_id} for {customer} (two insurers will score it)");
    h.start_truck_process_for(&customer, &process_id, "WMA06XZZ8GP000001", scenario, false).await?;

    let issued = watch(&h, &process_id).await?;
    let files = issued["policy"]["files"].as_array().cloned().unwrap_or_default();
    for file in files {
        let key = file["key"].as_str().unwrap_or_default();
        let (bytes, metadata) = h.archived(key).await?;
        let sha = hex::encode(Sha256::digest(&bytes));
        assert_eq!(Some(&sha), metadata.get("sha256"), "S3 metadata holds the file's SHA-256");
        println!("\npolicy {} archived:", issued["policy"]["number"].as_str().unwrap_or("?"));
        println!("  s3://{}/{}", file["bucket"].as_str().unwrap_or_default(), key);
        println!(
            "  sha256 {sha}  ({} bytes, {})",
            bytes.len(),
            file["contentType"].as_str().unwrap_or_default()
        );
    }

    // BIMA as its documents promise: the sale answers a bare 200, so the policy is sold
    // and its number pending; then a loan whose sale BIMA answers with the policy's id.
    for (suffix, sum, named) in [("A", "500000", false), ("B", "300000", true)] {
        let loan_number = format!("LN-{}-{suffix}", std::process::id());
        let answer = if named {
            "answering the sale with the policy's id"
        } else {
            "answering the sale with a bare 200"
        };
        println!(
            "\nbank -> loan.issued {loan_number} for {customer} ({sum} somoni, 12 months; BIMA {answer})"
        );
        if named {
            let scenario = polis_bima_sim::Scenario {
                sale_answer: Some(polis_bima_sim::SaleAnswer::WithIds),
                ..Default::default()
            };
            h.bima.sim.set_scenario(sum, scenario);
        }
        h.send_bank_event(&Harness::loan_event(&loan_number, &customer, sum)).await?;
        let stage = if named { "issued" } else { "sold" };
        let loan = h.wait_for_loan_stage(&loan_number, stage, Duration::from_secs(120)).await?;
        h.wait_for_notification(&loan_number, &format!("bima.policy-{stage}"), Duration::from_secs(30))
            .await?;
        for n in h.notifications(&loan_number) {
            println!("  bank <- {n}");
        }
        if let Some(key) = loan["print_form"]["key"].as_str() {
            println!("  print form archived: s3://{}/{key}", h.archive_bucket);
        }
    }

    let (status, products) = h.products(&customer, "", true).await?;
    println!("\nGET /api/customers/{customer}/products (signed) -> {status}");
    println!("{}", serde_json::to_string_pretty(&products)?);
    Ok(())
}

/// Prints each new stage and each notice to the bank as it happens, until the policy is issued.
async fn watch(h: &Harness, process_id: &str) -> Result<serde_json::Value, BoxError> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut stage, mut printed) = (String::new(), 0);
    loop {
        let process = h.process(process_id).await?.unwrap_or_default();
        let now = polis_e2e::stage_of(&process);
        if now != stage {
            println!("  stage: {now:<16} scoringId={}", process["scoring_id"].as_str().unwrap_or("-"));
            stage = now;
        }
        let notices = h.notifications(process_id);
        for n in &notices[printed..] {
            println!("  bank <- {n}");
        }
        printed = notices.len();
        if notices.iter().any(|n| n["type"] == "truck.policy-issued") {
            return Ok(process);
        }
        if ["rejected", "failed"].contains(&stage.as_str()) || Instant::now() > deadline {
            return Err(format!("{process_id} did not issue a policy (stage {stage})").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
