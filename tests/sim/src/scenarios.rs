//! What each simulated flow meets at the partner, drawn from the run's seed: the
//! documented variations (recognition, several insurers, refusals, invoices, several
//! policy files of any type) and, with partner faults on, calls that fail before or
//! after the partner acted, answers slower than our timeout, duplicated hooks.

use std::time::Duration;

use polis_must_sim::{Call, CallFault, Failure, InsurerResult, OfferOutcome, PolicyFile, Scenario};

use crate::rng::Rng;

const FAILURES: [Failure; 3] = [Failure::Timeout, Failure::BadGateway, Failure::Reset];

/// A truck flow's scenario at MUST, the bank's payment method, and whether the bank's
/// request carries a diagnostic card that ends before the policy starts (MUST refuses it
/// with 1421; the bank corrects it).
pub fn truck(rng: &mut Rng, faults: bool) -> (Scenario, &'static str, bool) {
    let method = if rng.per_mille(300) { "invoice" } else { "link" };
    let insurer = |rng: &mut Rng, name: &str| {
        let roll = rng.below(100);
        let outcome = match roll {
            0..=79 => OfferOutcome::Approved,
            80..=91 => OfferOutcome::Rejected,
            _ => OfferOutcome::Failed,
        };
        InsurerResult {
            insurer: name.into(),
            outcome,
            premium: 10_000.0 + rng.below(20_000) as f64,
            error_code: None,
        }
    };
    let mut insurers = vec![insurer(rng, "ingostrah")];
    if rng.per_mille(300) {
        insurers.push(insurer(rng, "reso"));
    }
    // Changelog v3: recognition runs for most processes, at its own pace (some past our wait).
    let prefilled_contract = rng.per_mille(800);
    let recognition_delay_ms = rng.below(90_000);
    let mut scenario = Scenario {
        required_types: if rng.per_mille(100) { vec![11, 12, 99] } else { vec![11, 12] },
        upload_failures: u32::from(rng.per_mille(100)),
        prefilled_contract,
        recognition_delay_ms,
        late_recognition: prefilled_contract && rng.per_mille(100),
        fail_with: rng.per_mille(30).then_some(1502),
        unavailable_first: u32::from(rng.per_mille(30)),
        payment_refused: if insurers.len() > 1 && rng.per_mille(200) {
            vec!["ingostrah".into()]
        } else {
            Vec::new()
        },
        issued_before_paid: rng.per_mille(100),
        policy_files: 1 + rng.below(2) as u32,
        policy_file: *rng.pick(&[PolicyFile::Pdf, PolicyFile::Pdf, PolicyFile::Jpeg, PolicyFile::Zip]),
        webhook_ids: rng.per_mille(300),
        insurers,
        ..Scenario::default()
    };
    if faults {
        scenario.duplicate_hooks = rng.per_mille(100);
        scenario.concurrent_deliveries = if rng.per_mille(50) { 2 } else { 1 };
        if rng.per_mille(10) {
            scenario.policy_file = PolicyFile::Missing;
        }
        for call in Call::ALL {
            if rng.per_mille(60) {
                let failure = *rng.pick(&FAILURES);
                scenario.faults.push(CallFault { call, failure, committed: rng.per_mille(500) });
            }
        }
    }
    let expired_inspection = rng.per_mille(30);
    (scenario, method, expired_inspection)
}

/// A loan's scenario at BIMA.
pub fn loan(rng: &mut Rng, faults: bool) -> polis_bima_sim::Scenario {
    use polis_bima_sim::{PrintForm, SaleAnswer};
    let mut scenario = polis_bima_sim::Scenario {
        calc_error: rng.per_mille(20).then(|| "sum out of the programme's range".into()),
        sale_refused: rng.per_mille(20).then(|| "the borrower already has a policy".into()),
        print_form: *rng.pick(&[
            PrintForm::Pdf,
            PrintForm::Pdf,
            PrintForm::Redirected,
            PrintForm::Jpeg,
            PrintForm::Expired,
        ]),
        sale_answer: Some(if rng.per_mille(500) { SaleAnswer::Bare } else { SaleAnswer::WithIds }),
        ..polis_bima_sim::Scenario::default()
    };
    if faults {
        if rng.per_mille(100) {
            scenario.sale_fault = Some((*rng.pick(&FAILURES), rng.per_mille(500)));
        }
        if rng.per_mille(100) {
            scenario.print_link_down = 1 + rng.below(3) as u32;
        }
        if rng.per_mille(30) {
            scenario.slow = Some(Duration::from_secs(15));
        }
    }
    scenario
}
