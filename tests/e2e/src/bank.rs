//! The bank actor: what the bank's systems do against the stack. It puts documents where the
//! bank keeps them, sends truck requests and loan events to the bank-events queue, receives the
//! notifications the stack sends back, and asks for a customer's products as the bank's backend.

use std::time::{Duration, Instant};

use polis_must_sim::Scenario;
use serde_json::{json, Value};
use sha2::Digest;

use crate::{BoxError, Harness};

impl Harness {
    /// Drains the bank-notifications queue in the background, filing each by process.
    pub(crate) fn collect_notifications(&self) {
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
                        // Every notice the bank receives is held to contracts/schemas.
                        if let Err(v) = polis_contract_docs::validate_notice(&body) {
                            crate::stack::record_violation(format!("{v}; the notice: {body}"));
                        }
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
    /// Panics when the stack has broken its contracts (a notice or an HTTP answer).
    pub fn notifications(&self, process_id: &str) -> Vec<Value> {
        crate::stack::assert_contracts_held();
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
        let request = polis::domain::ids::ProcessId::parse(process_id)?;
        let key = format!("{}{name}", polis::domain::truck::bank::documents_prefix(&request));
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
            "vehicle": {
                "vin": vin, "plates": "С001КМ750", "hasTrailer": true,
                "technicalInspection": {"series": ".", "number": "076260012000001", "startOn": "2026-09-11", "endOn": "2027-09-30"},
                "isStandardCargo": true, "isHighRiskCargo": false,
            },
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
        let request = Self::truck_request(process_id, customer_id, vin, legal_entity, documents);
        // What the harness sends as a valid request, the contract accepts.
        if let Err(v) = polis_contract_docs::validate_event(&request) {
            panic!("the harness's truck request breaks contracts/schemas: {v}");
        }
        self.send_bank_event(&request).await
    }

    /// As [`Harness::start_truck_process`], with `"choice": "bank"`: polis waits after the
    /// offers for the bank's `truck.insurer-chosen` ([`Harness::choose_insurer`]).
    pub async fn start_truck_process_bank_chooses(
        &self,
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
        let customer_id = format!("cust-{process_id}");
        let mut request = Self::truck_request(process_id, &customer_id, vin, legal_entity, documents);
        request["choice"] = json!("bank");
        request["payment"] = json!({"method": "link"});
        if let Err(v) = polis_contract_docs::validate_event(&request) {
            panic!("the harness's truck request breaks contracts/schemas: {v}");
        }
        self.send_bank_event(&request).await
    }

    /// Sends the bank's `truck.insurer-chosen` for a process (`payment_method`: `link`,
    /// `invoice`, or the request's when `None`), held to the contract first.
    pub async fn choose_insurer(
        &self,
        process_id: &str,
        event_id: &str,
        insurer: &str,
        payment_method: Option<&str>,
    ) -> Result<(), BoxError> {
        let mut event = json!({"type": "truck.insurer-chosen", "eventId": event_id, "requestId": process_id, "insurer": insurer});
        if let Some(method) = payment_method {
            event["paymentMethod"] = json!(method);
        }
        if let Err(v) = polis_contract_docs::validate_event(&event) {
            panic!("the harness's truck.insurer-chosen breaks contracts/schemas: {v}");
        }
        self.send_bank_event(&event).await
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
        let body = response.json().await?;
        // The answer came through the contract-checking front door (stack.rs).
        crate::stack::assert_contracts_held();
        Ok((status, body))
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
}

/// The `type` of each notification, in order.
pub fn kinds(notices: &[Value]) -> Vec<String> {
    notices.iter().map(|n| n["type"].as_str().unwrap_or_default().to_owned()).collect()
}
