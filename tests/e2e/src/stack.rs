//! The local stack: the MUST and BIMA simulators and the local cloud (the real function
//! binaries from `template.yaml`) against the AWS emulator, on the ports given, with the secrets
//! the operator puts in SSM before a deploy; and the [`Harness`] that holds it, with clients for
//! the emulator's services.
//!
//! Every HTTP call to the stack (MUST's hooks, the tests' own calls, My products) passes a front
//! door on the stack's address that holds each answer to `contracts/openapi.yaml` (the local
//! cloud itself listens behind it); `bank.rs` holds every notice to `contracts/schemas`. A
//! violation is recorded, and the next harness call that reads what the stack did panics with it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use polis_local_cloud::{CloudOptions, LocalCloud};
use polis_must_sim::{SimConfig, SimHandle};
use serde_json::Value;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Secrets the local stack is configured with (local values, not real ones).
pub const HOOK_SECRET: &str = "local-hook-secret-0123456789";
/// Standard Webhooks signing secrets mid-rotation: the old one still accepted, MUST signing with the new.
pub const OLD_SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const NEW_SIGNING_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// Hook path tokens mid-rotation (`secret-path` mode): the old one still accepted, MUST given the new.
pub const OLD_PATH_TOKEN: &str = "local-path-token-old-0123456789abcdef";
pub const NEW_PATH_TOKEN: &str = "local-path-token-new-0123456789abcdef";
pub const MUST_LOGIN: &str = "polis";
pub const MUST_PASSWORD: &str = "polis-local-password";
pub const BIMA_CLIENT_ID: &str = "imon";
pub const BIMA_CLIENT_SECRET: &str = "bima-local-client-secret";

/// How often the local stack runs scheduled functions (the watchdog), instead of their rates.
pub const SCHEDULE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a truck request waits for the bank's choice before its reminder, on the local stack (6 s).
pub const CHOICE_REMINDER_MINUTES: &str = "0.1";
/// How long a truck request waits after a temporary error before a new MUST process, on the local stack (3 s).
pub const TEMPORARY_ERROR_RETRY_MINUTES: &str = "0.05";

pub struct Ports {
    pub http: SocketAddr,
    pub runtime: SocketAddr,
    pub must: SocketAddr,
    pub bima: SocketAddr,
}

impl Ports {
    /// Free ports picked by the OS (for tests running beside a `make up` stack).
    pub fn any() -> Result<Ports, BoxError> {
        let free = || -> Result<SocketAddr, BoxError> {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
        };
        Ok(Ports { http: free()?, runtime: free()?, must: free()?, bima: free()? })
    }

    /// The documented ports: APIs 3000, Runtime API 9001, MUST simulator 4010, BIMA simulator 4020.
    pub fn fixed() -> Ports {
        Ports {
            http: SocketAddr::from(([127, 0, 0, 1], 3000)),
            runtime: SocketAddr::from(([127, 0, 0, 1], 9001)),
            must: SocketAddr::from(([127, 0, 0, 1], 4010)),
            bima: SocketAddr::from(([127, 0, 0, 1], 4020)),
        }
    }
}

pub struct Harness {
    pub cloud: LocalCloud,
    pub must: SimHandle,
    pub bima: polis_bima_sim::SimHandle,
    pub sdk: aws_config::SdkConfig,
    pub table: String,
    pub documents_bucket: String,
    pub archive_bucket: String,
    pub bank_events_url: String,
    pub notifications_url: String,
    /// Where each function's log goes (`{binary}.log`).
    pub log_dir: PathBuf,
    pub(crate) notifications: Arc<Mutex<HashMap<String, Vec<Value>>>>,
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// How MUST authenticates its hooks to this stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookAuthMode {
    SharedSecret,
    /// Standard Webhooks signatures, with two secrets configured (a rotation in progress).
    StandardWebhooks,
    /// A secret token in the hook base URL, two configured (a rotation in progress), and
    /// hooks limited to the loopback network.
    SecretPath,
}

