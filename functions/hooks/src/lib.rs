//! The one handler behind every hook function: the function's own hook path is its
//! only route (API Gateway routes only that path to it; any other is refused here too).

use lambda_http::request::RequestContext;
use lambda_http::{service_fn, Error, Request, RequestExt};
use polis::adapters::config::{self, var};
use polis::adapters::secrets::{self, RotatingSecret};
use polis::adapters::sqs::Queue;
use polis::domain::must::hook::HookKind;
use polis::services::truck::hook_auth::{
    HookAuth, HookCredentials, ID_HEADER, SECRET_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use polis::services::truck::hook_intake::{HookIntake, HookRequest};

/// Runs the Lambda for the hook at `/api/hooks/{scoringId}/<kind's path>`.
pub async fn run(kind: HookKind) -> Result<(), Error> {
    polis::telemetry::init();
    let sdk = config::aws().await;
    let (ssm, mode, parameter) = (config::ssm(&sdk), var("HOOK_AUTH_MODE")?, var("HOOK_SECRET_PARAMETER")?);
    let auth = HookAuth::from_config(&mode, &secrets::read(&ssm, &parameter).await?)?;
    let ttl = std::time::Duration::from_secs(config::number("HOOK_AUTH_REFRESH_SECONDS", 300)?);
    let secret = RotatingSecret::new(ssm, parameter, ttl);
    let intake = HookIntake {
        store: config::table(&sdk)?,
        queue: Queue::new(config::sqs(&sdk), var("TRUCK_QUEUE_URL")?),
        auth: auth.into(),
        sources: config::list("HOOK_SOURCE_NETWORKS").iter().map(|n| n.parse()).collect::<Result<_, _>>()?,
        payment_link_hosts: config::list("PAYMENT_LINK_HOSTS"),
    };
    let (intake, secret, mode) = (&intake, &secret, &mode);
    let suffix = format!("/{}", kind.path());
    let suffix = &suffix;
    polis_lambda::run_http(service_fn(move |req: Request| async move {
        // A rotated secret (two, separated by whitespace, while MUST moves over) takes
        // effect within the TTL; a value that does not configure leaves the keys in force.
        if let Some(value) = secret.due().await {
            match HookAuth::from_config(mode, &value) {
                Ok(auth) => intake.auth.replace(auth),
                Err(e) => tracing::error!(error = %e, "the hook secret read again is unusable; the keys in force stay"),
            }
        }
        if !req.uri().path().ends_with(suffix.as_str()) {
            let other = polis::services::Reply::new(404, serde_json::json!({"error": "no such hook here"}));
            return polis_lambda::http_response(other);
        }
        let params = req.path_parameters();
        let header = |name: &str| req.headers().get(name).map(|v| v.as_bytes());
        let text = |name: &str| header(name).and_then(|v| std::str::from_utf8(v).ok());
        let source_ip = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.as_deref(),
            _ => None,
        };
        let reply = intake
            .receive(
                kind,
                HookRequest {
                    scoring_id: params.first("scoringId"),
                    source_ip: source_ip.and_then(|ip| ip.parse().ok()),
                    credentials: HookCredentials {
                        secret: header(SECRET_HEADER),
                        id: text(ID_HEADER),
                        timestamp: text(TIMESTAMP_HEADER),
                        signature: text(SIGNATURE_HEADER),
                        path_token: params.first("hookToken").map(str::as_bytes),
                    },
                    body: req.body().as_ref(),
                },
            )
            .await;
        polis_lambda::http_response(reply)
    }))
    .await
}
