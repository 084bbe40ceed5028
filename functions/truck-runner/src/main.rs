//! truck-runner: SQS FIFO (process queue) → truck process steps and MUST calls.

use std::time::Duration;

use polis::adapters::config::{self, var};
use polis::adapters::http_auth::http_client;
use polis::adapters::kms::SealedTokens;
use polis::adapters::must_http::{MustCredentials, MustHttp};
use polis::adapters::s3::Buckets;
use polis::adapters::secrets;
use polis::adapters::sqs::Queue;
use polis::services::engine::Engine;
use polis::services::retry::Backoff;
use polis::services::truck::runner::{must_refusal, KnownScorings, TruckRunner};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    polis::telemetry::init();
    let sdk = config::aws().await;
    let call_timeout = Duration::from_secs(config::number("MUST_TIMEOUT_SECONDS", 20)?);
    let table = config::table(&sdk)?;
    let must = MustHttp::new(
        http_client(call_timeout)?,
        var("MUST_BASE_URL")?,
        MustCredentials {
            login: var("MUST_LOGIN")?,
            password: secrets::read(&config::ssm(&sdk), &var("MUST_PASSWORD_PARAMETER")?).await?,
        },
        SealedTokens::new(table.clone(), config::kms(&sdk), var("TOKENS_KEY_ID")?),
    );
    let runner = TruckRunner {
        engine: Engine {
            store: table,
            effect_lease: Duration::from_millis(config::number("EFFECT_LEASE_MS", 60_000)?),
            backoff: Backoff::with_attempt_budget(call_timeout),
            refusal: must_refusal,
            partner_idempotent: config::flag("MUST_HONOURS_IDEMPOTENCY_KEY")?,
        },
        must,
        objects: Buckets::new(config::s3(&sdk)),
        outbox: Queue::new(config::sqs(&sdk), var("BANK_NOTIFICATIONS_QUEUE_URL")?),
        documents_bucket: var("DOCUMENTS_BUCKET")?,
        archive_bucket: var("ARCHIVE_BUCKET")?,
        unknown_scoring_grace: Duration::from_secs(config::number("UNKNOWN_SCORING_GRACE_SECONDS", 600)?),
        known_scorings: KnownScorings::default(),
    };
    let runner = &runner;
    polis_lambda::run_sqs(|body| async move { runner.handle_body(&body).await }).await
}