/// A partner's instance the stack's functions call instead of our simulator (a sandbox):
/// its base URL and the bank's credentials there (MUST's login and password, BIMA's
/// client id and secret).
#[derive(Debug, Clone, PartialEq)]
pub struct Partner {
    pub url: String,
    pub login: String,
    pub secret: String,
}

impl Partner {
    /// `POLIS_{name}_URL` with its credentials (`login` and `secret` name their variables),
    /// when the URL is set.
    fn from_env(name: &str, login: &str, secret: &str) -> Result<Option<Partner>, BoxError> {
        let var =
            |suffix: &str| std::env::var(format!("POLIS_{name}_{suffix}")).ok().filter(|v| !v.is_empty());
        let Some(url) = var("URL") else { return Ok(None) };
        match (var(login), var(secret)) {
            (Some(login), Some(secret)) => {
                Ok(Some(Partner { url: url.trim_end_matches('/').to_owned(), login, secret }))
            }
            _ => Err(format!("POLIS_{name}_URL needs POLIS_{name}_{login} and POLIS_{name}_{secret}").into()),
        }
    }
}

/// The partners a stack calls: our simulators unless a sandbox is named.
#[derive(Debug, Clone, PartialEq)]
pub struct Partners {
    pub must: Option<Partner>,
    pub bima: Option<Partner>,
    /// Hosts MUST's payment links may point to (with an external MUST; else the simulator's).
    pub payment_link_hosts: Option<String>,
}

impl Partners {
    /// Our simulators, both.
    pub const SIMULATORS: Partners = Partners { must: None, bima: None, payment_link_hosts: None };

    /// From `POLIS_MUST_URL`, `POLIS_MUST_LOGIN`, `POLIS_MUST_PASSWORD`, `POLIS_BIMA_URL`,
    /// `POLIS_BIMA_CLIENT_ID`, `POLIS_BIMA_CLIENT_SECRET`, `POLIS_PAYMENT_LINK_HOSTS`.
    pub fn from_env() -> Result<Partners, BoxError> {
        Ok(Partners {
            must: Partner::from_env("MUST", "LOGIN", "PASSWORD")?,
            bima: Partner::from_env("BIMA", "CLIENT_ID", "CLIENT_SECRET")?,
            payment_link_hosts: std::env::var("POLIS_PAYMENT_LINK_HOSTS").ok().filter(|v| !v.is_empty()),
        })
    }
}

/// How a stack differs from the template's defaults.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub hook_auth: HookAuthMode,
    /// The functions' `RUST_LOG`, instead of the template's (e.g. `debug`, to prove what even
    /// debug logs leave out).
    pub log_filter: Option<&'static str>,
    /// Run the release binaries (`target/release`, as Lambda would) instead of the debug ones.
    pub release: bool,
    /// Processes per function (Lambda's concurrency).
    pub instances: usize,
    /// External partners instead of the simulators.
    pub partners: Partners,
    pub timings: StackTimings,
    /// `BimaPrintLinkBy`, instead of the template's `bima` (the suites written before the seed's
    /// reading became the default ask for `polis`, which exercises polis's own print-link calls).
    pub bima_print_link_by: Option<&'static str>,
    /// The functions export their spans to the local collector ([`LocalCloud::traces`]).
    pub traces: bool,
}

/// The stack's clocks: retries, leases and graces, and how often the watchdog runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackTimings {
    pub runner_visibility_s: u32,
    pub effect_lease_ms: u32,
    pub unknown_scoring_grace_s: u32,
    pub insurer_timeout_s: u32,
    pub schedule_every: std::time::Duration,
}

