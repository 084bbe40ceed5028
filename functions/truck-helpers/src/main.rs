//! truck-helpers: `POST /api/trucks/license-category` and `POST /api/trucks/tariff`
//! (IAM-authorized) → MUST's helper methods, synchronously, with MUST's shared token.
//!
//! One function serves both routes: they need the same role (MUST's token item and
//! password), the same client and configuration, and a warm container then serves either
//! with the token and the licence-category cache it already holds.

use std::time::Duration;

use lambda_http::{service_fn, Error, Request};
use polis::adapters::config::{self, var};
use polis::adapters::http_auth::http_client;
use polis::adapters::kms::SealedTokens;
use polis::adapters::must_http::{MustCredentials, MustHttp};
use polis::adapters::secrets;
use polis::services::truck::helpers::TruckHelpers;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
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
        SealedTokens::new(table, config::kms(&sdk), var("TOKENS_KEY_ID")?),
    );
    let helpers = TruckHelpers::new(must);
    let helpers = &helpers;
    polis_lambda::run_http(service_fn(move |req: Request| async move {
        let body: &[u8] = req.body().as_ref();
        let reply = helpers.handle(req.uri().path(), body).await;
        polis_lambda::http_response(reply)
    }))
    .await
}
