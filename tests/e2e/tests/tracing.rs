//! Traces: the functions' spans, exported over OTLP to the local stack's collector as they
//! would be to the ADOT collector's layer in Lambda. A hook's trace goes on through the
//! queue into the runner, so one trace leads from MUST's hook to the MUST call it caused;
//! and every log line of an invocation carries its request id and trace id.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{harness, ids, log_dir, run_on, FLOW_TIMEOUT};
use polis_e2e::StackOptions;
use polis_must_sim::Scenario;
use serde_json::Value;

fn traced<F: std::future::Future>(f: F) -> F::Output {
    run_on(StackOptions { traces: true, ..StackOptions::default() }, f)
}

/// The spans recorded once `done` holds for them (a function exports its spans at the
/// end of each invocation, which may come just after the stage a test waits for).
async fn spans_when(done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let spans = harness().cloud.traces();
        if done(&spans) || start.elapsed() > Duration::from_secs(15) {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `span` and its ancestors among `spans`, innermost first.
fn chain<'a>(span: &'a Value, spans: &'a [Value]) -> Vec<&'a Value> {
    let by_id: HashMap<&str, &Value> =
        spans.iter().map(|s| (s["span_id"].as_str().unwrap_or(""), s)).collect();
    let mut out = vec![span];
    while let Some(parent) = by_id.get(out[out.len() - 1]["parent_span_id"].as_str().unwrap_or("")) {
        if out.len() > 64 {
            break;
        }
        out.push(parent);
    }
    out
}

fn attribute<'a>(span: &'a Value, name: &str) -> &'a str {
    span["attributes"][name].as_str().unwrap_or("")
}

fn is_hook(span: &Value) -> bool {
    span["service"].as_str().is_some_and(|s| s.starts_with("Hook"))
}

/// The runner's calls to MUST whose trace leads back to a hook function's span.
fn must_calls_after_a_hook(spans: &[Value]) -> Vec<(&Value, Vec<&Value>)> {
    spans
        .iter()
        .filter(|s| s["service"] == "TruckRunnerFunction" && s["name"] == "must")
        .map(|s| (s, chain(s, spans)))
        .filter(|(_, chain)| chain.iter().any(|a| is_hook(a)))
        .collect()
}

#[test]
fn one_trace_leads_from_a_hook_through_the_queue_to_the_must_call_it_caused() {
    traced(async {
        let h = harness();
        let (pid, vin) = ids("one-trace");
        h.start_truck_process(&pid, &vin, Scenario::default(), false).await.unwrap();
        h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        let spans = spans_when(|s| !must_calls_after_a_hook(s).is_empty()).await;

        let calls = must_calls_after_a_hook(&spans);
        let Some((call, chain)) = calls.first() else {
            panic!("no MUST call of the runner leads back to a hook: {spans:#?}")
        };
        let hook = chain.iter().find(|s| is_hook(s)).unwrap();
        // One trace: the hook function's span and the runner's call to MUST.
        assert_eq!(hook["trace_id"], call["trace_id"], "{chain:#?}");
        assert!(chain.iter().all(|s| s["trace_id"] == call["trace_id"]), "{chain:#?}");
        // Through the queue: the runner's message span is the hook's span's child.
        let at = chain.iter().position(|s| is_hook(s)).unwrap();
        let message = chain[at - 1];
        assert_eq!(
            (message["service"].as_str(), message["name"].as_str()),
            (Some("TruckRunnerFunction"), Some("message"))
        );
        assert!(chain[..at].iter().any(|s| s["name"] == "process"), "the process's span: {chain:#?}");
        // The hook's spans go up to its invocation (named after its function), under Lambda's trace.
        let root = chain.last().unwrap();
        assert!(is_hook(root) && root["name"] == root["service"], "{root}");
        assert!(!attribute(root, "faas.invocation_id").is_empty(), "{root}");
        assert!(chain.iter().any(|s| is_hook(s) && s["name"] == "hook"), "the intake's span: {chain:#?}");
        // MUST's first call goes back, likewise, to the bank's request.
        let init = spans
            .iter()
            .find(|s| s["name"] == "must" && attribute(s, "operation") == "POST /api/scoring/init")
            .expect("MUST's init");
        let from = chain_services(init, &spans);
        assert_eq!(from.last().map(String::as_str), Some("BankIntakeFunction"), "{from:?}");
    });
}

fn chain_services(span: &Value, spans: &[Value]) -> Vec<String> {
    let mut services: Vec<String> = Vec::new();
    for s in chain(span, spans) {
        let service = s["service"].as_str().unwrap_or("").to_owned();
        if services.last() != Some(&service) {
            services.push(service);
        }
    }
    services
}

