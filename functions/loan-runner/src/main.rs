//! loan-runner: SQS FIFO (loan queue) → a loan's credit-life steps and BIMA calls.

use std::time::Duration;

use polis::adapters::bima_http::{BimaCredentials, BimaHttp};
use polis::adapters::config::{self, list, var};
use polis::adapters::http_auth::http_client;
use polis::adapters::kms::SealedTokens;
use polis::adapters::s3::Buckets;
use polis::adapters::secrets;
use polis::adapters::sqs::Queue;
use polis::services::engine::Engine;
use polis::services::loan::runner::{bima_refusal, LoanRunner, PrintLinkCaller};
use polis::services::retry::Backoff;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    polis::telemetry::init();
    let sdk = config::aws().await;
    let call_timeout = Duration::from_secs(config::number("BIMA_TIMEOUT_SECONDS", 20)?);
    let table = config::table(&sdk)?;
    let bima = BimaHttp::new(
        http_client(call_timeout)?,
        var("BIMA_BASE_URL")?,
        BimaCredentials {
            client_id: var("BIMA_CLIENT_ID")?,
            client_secret: secrets::read(&config::ssm(&sdk), &var("BIMA_CLIENT_SECRET_PARAMETER")?).await?,
        },
        &list("BIMA_PRINT_HOSTS"),
        SealedTokens::new(table.clone(), config::kms(&sdk), var("TOKENS_KEY_ID")?),
    );
    let runner = LoanRunner {
        engine: Engine {
            store: table,
            effect_lease: Duration::from_millis(config::number("EFFECT_LEASE_MS", 60_000)?),
            backoff: Backoff::with_attempt_budget(call_timeout),
            refusal: bima_refusal,
            partner_idempotent: config::flag("BIMA_HONOURS_IDEMPOTENCY_KEY")?,
        },
        bima,
        objects: Buckets::new(config::s3(&sdk)),
        outbox: Queue::new(config::sqs(&sdk), var("BANK_NOTIFICATIONS_QUEUE_URL")?),
        archive_bucket: var("ARCHIVE_BUCKET")?,
        print_link: match config::choice("BIMA_PRINT_LINK_BY", &["polis", "bima"])? {
            "bima" => PrintLinkCaller::Bima,
            _ => PrintLinkCaller::Polis,
        },
    };
    let runner = &runner;
    polis_lambda::run_sqs(|body| async move { runner.handle_body(&body).await }).await
}
