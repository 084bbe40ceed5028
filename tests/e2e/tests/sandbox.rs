//! `POLIS_MUST_URL=… POLIS_BIMA_URL=… make up`: the local stack's functions call a partner's
//! sandbox instead of our simulators. Proven by pointing one stack at another stack's
//! simulators, registered there as a developer registers the hook base URL with MUST.

mod common;

use common::{harness, ids, loan_ids, log_dir, run, FLOW_TIMEOUT};
use polis_e2e::{
    Harness, Partner, Partners, Ports, StackOptions, BIMA_CLIENT_ID, BIMA_CLIENT_SECRET, MUST_LOGIN,
    MUST_PASSWORD,
};
use polis_must_sim::Scenario;

#[test]
fn a_stack_pointed_at_another_stacks_partners_runs_its_flows_there() {
    run(async {
        // The "sandbox": the first stack's MUST and BIMA simulators.
        let sandbox = harness();
        let partners = Partners {
            must: Some(Partner {
                url: sandbox.must.base_url(),
                login: MUST_LOGIN.into(),
                secret: MUST_PASSWORD.into(),
            }),
            bima: Some(Partner {
                url: sandbox.bima.base_url(),
                login: BIMA_CLIENT_ID.into(),
                secret: BIMA_CLIENT_SECRET.into(),
            }),
            payment_link_hosts: Some(polis_must_sim::PAYMENT_HOST.into()),
        };
        let name = format!("polis-e2e-laptop-{}", std::process::id());
        let options = StackOptions { partners, ..StackOptions::default() };
        let laptop =
            Harness::start_with(&name, Ports::any().unwrap(), log_dir(&name), options).await.unwrap();
        // The developer registers the laptop's hook base URL with the partner.
        sandbox.must.sim.register_hook_base_url(&laptop.cloud.http_url);

        let (pid, vin) = ids("sandboxed");
        sandbox.must.sim.set_scenario(&vin, Scenario::default());
        laptop.start_truck_process(&pid, &vin, Scenario::default(), false).await.unwrap();
        laptop.wait_for_stage(&pid, "issued", FLOW_TIMEOUT, |_| {}).await.unwrap();
        laptop.wait_for_notification(&pid, "truck.policy-issued", FLOW_TIMEOUT).await.unwrap();
        let at_sandbox = sandbox.must.sim.changes(&vin);
        assert!(
            at_sandbox.get("init").is_some_and(|n| *n == 1),
            "the sandbox's MUST started it: {at_sandbox:?}"
        );
        assert!(laptop.must.sim.changes(&vin).is_empty(), "the laptop's own simulator was not called");
        assert!(
            sandbox.process(&pid).await.unwrap().is_none(),
            "the process lives in the laptop's stack only"
        );

        let (number, customer, sum) = loan_ids("sandboxed");
        laptop.send_bank_event(&Harness::loan_event(&number, &customer, &sum)).await.unwrap();
        laptop.wait_for_loan_stage(&number, "sold", FLOW_TIMEOUT).await.unwrap();
        assert_eq!(
            sandbox.bima.sim.stats().policies_by_credit.get(&number),
            Some(&1),
            "sold at the sandbox's BIMA"
        );
        assert!(laptop.bima.sim.stats().policies_by_credit.is_empty(), "not at the laptop's own simulator");
    });
}

#[test]
fn a_sandbox_named_without_its_credentials_is_refused_before_anything_starts() {
    std::env::set_var("POLIS_MUST_URL", "https://sandbox.must.example");
    let refused = Partners::from_env().unwrap_err().to_string();
    std::env::remove_var("POLIS_MUST_URL");
    assert_eq!(refused, "POLIS_MUST_URL needs POLIS_MUST_LOGIN and POLIS_MUST_PASSWORD");
    assert_eq!(Partners::from_env().unwrap(), Partners::SIMULATORS);
}
