//! In-process costs of the hot paths (criterion): what a hook function does
//! besides its two AWS calls (authenticate, check the body, derive the hook id),
//! what a runner does per message besides its AWS calls (read the state JSON,
//! apply the event, write the state JSON), and the bank-intake's validation and
//! the BIMA sale form. `cargo bench -p polis-shared`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use polis::domain::bank::BankEvent;
use polis::domain::ids::ScoringId;
use polis::domain::loan::bank::LoanBankEvent;
use polis::domain::must::hook::{HookKind, HookPayload};
use polis::domain::truck::bank::TruckBankEvent;
use polis::domain::truck::process::{TruckEvent, TruckProcess};
use polis::services::truck::hook_auth::{sign, HookAuth, HookCredentials};
use polis::services::truck::hook_intake::{check_body, hook_id};

const HOOK: &[u8] = br#"{"insuranceCompany":"ingostrah","writtenPremium":17847.29}"#;
const TRUCK: &str = include_str!("../examples/bank/truck.policy-requested.json");
const LOAN: &str = include_str!("../examples/bank/loan.issued.json");
const SIGNING: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn hook_path(c: &mut Criterion) {
    let shared = HookAuth::from_config("shared-secret", "local-hook-secret-0123456789").unwrap();
    let signed = HookAuth::from_config("standard-webhooks", SIGNING).unwrap();
    let now = 1_795_439_400;
    let signature = sign(SIGNING, "msg_1", now, HOOK).unwrap();
    let ts = now.to_string();
    c.bench_function("hook: shared secret, body check, hook id", |b| {
        b.iter(|| {
            let creds =
                HookCredentials { secret: Some(b"local-hook-secret-0123456789"), ..Default::default() };
            shared.verify(&creds, black_box(HOOK), now).unwrap();
            let sid = ScoringId::parse(black_box("3fa85f64-5717-4562-b3fc-2c963f66afa6")).unwrap();
            assert!(check_body(HookKind::Approved, black_box(HOOK)).is_none());
            black_box(hook_id(&sid, HookKind::Approved, None, HOOK));
        })
    });
    c.bench_function("hook: Standard Webhooks signature check", |b| {
        b.iter(|| {
            let creds = HookCredentials {
                id: Some("msg_1"),
                timestamp: Some(&ts),
                signature: Some(&signature),
                ..HookCredentials::default()
            };
            signed.verify(&creds, black_box(HOOK), now).unwrap();
        })
    });
}

/// What a forger can make one hook invocation do: many `v1,` signatures (none valid)
/// over the largest body that is verified at all, against two secrets (rotation).
fn hook_signature_worst_case(c: &mut Criterion) {
    let two = format!("{SIGNING} whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
    let signed = HookAuth::from_config("standard-webhooks", &two).unwrap();
    let now = 1_795_439_400;
    let ts = now.to_string();
    let body = vec![b'x'; 1024 * 1024];
    let mut group = c.benchmark_group("hook signature, worst case");
    group.sample_size(10);
    for count in [4, 1000] {
        let header = vec!["v1,AAAA"; count].join(" ");
        group.bench_function(format!("{count} forged signatures, 1 MiB body, 2 secrets"), |b| {
            b.iter(|| {
                let creds = HookCredentials {
                    id: Some("msg_1"),
                    timestamp: Some(&ts),
                    signature: Some(&header),
                    ..HookCredentials::default()
                };
                assert!(signed.verify(&creds, black_box(&body), now).is_err());
            })
        });
    }
    group.finish();
}

fn runner_step(c: &mut Criterion) {
    let TruckBankEvent::PolicyRequested { request, .. } = serde_json::from_str(TRUCK).unwrap() else {
        panic!("the example is a policy request")
    };
    let process = TruckProcess::start(*request);
    let state = serde_json::to_string(&process).unwrap();
    let payload = HookPayload::parse(HookKind::Approved, HOOK).unwrap();
    c.bench_function("runner: state JSON in, apply a hook, state JSON out", |b| {
        b.iter(|| {
            let mut p: TruckProcess = serde_json::from_str(black_box(&state)).unwrap();
            black_box(p.apply(TruckEvent::Hook {
                id: "h-1".into(),
                by_content: true,
                payload: payload.clone(),
                received_at_ms: 0,
                scoring_id: None,
            }));
            black_box(serde_json::to_string(&p).unwrap());
        })
    });
}

fn bank_events(c: &mut Criterion) {
    c.bench_function("bank-intake: read and validate loan.issued", |b| {
        b.iter(|| black_box(BankEvent::accept(black_box(LOAN)).unwrap()))
    });
    let Ok(BankEvent::Loan(LoanBankEvent::Issued(loan))) = BankEvent::accept(LOAN) else { panic!("a loan") };
    c.bench_function("loan-runner: build and serialize the sale form", |b| {
        b.iter(|| black_box(serde_json::to_vec(&black_box(&loan).sale_request()).unwrap()))
    });
}

criterion_group!(benches, hook_path, hook_signature_worst_case, runner_step, bank_events);
criterion_main!(benches);
