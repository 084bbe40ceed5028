//! One local stack per test binary, shared by its tests (each test uses its own
//! process ids and VINs), on a runtime that outlives any single test.

use std::future::Future;
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use polis_e2e::{Harness, Ports, StackOptions};

#[allow(dead_code)] // Not every test binary uses each helper.
pub const FLOW_TIMEOUT: Duration = Duration::from_secs(90);

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime")
});
static HARNESS: OnceLock<Harness> = OnceLock::new();

/// Runs a test body on the shared runtime, with the stack (hooks by shared secret) started first.
#[allow(dead_code)] // Not every test binary uses each helper.
pub fn run<F: Future>(f: F) -> F::Output {
    run_on(StackOptions::default(), f)
}

/// Runs a test body on the shared runtime, the stack started first with `options` (one stack
/// per test binary: the first call decides).
pub fn run_on<F: Future>(options: StackOptions, f: F) -> F::Output {
    stack(options);
    RUNTIME.block_on(f)
}

/// This test binary's stack, once started.
pub fn harness() -> &'static Harness {
    HARNESS.get().expect("the stack is started by run() or run_on()")
}

fn stack(options: StackOptions) -> &'static Harness {
    HARNESS.get_or_init(|| {
        let stack = format!("polis-e2e-{}", std::process::id());
        let logs = log_dir(&stack);
        // Free ports are picked, then bound: another process may take one in between.
        let mut tries = 0;
        loop {
            let ports = Ports::any().expect("free ports");
            match RUNTIME.block_on(Harness::start_with(&stack, ports, logs.clone(), options.clone())) {
                Ok(harness) => break harness,
                Err(e) if tries < 4 && e.to_string().contains("Address already in use") => tries += 1,
                Err(e) => panic!("the local stack starts: {e}"),
            }
        }
    })
}

/// Where this stack's function logs go.
pub fn log_dir(stack: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local/logs").join(stack)
}

/// A process id and VIN unique to this test run.
pub fn ids(name: &str) -> (String, String) {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        % 1_000_000_000;
    let pid = format!("{name}-{n}");
    let vin = format!("{:0>17}", format!("V{n}")).chars().take(17).collect();
    (pid, vin)
}

#[allow(dead_code)] // Not every test binary uses each helper.
/// A loan number, a customer and a loan sum (the BIMA simulator's scenario key) unique to this run.
pub fn loan_ids(name: &str) -> (String, String, String) {
    let (number, _) = ids(name);
    let n: u64 = number.rsplit('-').next().unwrap().parse().unwrap();
    (number.clone(), format!("C-{number}"), (100_000 + n % 899_000).to_string())
}

#[allow(dead_code)] // Not every test binary uses each helper.
/// Items under a partition key (e.g. every stored hook of a scoringId).
pub async fn items(h: &Harness, pk: &str) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    h.dynamodb()
        .query()
        .table_name(&h.table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
        .send()
        .await
        .expect("query")
        .items()
        .to_vec()
}

/// The item writes and queue messages `function` has made so far, as the local cloud's
/// AWS proxy counted them (a refused call must cost neither).
#[allow(dead_code)] // Not every test binary uses each helper.
pub fn writes_and_messages(h: &Harness, function: &str) -> (u64, u64) {
    let counts = h.cloud.aws.counts();
    let of = |call: &str| counts.get(&(function.to_owned(), call.to_owned())).copied().unwrap_or(0);
    (of("dynamodb:PutItem"), of("sqs:SendMessage"))
}

/// `POST {path}` on the bank API with a JSON body, as the bank's backend calls it: signed
/// (SigV4, service `execute-api`) with the local stack's key when `signed`. Status and body.
#[allow(dead_code)] // Not every test binary uses each helper.
pub async fn bank_post(
    h: &Harness,
    path: &str,
    body: &serde_json::Value,
    signed: bool,
) -> (u16, serde_json::Value) {
    let url = format!("{}{path}", h.cloud.http_url);
    let bytes = body.to_string().into_bytes();
    let mut request = reqwest::Client::new().post(&url).header("content-type", "application/json");
    if signed {
        let principal = polis_local_cloud::sigv4::Principal {
            access_key: std::env::var("AWS_ACCESS_KEY_ID").unwrap_or("local".into()),
            secret_key: std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or("local".into()),
        };
        let region = std::env::var("AWS_REGION").unwrap_or("us-east-1".into());
        for (name, value) in
            polis_local_cloud::sigv4::sign(&principal, &region, "POST", &url, &bytes).expect("signed")
        {
            request = request.header(name, value);
        }
    }
    let response = request.body(bytes).send().await.expect("the bank API answers");
    let status = response.status().as_u16();
    // A contract violation is answered 500 by the stack's front door, with the reason.
    assert!(
        response.headers().get("x-contract-violation").is_none(),
        "{path}: the answer breaks openapi.yaml"
    );
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}