impl StackTimings {
    /// Retries come back in seconds, not minutes: a test sees a retry, a lease run out
    /// and a hook's grace end within its own time.
    pub const TESTS: StackTimings = StackTimings {
        runner_visibility_s: 4,
        effect_lease_ms: 3_000,
        unknown_scoring_grace_s: 3,
        insurer_timeout_s: 4,
        schedule_every: SCHEDULE_EVERY,
    };
    /// For a thousand flows at once on one machine, where an emulator call can take
    /// seconds: a lease that outlasts a slow insurer call; a grace for a hook that
    /// overtakes its process long enough for a saturated emulator, yet within the runner
    /// queue's 8 receives (8 × 20 s) before the dead-letter queue; the watchdog at a rate
    /// that leaves the emulator to the flows.
    pub const LOAD: StackTimings = StackTimings {
        runner_visibility_s: 20,
        effect_lease_ms: 30_000,
        unknown_scoring_grace_s: 120,
        insurer_timeout_s: 20,
        schedule_every: std::time::Duration::from_secs(30),
    };
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            hook_auth: HookAuthMode::SharedSecret,
            log_filter: None,
            release: false,
            instances: 2,
            partners: Partners::SIMULATORS,
            timings: StackTimings::TESTS,
            bima_print_link_by: Some("polis"),
            traces: false,
        }
    }
}

impl Harness {
    /// The stack as the template defines it (hooks authenticated by the shared secret).
    pub async fn start(stack: &str, ports: Ports, log_dir: PathBuf) -> Result<Harness, BoxError> {
        Self::start_with(stack, ports, log_dir, StackOptions::default()).await
    }