#[test]
fn a_hook_and_a_step_show_where_they_spent_their_time_in_aws_and_at_the_partner() {
    traced(async {
        let h = harness();
        let (pid, vin) = ids("spans");
        h.start_truck_process(&pid, &vin, Scenario::default(), false).await.unwrap();
        h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        let calls = |spans: &[Value], service: &str| -> Vec<(String, String)> {
            spans
                .iter()
                .filter(|s| s["service"].as_str().is_some_and(|f| f.starts_with(service)) && s["kind"] == 3)
                .map(|s| {
                    let operation = [attribute(s, "rpc.method"), attribute(s, "operation")].concat();
                    (s["name"].as_str().unwrap_or("").to_owned(), operation)
                })
                .collect()
        };
        let runner_wanted = [
            ("DynamoDB", "GetItem"),
            ("SQS", "SendMessage"),
            ("S3", "PutObject"),
            ("must", "POST /api/scoring/init"),
        ];
        let spans = spans_when(|s| {
            let runner = calls(s, "TruckRunnerFunction");
            runner_wanted.iter().all(|c| runner.iter().any(|(n, o)| (n.as_str(), o.as_str()) == *c))
        })
        .await;

        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        for s in &spans {
            let trace = s["trace_id"].as_str().unwrap_or("");
            assert_eq!(trace.len(), 32, "{s}");
            // X-Ray's trace ids begin with the time of the trace's start, in seconds.
            let started = u64::from_str_radix(&trace[..8], 16).unwrap();
            assert!(now.abs_diff(started) < 3_600, "an X-Ray trace id: {s}");
            let text = s.to_string();
            assert!(!text.contains(&vin) && !text.contains('?'), "no personal data, no query: {s}");
        }
        let hook = calls(&spans, "HookStarted");
        let seen: std::collections::BTreeSet<(&str, &str)> = spans
            .iter()
            .map(|s| (s["service"].as_str().unwrap_or(""), s["name"].as_str().unwrap_or("")))
            .collect();
        for call in [("DynamoDB", "PutItem"), ("SQS", "SendMessage")] {
            assert!(
                hook.iter().any(|(n, o)| (n.as_str(), o.as_str()) == call),
                "{call:?} in {hook:?} of {seen:?}"
            );
        }
        let runner = calls(&spans, "TruckRunnerFunction");
        for call in runner_wanted {
            assert!(runner.iter().any(|(n, o)| (n.as_str(), o.as_str()) == call), "{call:?} in {runner:?}");
        }
        let answered_ok =
            |s: &&Value| attribute(s, "http.response.status_code").parse::<u16>().is_ok_and(|c| c < 400);
        let wrong: Vec<&Value> = spans.iter().filter(|s| s["error"] == true).filter(answered_ok).collect();
        assert!(wrong.is_empty(), "only a refused or lost call is an error: {wrong:#?}");
    });
}

#[test]
fn every_log_line_of_an_invocation_carries_its_request_id_and_trace_id() {
    traced(async {
        let h = harness();
        let (pid, vin) = ids("logged");
        h.start_truck_process(&pid, &vin, Scenario::default(), false).await.unwrap();
        h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        let spans = spans_when(|s| !must_calls_after_a_hook(s).is_empty()).await;
        let hook_traces: Vec<String> = spans
            .iter()
            .filter(|s| is_hook(s))
            .filter_map(|s| s["trace_id"].as_str())
            .map(|t| format!("1-{}-{}", &t[..8], &t[8..]))
            .collect();

        let dir = log_dir(&format!("polis-e2e-{}", std::process::id()));
        let text = std::fs::read_to_string(dir.join("TruckRunnerFunction.log")).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l.get("level").is_some() && l.get("span").is_some())
            .collect();
        assert!(!lines.is_empty(), "the runner logged in its invocations");
        for line in &lines {
            assert!(line["requestId"].as_str().is_some_and(|r| !r.is_empty()), "{line}");
            assert!(line["traceId"].as_str().is_some_and(|t| t.starts_with("1-") && t.len() == 35), "{line}");
        }
        // A line from handling a message the hook sent: the hook's trace, and the process it was about.
        assert!(
            lines.iter().any(
                |l| hook_traces.iter().any(|t| l["traceId"] == *t) && l["span"]["process_id"].is_string()
            ),
            "a runner line in a hook's trace, with its process id: {lines:#?}"
        );
    });
}
