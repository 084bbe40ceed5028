//! The end-to-end harness: the MUST and BIMA simulators and the local cloud
//! (real function binaries from `template.yaml`) against the AWS emulator, plus
//! helpers that act as the bank: put documents in S3, send events, read
//! notifications, watch a process, ask for a customer's products.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use polis_local_cloud::{CloudOptions, LocalCloud};
use polis_must_sim::{Scenario, SimConfig, SimHandle};
use serde_json::{json, Value};
use sha2::Digest;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Secrets the local stack is configured with (local values, not real ones).
pub const HOOK_SECRET: &str = "local-hook-secret-0123456789";
/// Standard Webhooks signing secrets mid-rotation: the old one still accepted, MUST signing with the new.
pub const OLD_SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const NEW_SIGNING_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub const MUST_LOGIN: &str = "polis";
pub const MUST_PASSWORD: &str = "polis-local-password";
pub const BIMA_CLIENT_ID: &str = "imon";
pub const BIMA_CLIENT_SECRET: &str = "bima-local-client-secret";

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
    notifications: Arc<Mutex<HashMap<String, Vec<Value>>>>,
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
}

/// How a stack differs from the template's defaults.
#[derive(Debug, Clone, Copy)]
pub struct StackOptions {
    pub hook_auth: HookAuthMode,
    /// The functions' `RUST_LOG`, instead of the template's (e.g. `debug`, to prove what even
    /// debug logs leave out).
    pub log_filter: Option<&'static str>,
    /// Run the release binaries (`target/release`, as Lambda would) instead of the debug ones.
    pub release: bool,
    /// Processes per function (Lambda's concurrency).
    pub instances: usize,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions { hook_auth: HookAuthMode::SharedSecret, log_filter: None, release: false, instances: 2 }
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
        };
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .map_err(|_| "AWS_ENDPOINT_URL is not set: start the emulator (make emulator) first")?;
        let sdk = polis::adapters::config::aws().await;
        let must = polis_must_sim::start(
            SimConfig {
                hook_base_url: format!("http://{}", ports.http),
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
        let parameters: BTreeMap<String, String> = [
            ("MustBaseUrl", must.base_url()),
            ("BimaBaseUrl", bima.base_url()),
            ("BimaClientId", BIMA_CLIENT_ID.into()),
            ("BimaClientSecretParameterName", format!("/{stack}/bima-client-secret")),
            ("MustLogin", MUST_LOGIN.into()),
            ("MustPasswordParameterName", format!("/{stack}/must-password")),
            ("HookSecretParameterName", format!("/{stack}/hook-secret")),
            ("HookAuthMode", mode.into()),
            // Retries come back in seconds, not minutes, locally.
            ("RunnerVisibilityTimeout", "4".into()),
            ("EffectLeaseMs", "3000".into()),
            ("UnknownScoringGraceSeconds", "3".into()),
            ("InsurerTimeoutSeconds", "4".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let platform_env = vec![
            ("AWS_ENDPOINT_URL".into(), endpoint),
            ("AWS_ACCESS_KEY_ID".into(), std::env::var("AWS_ACCESS_KEY_ID").unwrap_or("local".into())),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or("local".into()),
            ),
            ("AWS_REGION".into(), std::env::var("AWS_REGION").unwrap_or("us-east-1".into())),
            ("S3_FORCE_PATH_STYLE".into(), "true".into()),
        ];
        // The operator's step before a deploy: the secrets go to SSM as SecureStrings.
        let ssm = aws_sdk_ssm::Client::new(&sdk);
        for (name, value) in [
            ("must-password", MUST_PASSWORD),
            ("hook-secret", hook_secret.as_str()),
            ("bima-client-secret", BIMA_CLIENT_SECRET),
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
        let cloud = LocalCloud::start(
            CloudOptions {
                template: root.join("template.yaml"),
                stack: stack.to_owned(),
                http_listen: ports.http,
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
            },
            &sdk,
        )
        .await?;
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

    /// Drains the bank-notifications queue in the background, filing each by process.
    fn collect_notifications(&self) {
        let (sqs, url, store) = (self.sqs(), self.notifications_url.clone(), self.notifications.clone());
        tokio::spawn(async move {
            loop {
                let Ok(out) = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                for m in out.messages() {
                    if let Some(body) = m.body().and_then(|b| serde_json::from_str::<Value>(b).ok()) {
                        let pid = body["processId"]
                            .as_str()
                            .or(body["loanNumber"].as_str())
                            .unwrap_or_default()
                            .to_owned();
                        store.lock().unwrap_or_else(|e| e.into_inner()).entry(pid).or_default().push(body);
                    }
                    if let Some(handle) = m.receipt_handle() {
                        let _ = sqs.delete_message().queue_url(&url).receipt_handle(handle).send().await;
                    }
                }
            }
        });
    }

    /// Notifications the bank has received for a process (or loan number) so far, in arrival order.
    pub fn notifications(&self, process_id: &str) -> Vec<Value> {
        self.notifications
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(process_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until the bank has a notification of `kind` for the process.
    pub async fn wait_for_notification(
        &self,
        process_id: &str,
        kind: &str,
        timeout: Duration,
    ) -> Result<Value, BoxError> {
        let start = Instant::now();
        loop {
            if let Some(n) = self.notifications(process_id).into_iter().find(|n| n["type"] == kind) {
                return Ok(n);
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "{process_id}: no {kind} within {timeout:?}; got {:?}",
                    self.notifications(process_id)
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Puts a document where the bank keeps them and returns its reference.
    pub async fn put_document(&self, process_id: &str, type_id: u32, name: &str) -> Result<Value, BoxError> {
        let key = format!("inbound/{process_id}/{name}");
        let body = polis_must_sim::pdf::one_page(&format!("scan of document type {type_id}"));
        self.s3().put_object().bucket(&self.documents_bucket).key(&key).body(body.into()).send().await?;
        Ok(json!({"typeId": type_id, "s3Key": key, "fileName": name}))
    }

    /// Sends an event to the bank-events queue, as the bank does.
    pub async fn send_bank_event(&self, event: &Value) -> Result<(), BoxError> {
        self.sqs()
            .send_message()
            .queue_url(&self.bank_events_url)
            .message_body(event.to_string())
            .send()
            .await?;
        Ok(())
    }

    /// A truck policy request for `process_id` and `vin` by `customer_id`, with the given documents.
    pub fn truck_request(
        process_id: &str,
        customer_id: &str,
        vin: &str,
        legal_entity: bool,
        documents: Vec<Value>,
    ) -> Value {
        let party = if legal_entity {
            json!({"kind": "legalEntity", "name": "ООО «Тест Логистик»", "inn": "7731440001", "kpp": "503100001",
                   "phone": "+79990001122", "email": "fleet@test-logistic.ru", "registrationCity": "Москва"})
        } else {
            json!({"kind": "individual", "name": "Петров Пётр Петрович", "inn": "500100732259",
                   "phone": "+79991234567", "email": "petrov@example.ru", "registrationCity": "Москва"})
        };
        json!({
            "type": "truck.policy-requested",
            "eventId": format!("evt-{process_id}"),
            "requestId": process_id,
            "customerId": customer_id,
            "policyholder": party,
            "owner": party,
            "vehicle": {"vin": vin, "plates": "С001КМ750", "hasTrailer": true},
            "drivers": [{"fullName": "Сидоров Иван", "birthDate": "1980-05-01", "licenseNumber": "7701123456", "licenseIssuedOn": "2015-03-03"}],
            "policy": {"startOn": "2027-01-15", "termMonths": 12},
            "payment": {"method": if legal_entity { "invoice" } else { "link" }},
            "documents": documents,
        })
    }

    /// Registers the simulator scenario for `vin`, stores the documents, and sends the request
    /// (customer `cust-{process_id}`).
    pub async fn start_truck_process(
        &self,
        process_id: &str,
        vin: &str,
        scenario: Scenario,
        legal_entity: bool,
    ) -> Result<(), BoxError> {
        let customer_id = format!("cust-{process_id}");
        self.start_truck_process_for(&customer_id, process_id, vin, scenario, legal_entity).await
    }

    /// As [`Harness::start_truck_process`], for a given customer.
    pub async fn start_truck_process_for(
        &self,
        customer_id: &str,
        process_id: &str,
        vin: &str,
        scenario: Scenario,
        legal_entity: bool,
    ) -> Result<(), BoxError> {
        self.must.sim.set_scenario(vin, scenario);
        let documents = vec![
            self.put_document(process_id, 11, "sts.pdf").await?,
            self.put_document(process_id, 12, "pts.pdf").await?,
        ];
        self.send_bank_event(&Self::truck_request(process_id, customer_id, vin, legal_entity, documents))
            .await
    }

    /// A truck process as stored: its `state` JSON with `version` beside it.
    pub async fn process(&self, process_id: &str) -> Result<Option<Value>, BoxError> {
        self.record(&format!("TRUCK#{process_id}")).await
    }

    /// A loan's credit-life record as stored: its `state` JSON with `version` beside it.
    pub async fn loan(&self, loan_number: &str) -> Result<Option<Value>, BoxError> {
        self.record(&format!("LOAN#{loan_number}")).await
    }

    async fn record(&self, pk: &str) -> Result<Option<Value>, BoxError> {
        let out = self
            .dynamodb()
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S("PROCESS".into()))
            .consistent_read(true)
            .send()
            .await?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let mut state: Value = attribute_json(item.get("state").ok_or("no state")?)?;
        state["version"] =
            json!(item.get("version").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok()));
        Ok(Some(state))
    }

    /// Waits until the truck process has reached `stage` and settled there (nothing left in
    /// its outbox), calling `on_change` at each new stage seen.
    pub async fn wait_for_stage(
        &self,
        process_id: &str,
        stage: &str,
        timeout: Duration,
        on_change: impl FnMut(&Value),
    ) -> Result<Value, BoxError> {
        self.wait_settled(&format!("TRUCK#{process_id}"), stage, timeout, on_change).await
    }

    /// Waits until the loan's credit-life record has reached `stage` and settled there.
    pub async fn wait_for_loan_stage(
        &self,
        loan_number: &str,
        stage: &str,
        timeout: Duration,
    ) -> Result<Value, BoxError> {
        self.wait_settled(&format!("LOAN#{loan_number}"), stage, timeout, |_| {}).await
    }

    async fn wait_settled(
        &self,
        process_id: &str,
        stage: &str,
        timeout: Duration,
        mut on_change: impl FnMut(&Value),
    ) -> Result<Value, BoxError> {
        let start = Instant::now();
        let mut last = String::new();
        loop {
            if let Some(p) = self.record(process_id).await? {
                let now = stage_of(&p);
                if now != last {
                    on_change(&p);
                    last = now.clone();
                }
                if now == stage && is_settled(&p) {
                    return Ok(p);
                }
                if now != stage && ENDED.contains(&now.as_str()) {
                    return Err(format!("{process_id} ended as {now}, not {stage}: {p}").into());
                }
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "{process_id} did not reach {stage} within {timeout:?} (last: {last:?})"
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /api/customers/{customer}/products?{query}` as the bank's backend calls it:
    /// signed (SigV4) with the local stack's key when `signed`. Returns status and body.
    pub async fn products(
        &self,
        customer: &str,
        query: &str,
        signed: bool,
    ) -> Result<(u16, Value), BoxError> {
        let mut url = format!("{}/api/customers/{customer}/products", self.cloud.http_url);
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let mut request = reqwest::Client::new().get(&url);
        if signed {
            let principal = polis_local_cloud::sigv4::Principal {
                access_key: std::env::var("AWS_ACCESS_KEY_ID").unwrap_or("local".into()),
                secret_key: std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or("local".into()),
            };
            let region = std::env::var("AWS_REGION").unwrap_or("us-east-1".into());
            for (name, value) in polis_local_cloud::sigv4::sign(&principal, &region, "GET", &url, b"")? {
                request = request.header(name, value);
            }
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    }

    /// A `loan.issued` event (the example in `shared/examples/bank`) for `loan_number`,
    /// `customer_id` and `sum`.
    pub fn loan_event(loan_number: &str, customer_id: &str, sum: &str) -> Value {
        let mut loan: Value =
            serde_json::from_str(include_str!("../../../shared/examples/bank/loan.issued.json"))
                .expect("the example loan event is JSON");
        loan["loanNumber"] = json!(loan_number);
        loan["eventId"] = json!(format!("evt-{loan_number}"));
        loan["customerId"] = json!(customer_id);
        loan["sum"] = json!(sum);
        loan
    }

    /// Runs the operator's `polis-replay` command (`list`, `quarantine`, `dead-letters`, `all`)
    /// against this stack, as an operator would with the stack's outputs; returns its stdout.
    pub async fn replay(&self, command: &str) -> Result<String, BoxError> {
        self.replay_with(&[command]).await
    }

    /// An operator's answer to a review with `polis-replay resolve`; `Ok(false)` when the
    /// process was no longer held (a hook from the partner proved the call meanwhile).
    pub async fn resolve(&self, process: &str, answer: &[&str]) -> Result<bool, BoxError> {
        let mut args = vec!["resolve", process];
        args.extend(answer);
        match self.replay_with(&args).await {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("is not held for review") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `polis-replay` with arguments, e.g. `["resolve", "TRUCK#REQ-1", "happened", "sc-1"]`.
    pub async fn replay_with(&self, args: &[&str]) -> Result<String, BoxError> {
        let command = args.join(" ");
        let physical = |id: &str| self.cloud.physical(id).ok_or_else(|| format!("{id} is not in the stack"));
        let out = tokio::process::Command::new(workspace_root().join("target/debug/polis-replay"))
            .args(args)
            .env("TABLE_NAME", &self.table)
            .env("TRUCK_QUEUE_URL", physical("TruckQueue")?)
            .env("LOAN_QUEUE_URL", physical("LoanQueue")?)
            .env("BANK_EVENTS_QUEUE_URL", &self.bank_events_url)
            .env("TRUCK_DLQ_URL", physical("TruckDeadLetterQueue")?)
            .env("LOAN_DLQ_URL", physical("LoanDeadLetterQueue")?)
            .env("BANK_EVENTS_DLQ_URL", physical("BankEventsDeadLetterQueue")?)
            .output()
            .await?;
        if !out.status.success() {
            return Err(format!("polis-replay {command}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Plays the operator who can look into MUST's back office: while the truck process for
    /// `vin` is held for review, answers with what MUST's records say (the held call
    /// happened, with its scoringId for `init`, or it did not), then replays what was kept
    /// meanwhile (hooks for a scoringId we did not know yet). Returns each answer given.
    pub async fn answer_truck_reviews(&self, pid: &str, vin: &str) -> Result<Vec<String>, BoxError> {
        let start = Instant::now();
        let mut answers = Vec::new();
        let mut answered = Value::Null;
        loop {
            let Some(record) = self.process(pid).await? else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let stage = stage_of(&record);
            if ENDED.contains(&stage.as_str()) && is_settled(&record) {
                return Ok(answers);
            }
            // Hooks of its scoringId kept while nobody knew it (another operator's replay may
            // have re-driven them before the answer): replayed again.
            if let Some(sid) = record["scoring_id"].as_str().filter(|_| stage != "needs-review") {
                let needle = format!("\"scoringId\":\"{sid}\"");
                if self.quarantined().await?.iter().any(|k| k.to_string().contains(&needle)) {
                    self.replay("quarantine").await?;
                }
            }
            let review = &record["outbox"]["review"];
            if stage == "needs-review"
                && is_settled(&record)
                && held_for(&record) > REVIEW_PATIENCE
                && *review != answered
            {
                answered = review.clone();
                let effect = review["effect"].as_str().unwrap_or_default().to_owned();
                let call = must_call_of(&effect, &record);
                let ours = done_calls(&record, |e| must_call_of(e, &record) == call);
                let theirs = self.must.sim.changes(vin).get(call).copied().unwrap_or(0);
                let key = format!("TRUCK#{pid}");
                let answer = if theirs > ours {
                    let reference =
                        (call == "init").then(|| self.must.sim.scorings(vin).last().cloned()).flatten();
                    let mut args = vec!["resolve", &key, "happened"];
                    args.extend(reference.as_deref());
                    self.replay_with(&args).await?;
                    format!("{effect}: happened")
                } else {
                    self.replay_with(&["resolve", &key, "did-not-happen"]).await?;
                    format!("{effect}: did not happen")
                };
                // What waited for the answer (a first hook for the scoringId) goes again.
                tokio::time::sleep(Duration::from_millis(500)).await;
                self.replay("quarantine").await?;
                answers.push(answer);
            }
            if start.elapsed() > Duration::from_secs(180) {
                return Err(format!("{pid} did not end: {stage}, answers {answers:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// As [`Harness::answer_truck_reviews`], for a loan: a held sale is answered with the
    /// policy BIMA's back office shows for the credit (or "did not happen" when it has none).
    pub async fn answer_loan_reviews(&self, number: &str) -> Result<Vec<String>, BoxError> {
        let start = Instant::now();
        let mut answers = Vec::new();
        let mut answered = Value::Null;
        loop {
            let Some(record) = self.loan(number).await? else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let stage = stage_of(&record);
            if ENDED.contains(&stage.as_str()) && is_settled(&record) {
                return Ok(answers);
            }
            let review = &record["outbox"]["review"];
            if stage == "needs-review"
                && is_settled(&record)
                && held_for(&record) > REVIEW_PATIENCE
                && *review != answered
            {
                answered = review.clone();
                let effect = review["effect"].as_str().unwrap_or_default().to_owned();
                let key = format!("LOAN#{number}");
                let policies = self.bima.sim.policies_of(number);
                let (answered_it, answer) = match (effect.as_str(), policies.first()) {
                    ("sale", Some((id, policy_number))) => (
                        self.resolve(&key, &["happened", id, policy_number]).await?,
                        format!("sale: happened ({id})"),
                    ),
                    _ => {
                        (self.resolve(&key, &["did-not-happen"]).await?, format!("{effect}: did not happen"))
                    }
                };
                if answered_it {
                    answers.push(answer);
                }
            }
            if start.elapsed() > Duration::from_secs(180) {
                return Err(format!("{number} did not end: {stage}, answers {answers:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How many messages are in a queue of the stack (by logical id), waiting or being
    /// handled, as SQS approximates it.
    pub async fn queue_depth(&self, logical_id: &str) -> Result<u64, BoxError> {
        use aws_sdk_sqs::types::QueueAttributeName::{
            ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible,
        };
        let url =
            self.cloud.physical(logical_id).ok_or_else(|| format!("{logical_id} is not in the stack"))?;
        let out = self
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(ApproximateNumberOfMessages)
            .attribute_names(ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let count = |name| {
            out.attributes().and_then(|a| a.get(&name)).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0)
        };
        Ok(count(ApproximateNumberOfMessages) + count(ApproximateNumberOfMessagesNotVisible))
    }

    /// Every quarantined record (as stored: id, source, reason, body, origin).
    pub async fn quarantined(&self) -> Result<Vec<Value>, BoxError> {
        let out = self
            .dynamodb()
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :q")
            .expression_attribute_values(":q", AttributeValue::S("QUARANTINE".into()))
            .send()
            .await?;
        Ok(out.items().iter().filter_map(|i| attribute_json(i.get("record")?).ok()).collect())
    }

    /// Sends a loan whose print form is already in the archive when the runner comes to
    /// store it, as an attempt that died after its S3 write would have left it: BIMA's
    /// print link is down for a while, and in that gap, once the sale is recorded, the
    /// form is put where the runner will write it. Returns that object's (SHA-256, size).
    pub async fn loan_with_print_form_already_archived(
        &self,
        loan_number: &str,
        customer_id: &str,
        sum: &str,
    ) -> Result<(String, usize), BoxError> {
        let scenario = polis_bima_sim::Scenario {
            print_link_down: 3,
            sale_answer: Some(polis_bima_sim::SaleAnswer::WithIds),
            ..Default::default()
        };
        self.bima.sim.set_scenario(sum, scenario);
        self.send_bank_event(&Harness::loan_event(loan_number, customer_id, sum)).await?;
        let start = Instant::now();
        let policy_id = loop {
            let loan = self.loan(loan_number).await?;
            if let Some(id) = loan.as_ref().and_then(|l| l["policy"]["policy_id"].as_str()) {
                break id.to_owned();
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!("{loan_number}: no sale recorded; {loan:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if self.loan(loan_number).await?.is_some_and(|l| !l["print_form"].is_null()) {
            return Err(format!("{loan_number}: archived before the test could put the earlier copy").into());
        }
        let earlier = format!("%PDF-1.4\n% an earlier attempt's copy of {policy_id}\n%%EOF\n").into_bytes();
        let sha = hex::encode(sha2::Sha256::digest(&earlier));
        self.s3()
            .put_object()
            .bucket(&self.archive_bucket)
            .key(format!("credit-life/{loan_number}/{policy_id}.pdf"))
            .metadata("sha256", &sha)
            .body(earlier.clone().into())
            .send()
            .await?;
        Ok((sha, earlier.len()))
    }

    /// How many versions of an archived object the (versioned) bucket holds.
    pub async fn archived_versions(&self, key: &str) -> Result<usize, BoxError> {
        let out = self.s3().list_object_versions().bucket(&self.archive_bucket).prefix(key).send().await?;
        Ok(out.versions().iter().filter(|v| v.key() == Some(key)).count())
    }

    /// Reads an archived object with its metadata.
    pub async fn archived(&self, key: &str) -> Result<(Vec<u8>, HashMap<String, String>), BoxError> {
        let out = self.s3().get_object().bucket(&self.archive_bucket).key(key).send().await?;
        let metadata = out.metadata().cloned().unwrap_or_default();
        let bytes = out.body.collect().await?.into_bytes().to_vec();
        Ok((bytes, metadata))
    }
}

/// How long the operator leaves a review open before answering it: a hook from the partner
/// may still prove the call happened.
const REVIEW_PATIENCE: Duration = Duration::from_secs(15);

/// How long the record has been held for review.
fn held_for(record: &Value) -> Duration {
    let since = record["outbox"]["review"]["sinceMs"].as_u64().unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Duration::from_millis(now.saturating_sub(since))
}

/// A record stored as native DynamoDB attributes, as JSON.
pub fn attribute_json(value: &AttributeValue) -> Result<Value, BoxError> {
    Ok(serde_dynamo::from_attribute_value(value.clone())?)
}

/// The stages a process ends in.
pub const ENDED: [&str; 4] = ["issued", "rejected", "failed", "sold"];

/// A process record's stage as operators see it: `needs-review` while a call is held.
pub fn stage_of(record: &Value) -> String {
    if !record["outbox"]["review"].is_null() {
        return "needs-review".into();
    }
    record["stage"].as_str().unwrap_or_default().to_owned()
}

/// Nothing left to do for now: no pending effect, or (while held) none but the held call.
pub fn is_settled(record: &Value) -> bool {
    let pending = record["outbox"]["pending"].as_array().cloned().unwrap_or_default();
    if record["outbox"]["review"].is_null() {
        pending.is_empty()
    } else {
        pending.iter().all(|e| e["action"] != "notify")
    }
}

/// The MUST call (as the simulator counts it) an effect of the process makes.
pub fn must_call_of<'a>(effect: &str, record: &Value) -> &'a str {
    if effect == "init" {
        "init"
    } else if effect.starts_with("documents-") {
        "documents"
    } else if effect.starts_with("contract-") {
        "contract"
    } else if effect.starts_with("payment-order-") {
        "payment-order"
    } else if effect.starts_with("payment-") {
        if record["request"]["payment"]["method"] == "invoice" {
            "payment-invoice"
        } else {
            "payment-link"
        }
    } else {
        ""
    }
}

/// How many of the process's calls that `matches` selects it knows happened (done, or
/// resolved as happened).
pub fn done_calls(record: &Value, matches: impl Fn(&str) -> bool) -> u64 {
    record["outbox"]["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["outcome"] == "done" || (c["outcome"] == "resolved" && c["happened"] == true))
        .filter(|c| matches(c["effect"].as_str().unwrap_or_default()))
        .count() as u64
}

/// The `type` of each notification, in order.
pub fn kinds(notices: &[Value]) -> Vec<String> {
    notices.iter().map(|n| n["type"].as_str().unwrap_or_default().to_owned()).collect()
}