    pub async fn start_with(
        stack: &str,
        ports: Ports,
        log_dir: PathBuf,
        options: StackOptions,
    ) -> Result<Harness, BoxError> {
        let mut hook_base_url = format!("http://{}", ports.http);
        let (mode, hook_secret, signing) = match options.hook_auth {
            HookAuthMode::SharedSecret => (
                "shared-secret",
                HOOK_SECRET.to_owned(),
                polis_must_sim::HookSigning::Secret(HOOK_SECRET.into()),
            ),
            HookAuthMode::StandardWebhooks => (
                "standard-webhooks",
                format!("{OLD_SIGNING_SECRET} {NEW_SIGNING_SECRET}"),
                polis_must_sim::HookSigning::Sign(NEW_SIGNING_SECRET.into()),
            ),
            HookAuthMode::SecretPath => {
                hook_base_url = format!("{hook_base_url}/h/{NEW_PATH_TOKEN}");
                (
                    "secret-path",
                    format!("{OLD_PATH_TOKEN} {NEW_PATH_TOKEN}"),
                    polis_must_sim::HookSigning::None,
                )
            }
        };
        let sources = if options.hook_auth == HookAuthMode::SecretPath { "127.0.0.0/8, ::1/128" } else { "" };
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .map_err(|_| "AWS_ENDPOINT_URL is not set: start the emulator (make emulator) first")?;
        let sdk = polis::adapters::config::aws().await;
        // The stack's address is the contract-checking front door; the local cloud listens behind it.
        let front = tokio::net::TcpListener::bind(ports.http).await?;
        let must = polis_must_sim::start(
            SimConfig {
                hook_base_url,
                hook_auth: signing,
                login: MUST_LOGIN.into(),
                password: MUST_PASSWORD.into(),
                ..SimConfig::default()
            },
            ports.must,
        )
        .await?;
        let bima = polis_bima_sim::start(
            polis_bima_sim::SimConfig {
                client_id: BIMA_CLIENT_ID.into(),
                client_secret: BIMA_CLIENT_SECRET.into(),
                ..polis_bima_sim::SimConfig::default()
            },
            ports.bima,
        )
        .await?;
        // Our simulators, unless the developer named a partner's sandbox.
        let simulated_must =
            Partner { url: must.base_url(), login: MUST_LOGIN.into(), secret: MUST_PASSWORD.into() };
        let simulated_bima =
            Partner { url: bima.base_url(), login: BIMA_CLIENT_ID.into(), secret: BIMA_CLIENT_SECRET.into() };
        let partners = &options.partners;
        let must_partner = partners.must.clone().unwrap_or(simulated_must);
        let bima_partner = partners.bima.clone().unwrap_or(simulated_bima);
        let payment_hosts = match (&partners.payment_link_hosts, &partners.must) {
            (Some(hosts), _) => hosts.clone(),
            (None, Some(external)) => {
                polis::domain::links::host_of(&external.url).unwrap_or_default().to_owned()
            }
            (None, None) => polis_must_sim::PAYMENT_HOST.into(),
        };
        let parameters: BTreeMap<String, String> = [
            ("MustBaseUrl", must_partner.url.clone()),
            ("BimaBaseUrl", bima_partner.url.clone()),
            ("BimaClientId", bima_partner.login.clone()),
            ("BimaClientSecretParameterName", format!("/{stack}/bima-client-secret")),
            ("MustLogin", must_partner.login.clone()),
            ("MustPasswordParameterName", format!("/{stack}/must-password")),
            ("HookSecretParameterName", format!("/{stack}/hook-secret")),
            ("HookAuthMode", mode.into()),
            ("PaymentLinkHosts", payment_hosts),
            ("HookSourceNetworks", sources.into()),
            // A rotated hook secret is taken within two seconds (tests rotate it).
            ("HookAuthRefreshSeconds", "2".into()),
            ("RunnerVisibilityTimeout", options.timings.runner_visibility_s.to_string()),
            ("EffectLeaseMs", options.timings.effect_lease_ms.to_string()),
            ("UnknownScoringGraceSeconds", options.timings.unknown_scoring_grace_s.to_string()),
            ("InsurerTimeoutSeconds", options.timings.insurer_timeout_s.to_string()),
            // The watchdog runs every SCHEDULE_EVERY; a bank's choice is overdue after 6 s.
            ("ChoiceReminderMinutes", CHOICE_REMINDER_MINUTES.into()),
            ("TemporaryErrorRetryMinutes", TEMPORARY_ERROR_RETRY_MINUTES.into()),
        ]
        .into_iter()
        .chain(options.bima_print_link_by.map(|by| ("BimaPrintLinkBy", by.to_owned())))
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut platform_env = vec![
            ("AWS_ENDPOINT_URL".into(), endpoint),
            ("AWS_ACCESS_KEY_ID".into(), std::env::var("AWS_ACCESS_KEY_ID").unwrap_or("local".into())),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or("local".into()),
            ),
            ("AWS_REGION".into(), std::env::var("AWS_REGION").unwrap_or("us-east-1".into())),
            ("S3_FORCE_PATH_STYLE".into(), "true".into()),
        ];
        platform_env.extend(polis_local_cloud::own_emulators_from_env());
        // The operator's step before a deploy: the secrets go to SSM as SecureStrings.
        let ssm = aws_sdk_ssm::Client::new(&sdk);
        for (name, value) in [
            ("must-password", must_partner.secret.as_str()),
            ("hook-secret", hook_secret.as_str()),
            ("bima-client-secret", bima_partner.secret.as_str()),
        ] {
            ssm.put_parameter()
                .name(format!("/{stack}/{name}"))
                .value(value)
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .overwrite(true)
                .send()
                .await?;
        }
        let root = workspace_root();
        let mut cloud = LocalCloud::start(
            CloudOptions {
                template: root.join("template.yaml"),
                stack: stack.to_owned(),
                http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                runtime_listen: ports.runtime,
                bin_dir: root.join(if options.release { "target/release" } else { "target/debug" }),
                log_dir: log_dir.clone(),
                parameters,
                platform_env,
                env_overrides: options
                    .log_filter
                    .map(|f| ("RUST_LOG".to_owned(), f.to_owned()))
                    .into_iter()
                    .collect(),
                instances: options.instances,
                schedule_every: Some(options.timings.schedule_every),
                traces: options.traces,
            },
            &sdk,
        )
        .await?;
        cloud.http_url = contract_front(front, cloud.http_url.clone())?;
        let physical = |id: &str| cloud.physical(id).ok_or_else(|| format!("{id} is not in the stack"));
        let harness = Harness {
            table: physical("Table")?,
            documents_bucket: physical("DocumentsBucket")?,
            archive_bucket: physical("ArchiveBucket")?,
            bank_events_url: physical("BankEventsQueue")?,
            notifications_url: physical("BankNotificationsQueue")?,
            notifications: Arc::default(),
            log_dir,
            cloud,
            must,
            bima,
            sdk,
        };
        harness.collect_notifications();
        Ok(harness)
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        polis::adapters::config::s3(&self.sdk)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }
}

