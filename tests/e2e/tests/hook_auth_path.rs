//! Hooks authenticated by a secret token in the hook base URL (`HookAuthMode=secret-path`,
//! for a partner that can send no header), two tokens configured (a rotation in progress)
//! and hooks limited to the loopback network: MUST's hooks carry a flow to the policy; a
//! call without the token, with a wrong one, or by the plain route is refused with 401 and
//! costs no write and no message.

mod common;

use common::{harness, ids, run_on, writes_and_messages, FLOW_TIMEOUT};
use polis_e2e::{
    HookAuthMode, Partners, StackOptions, StackTimings, HOOK_SECRET, NEW_PATH_TOKEN, OLD_PATH_TOKEN,
};
use polis_must_sim::Scenario;

const BY_PATH: StackOptions = StackOptions {
    hook_auth: HookAuthMode::SecretPath,
    log_filter: None,
    release: false,
    instances: 2,
    partners: Partners::SIMULATORS,
    timings: StackTimings::TESTS,
    bima_print_link_by: Some("polis"),
    traces: false,
};
const BODY: &str = r#"{"insuranceCompany":"ingostrah","reason":"fleet too old"}"#;

#[test]
fn hooks_with_the_token_in_their_path_carry_a_flow_to_the_policy() {
    run_on(BY_PATH, async {
        let h = harness();
        let (pid, vin) = ids("by-path");
        h.start_truck_process(&pid, &vin, Scenario::default(), false).await.unwrap();
        let p = h.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        assert!(p["policy"]["number"].is_string());
    });
}

#[test]
fn a_call_without_a_configured_token_in_its_path_is_refused_and_costs_nothing() {
    run_on(BY_PATH, async {
        let h = harness();
        let costs = || writes_and_messages(h, "HookRejectedFunction");
        let wrong = format!("{}x", &NEW_PATH_TOKEN[..NEW_PATH_TOKEN.len() - 1]);
        let cases: [(&str, Option<&str>, u16); 5] = [
            ("the new token", Some(NEW_PATH_TOKEN), 200),
            ("the old token, during the rotation", Some(OLD_PATH_TOKEN), 200),
            ("a token one character off", Some(&wrong), 401),
            ("the plain route, with the shared secret header", None, 401),
            ("the token's prefix only", Some(&NEW_PATH_TOKEN[..20]), 401),
        ];
        let mut wrong_answers = Vec::new();
        for (name, token, expected) in cases {
            let (sid, _) = ids("by-path-call");
            let path = match token {
                Some(token) => format!("/h/{token}/api/hooks/{sid}/rejected"),
                None => format!("/api/hooks/{sid}/rejected"),
            };
            let before = costs();
            let status = reqwest::Client::new()
                .post(format!("{}{path}", h.cloud.http_url))
                .header("x-hook-secret", HOOK_SECRET)
                .body(BODY)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            let after = costs();
            let spent = (after.0 - before.0, after.1 - before.1);
            let expected_cost = if expected == 200 { (1, 1) } else { (0, 0) };
            if status != expected || spent != expected_cost {
                wrong_answers.push(format!("{name}: {status}, {spent:?} writes and messages"));
            }
        }
        println!("hook path tokens: {} cases, {} wrong", cases.len(), wrong_answers.len());
        assert!(wrong_answers.is_empty(), "{wrong_answers:#?}");
    });
}