/// What the stacks of this test binary sent that breaks `contracts/` (answers and notices).
static VIOLATIONS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records a contract violation; the next harness read panics with it.
pub(crate) fn record_violation(violation: String) {
    eprintln!("CONTRACT VIOLATION: {violation}");
    VIOLATIONS.lock().unwrap_or_else(|e| e.into_inner()).push(violation);
}

/// Panics when anything the stack answered or sent the bank broke `contracts/`.
pub(crate) fn assert_contracts_held() {
    let seen = VIOLATIONS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if !seen.is_empty() {
        panic!(
            "the stack broke its contracts (contracts/openapi.yaml, contracts/schemas) {} time(s):\n{}",
            seen.len(),
            seen.join("\n")
        );
    }
}

struct Front {
    /// The local cloud's own address.
    inner: String,
    client: reqwest::Client,
}

/// Headers of one connection, not of the message.
fn hop_by_hop(name: &axum::http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "upgrade" | "te" | "trailer"
    )
}

/// Serves `listener` by passing every request to `inner` as it came (the `host` header too, which
/// SigV4 signs) and every answer back as it went, each answer held to `contracts/openapi.yaml`.
/// Returns the front door's URL.
fn contract_front(listener: tokio::net::TcpListener, inner: String) -> Result<String, BoxError> {
    let url = format!("http://{}", listener.local_addr()?);
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let front = Arc::new(Front { inner, client });
    let app = axum::Router::new()
        .fallback(pass)
        .with_state(front)
        .layer(axum::extract::DefaultBodyLimit::disable());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

async fn pass(
    axum::extract::State(front): axum::extract::State<Arc<Front>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let target = format!("{}{}", front.inner, uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut request = front.client.request(method.clone(), target).body(body);
    for (name, value) in headers.iter().filter(|(name, _)| !hop_by_hop(name)) {
        request = request.header(name, value);
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(e) => {
            return (axum::http::StatusCode::BAD_GATEWAY, format!("local cloud unreachable: {e}"))
                .into_response()
        }
    };
    let status = answer.status();
    let answer_headers = answer.headers().clone();
    let bytes = match answer.bytes().await {
        Ok(bytes) => bytes,
        Err(e) => {
            return (axum::http::StatusCode::BAD_GATEWAY, format!("answer unreadable: {e}")).into_response()
        }
    };
    if let Err(v) = polis_contract_docs::validate_answer(method.as_str(), uri.path(), status.as_u16(), &bytes)
    {
        let said = format!("{v}; the answer: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(500)]));
        record_violation(said.clone());
        // The caller sees it too: a test that only looks at statuses fails on this one.
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, [("x-contract-violation", "1")], said)
            .into_response();
    }
    let mut response = axum::response::Response::builder().status(status);
    for (name, value) in answer_headers.iter().filter(|(name, _)| !hop_by_hop(name)) {
        response = response.header(name, value);
    }
    response
        .body(axum::body::Body::from(bytes))
        .unwrap_or_else(|_| axum::http::StatusCode::BAD_GATEWAY.into_response())
}
