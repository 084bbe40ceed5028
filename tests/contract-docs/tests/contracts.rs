//! The contracts hold for the examples, refuse broken messages and answers, and name exactly
//! the routes of template.yaml.

use std::collections::BTreeSet;
use std::path::Path;

use polis_contract_docs::{
    contracts_dir, examples_dir, operations, schema_files, validate_against, validate_answer, validate_event,
    validate_notice, Violation,
};
use serde_json::{json, Value};

fn json_files(dir: &Path) -> Vec<(String, Value)> {
    let mut files: Vec<(String, Value)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            (name, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

fn example(dir: &str, name: &str) -> Value {
    let path = examples_dir().join(dir).join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The kinds the umbrella schema's `type` enum names.
fn kinds(umbrella: &str) -> BTreeSet<String> {
    let path = contracts_dir().join("schemas").join(umbrella);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    schema["properties"]["type"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_example_in_shared_examples_validates_and_every_kind_has_one() {
    let dirs: BTreeSet<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // `bima/` holds BIMA's own sale form (the seed's), not a message between the bank and polis.
    assert_eq!(dirs, BTreeSet::from(["bank".into(), "bima".into(), "notifications".into()]));
    let mut seen = BTreeSet::new();
    for (name, event) in json_files(&examples_dir().join("bank")) {
        validate_event(&event).unwrap_or_else(|v| panic!("bank/{name}: {v}"));
        assert_eq!(format!("{}.json", event["type"].as_str().unwrap()), name);
        seen.insert(event["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, kinds("bank-event.schema.json"), "an example per bank event kind");
    let mut seen = BTreeSet::new();
    for (name, notice) in json_files(&examples_dir().join("notifications")) {
        validate_notice(&notice).unwrap_or_else(|v| panic!("notifications/{name}: {v}"));
        assert_eq!(format!("{}.json", notice["type"].as_str().unwrap()), name);
        seen.insert(notice["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, kinds("notice.schema.json"), "an example per notice kind");
    println!("{} bank events and {} notices valid", kinds("bank-event.schema.json").len(), seen.len());
}

#[test]
fn every_kind_has_its_schema_file_and_every_schema_file_compiles() {
    let mut expected: BTreeSet<String> = kinds("bank-event.schema.json")
        .into_iter()
        .chain(kinds("notice.schema.json"))
        .map(|k| format!("{k}.schema.json"))
        .collect();
    expected.extend(["bank-event.schema.json", "notice.schema.json", "common.schema.json"].map(String::from));
    let files: BTreeSet<String> = schema_files().into_iter().collect();
    assert_eq!(files, expected);
    for file in files {
        if let Err(v) = validate_against(&file, &json!({})) {
            assert!(!v.errors.iter().any(|e| e.contains("does not compile")), "{v}");
        }
    }
}

/// `base` with the value at `pointer` replaced (`None`: removed).
fn with(base: &Value, pointer: &str, value: Option<Value>) -> Value {
    let mut out = base.clone();
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    let target = if parent.is_empty() { &mut out } else { out.pointer_mut(parent).unwrap() };
    match (target, value) {
        (Value::Object(map), Some(v)) => {
            map.insert(last.to_owned(), v);
        }
        (Value::Object(map), None) => {
            map.remove(last);
        }
        (Value::Array(items), Some(v)) => items[last.parse::<usize>().unwrap()] = v,
        (other, _) => panic!("{pointer}: {other}"),
    }
    out
}

fn refused(result: Result<(), Violation>, case: &str, fragment: &str) {
    match result {
        Ok(()) => panic!("{case}: accepted"),
        Err(v) => {
            let said = v.to_string();
            assert!(said.contains(fragment), "{case}: expected {fragment:?} in {said}");
        }
    }
}

#[test]
fn broken_bank_events_are_refused_naming_the_place() {
    let truck = example("bank", "truck.policy-requested.json");
    let loan = example("bank", "loan.issued.json");
    let person = json!({"kind": "individual", "name": "Петров Пётр", "inn": "500100732259"});
    let cases = [
        ("no requestId", with(&truck, "/requestId", None), "requestId"),
        ("requestId with a slash", with(&truck, "/requestId", Some(json!("REQ/1"))), "/requestId"),
        ("a legal entity's 9-digit INN", with(&truck, "/owner/inn", Some(json!("773144000"))), "/owner/inn"),
        ("a legal entity without KPP", with(&truck, "/owner/kpp", None), "kpp"),
        (
            "a person's 10-digit INN",
            with(&truck, "/owner", Some(with(&person, "/inn", Some(json!("7731440000"))))),
            "/owner/inn",
        ),
        (
            "an invoice for a person",
            with(
                &with(&truck, "/policyholder", Some(person.clone())),
                "/payment/method",
                Some(json!("invoice")),
            ),
            "/policyholder/kind",
        ),
        ("neither vin nor plates", with(&truck, "/vehicle", Some(json!({"hasTrailer": false}))), "/vehicle"),
        ("a 16-character VIN", with(&truck, "/vehicle/vin", Some(json!("WMA06XZZ8GP00000"))), "/vehicle/vin"),
        ("no documents", with(&truck, "/documents", Some(json!([]))), "/documents"),
        ("month 13", with(&truck, "/policy/startOn", Some(json!("2026-13-01"))), "/policy/startOn"),
        ("a 13-month term", with(&truck, "/policy/termMonths", Some(json!(13))), "/policy/termMonths"),
        (
            "a '..' key",
            with(&truck, "/documents/0/s3Key", Some(json!("inbound/REQ-2026-0001/../x.pdf"))),
            "s3Key",
        ),
        (
            "a key outside inbound/",
            with(&truck, "/documents/0/s3Key", Some(json!("outbound/REQ-2026-0001/x.pdf"))),
            "s3Key",
        ),
        ("a phone of 10 digits", with(&truck, "/policyholder/phone", Some(json!("+7999000000"))), "phone"),
        ("an INN sent as a number", with(&truck, "/owner/inn", Some(json!(7731440000u64))), "/owner/inn"),
        ("an 8-digit Tajik INN", with(&loan, "/borrower/tin", Some(json!("12345678"))), "/borrower/tin"),
        ("a sum of zero", with(&loan, "/sum", Some(json!("0"))), "/sum"),
        ("a lower-case payment status", with(&loan, "/paymentStatus", Some(json!("paid"))), "/paymentStatus"),
        ("no phones", with(&loan, "/borrower/phones", Some(json!([]))), "/borrower/phones"),
        ("a blank last name", with(&loan, "/borrower/lastName", Some(json!("  "))), "/borrower/lastName"),
        ("a 361-month loan", with(&loan, "/termMonths", Some(json!(361))), "/termMonths"),
        (
            "a 5-digit post code",
            with(&loan, "/borrower/addresses/0/postCode", Some(json!("73400"))),
            "postCode",
        ),
        ("an unknown type", with(&loan, "/type", Some(json!("loan.repaid"))), "unknown event type"),
        ("a notice sent as an event", example("notifications", "truck.paid.json"), "unknown event type"),
    ];
    for (case, event, fragment) in &cases {
        refused(validate_event(event), case, fragment);
    }
    println!("{} broken bank events refused", cases.len());
}

#[test]
fn broken_notices_are_refused_naming_the_place() {
    let offer = example("notifications", "truck.offer.json");
    let issued = example("notifications", "truck.policy-issued.json");
    let bima = example("notifications", "bima.policy-issued.json");
    let cases = [
        ("a field the contract does not name", with(&offer, "/premiumRub", Some(json!(1))), "premiumRub"),
        ("an unknown outcome", with(&offer, "/outcome", Some(json!("maybe"))), "/outcome"),
        ("a premium as text", with(&offer, "/premium", Some(json!("17847.29"))), "/premium"),
        ("no insurer", with(&offer, "/insurer", None), "insurer"),
        ("an upper-case insurer", with(&offer, "/insurer", Some(json!("Ingostrah"))), "/insurer"),
        (
            "no policyNumber (null is the way to say none)",
            with(&issued, "/policyNumber", None),
            "policyNumber",
        ),
        (
            "an upper-case SHA-256",
            with(&issued, "/files/0/sha256", Some(json!("B".repeat(64)))),
            "/files/0/sha256",
        ),
        ("a file without its size", with(&issued, "/files/0/size", None), "size"),
        (
            "an empty pendingFiles (absent when none)",
            with(&issued, "/pendingFiles", Some(json!([]))),
            "/pendingFiles",
        ),
        ("a processId with a slash", with(&issued, "/processId", Some(json!("REQ/1"))), "/processId"),
        ("a premium as a number", with(&bima, "/premium", Some(json!(3000))), "/premium"),
        (
            "an unknown error category",
            with(&example("notifications", "truck.failed.json"), "/error/category", Some(json!("oops"))),
            "/error/category",
        ),
        (
            "a payment link over http",
            with(
                &example("notifications", "truck.payment-link-ready.json"),
                "/url",
                Some(json!("http://pay.example/abc")),
            ),
            "/url",
        ),
        ("an unknown type", with(&offer, "/type", Some(json!("truck.cancelled"))), "unknown notice type"),
        ("an event sent as a notice", example("bank", "loan.issued.json"), "unknown notice type"),
        ("no type", with(&offer, "/type", None), "no string `type`"),
    ];
    for (case, notice, fragment) in &cases {
        refused(validate_notice(notice), case, fragment);
    }
    println!("{} broken notices refused", cases.len());
}

fn products_page() -> Value {
    json!({
        "customerId": "CUST-19091",
        "loans": [{"loanNumber": "LN-19091", "sum": "500000", "termMonths": 12, "startDate": "2023-10-27",
                   "insuranceStatus": "issued",
                   "creditLife": {"policyId": "100002", "policyNumber": "CL-00000002", "numberPending": false,
                                  "premium": "3000.00", "sumInsured": "500000", "risks": ["death", "disability"],
                                  "status": "issued", "printLink": "http://127.0.0.1:4020/print/100002.pdf",
                                  "printFormPending": null}},
                  {"loanNumber": "LN-2", "sum": "1000", "termMonths": 6, "startDate": "2023-10-27",
                   "insuranceStatus": "needs-review", "creditLife": null}],
        "truckPolicies": [{"processId": "REQ-19091", "status": "issued", "insurer": "renaissance", "premium": 17847.29,
                           "policyNumber": "XXX 5425779624",
                           "documents": [{"url": "http://127.0.0.1:5000/archive/p.pdf?X-Amz-Signature=ab", "expiresInSeconds": 300,
                                          "sha256": "cf3c3be70eddc504cd651d9b466e4616d16c50f6ddf24ea45a5839dd91fe8277",
                                          "contentType": "application/pdf"}],
                           "pendingFiles": [], "drafts": []}],
        "nextToken": null
    })
}

#[test]
fn documented_answers_pass_and_others_are_refused() {
    let hook = "/api/hooks/3fa85f64-5717-4562-b3fc-2c963f66afa6/approved";
    let by_path = "/h/local-path-token-new-0123456789abcdef/api/hooks/sc-1/documents/types-required";
    let products = "/api/customers/CUST-19091/products";
    let paged = format!("{products}?limit=2&nextToken=abc");
    let (license, tariff) = ("/api/trucks/license-category", "/api/trucks/tariff");
    let body = |v: Value| v.to_string().into_bytes();
    let good: Vec<(&str, &str, u16, Vec<u8>)> = vec![
        ("POST", hook, 200, body(json!({"status": "accepted", "hookId": "a".repeat(64)}))),
        ("POST", hook, 200, body(json!({"status": "duplicate", "hookId": "msg_2Lh"}))),
        (
            "POST",
            by_path,
            200,
            body(json!({"status": "quarantined", "reason": "field insuranceCompany: missing"})),
        ),
        ("POST", "/api/hooks/{scoringId}/approved", 401, body(json!({"error": "unauthorized"}))),
        (
            "POST",
            hook,
            200,
            body(
                json!({"status": "quarantined", "reason": "its webhook-id was first used for another scoringId or hook"}),
            ),
        ),
        // API Gateway's own answers, on any path: a path it routes nowhere, a body over 10 MB.
        ("POST", "/api/hooks/%2e%2e/started", 404, body(json!({"message": "Not Found"}))),
        ("POST", hook, 413, body(json!({"message": "Request Entity Too Large"}))),
        ("POST", hook, 503, body(json!({"error": "temporarily unavailable, retry"}))),
        ("POST", hook, 503, body(json!({"message": "Service Unavailable"}))),
        ("GET", products, 200, body(products_page())),
        ("GET", &paged, 200, body(with(&products_page(), "/nextToken", Some(json!("abc"))))),
        ("GET", products, 403, body(json!({"message": "Forbidden"}))),
        ("GET", products, 404, body(json!({"error": "no products for customer CUST-19091"}))),
        ("GET", "/api/hooks/sc-1/approved", 404, body(json!({"message": "Not Found"}))),
        ("POST", license, 200, body(json!({"licenseCategory": "C", "trailerRequired": null}))),
        (
            "POST",
            license,
            400,
            body(
                json!({"error": "vin: 17 letters or digits", "problems": [{"field": "vin", "problem": "17 letters or digits"}]}),
            ),
        ),
        (
            "POST",
            license,
            422,
            body(
                json!({"error": "MUST refused the request (HTTP 400, code 1203: vin not determined)", "mustStatus": 400,
                        "mustCode": 1203, "category": "vehicle-category", "customerText": "…", "mustMessage": "vin not determined"}),
            ),
        ),
        ("POST", license, 504, body(json!({"error": "MUST did not answer in time; retry"}))),
        (
            "POST",
            tariff,
            200,
            body(json!({"estimates": [{"insurer": "ingostrah", "premium": 17847.29}],
                        "failures": [{"insurer": "renaissance", "mustCode": 1505, "category": "ingosstrakh", "customerText": "…"}]})),
        ),
        ("POST", tariff, 502, body(json!({"error": "MUST failed to answer; retry later"}))),
        ("POST", "/api/hooks/sc-1/no-such-hook", 404, body(json!({"message": "Not Found"}))),
    ];
    for (method, path, status, answer) in &good {
        validate_answer(method, path, *status, answer)
            .unwrap_or_else(|v| panic!("{method} {path} {status}: {v}"));
    }
    let bad = [
        ("POST", hook, 200, body(json!({"status": "ok", "hookId": "x"})), "oneOf"),
        ("POST", hook, 200, body(json!({"status": "accepted", "hookId": "x", "extra": 1})), "extra"),
        ("POST", hook, 200, b"accepted".to_vec(), "not JSON"),
        ("POST", hook, 418, body(json!({"error": "teapot"})), "status 418 is not a documented answer"),
        ("POST", hook, 409, body(json!({"error": "used"})), "status 409 is not a documented answer"),
        ("POST", hook, 400, body(json!({"error": "scoringId"})), "status 400 is not a documented answer"),
        ("POST", hook, 401, body(json!({"message": "unauthorized"})), "/"),
        ("GET", products, 200, body(with(&products_page(), "/nextToken", None)), "nextToken"),
        (
            "GET",
            products,
            200,
            body(with(&products_page(), "/truckPolicies/0/status", Some(json!("paid")))),
            "/truckPolicies/0/status",
        ),
        (
            "GET",
            products,
            200,
            body(with(&products_page(), "/loans/0/creditLife/premium", Some(json!(3000)))),
            "/loans/0/creditLife/premium",
        ),
        ("GET", products, 400, body(json!({"message": "limit"})), "/"),
        ("GET", "/api/customers/x/orders", 200, body(json!({})), "no route"),
        ("POST", license, 200, body(json!({"licenseCategory": "C"})), "trailerRequired"),
        ("POST", license, 400, body(json!({"error": "vin"})), "problems"),
        (
            "POST",
            tariff,
            200,
            body(json!({"estimates": [{"insurer": "x", "premium": 0}], "failures": []})),
            "premium",
        ),
        ("GET", license, 200, body(json!({})), "no route"),
    ];
    for (method, path, status, answer, fragment) in &bad {
        refused(
            validate_answer(method, path, *status, answer),
            &format!("{method} {path} {status}"),
            fragment,
        );
    }
    println!("{} documented answers valid, {} broken ones refused", good.len(), bad.len());
}

#[test]
fn every_response_schema_of_the_openapi_file_resolves() {
    let doc: Value =
        serde_yaml::from_str(&std::fs::read_to_string(contracts_dir().join("openapi.yaml")).unwrap())
            .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut checked = 0;
    for (method, path) in operations() {
        let responses = doc["paths"][&path][method.to_lowercase()]["responses"].as_object().unwrap();
        for status in responses.keys() {
            let status: u16 = status.parse().unwrap();
            if let Err(v) = validate_answer(&method, &path, status, b"{}") {
                assert!(
                    !v.errors
                        .iter()
                        .any(|e| e.contains("does not compile") || e.contains("not in openapi.yaml")),
                    "{v}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 29 * 5, "{checked}");
}

/// (method, path, IAM-authorized) of every `HttpApi` event of template.yaml.
fn template_routes() -> BTreeSet<(String, String, bool)> {
    let text = std::fs::read_to_string(contracts_dir().join("../template.yaml")).unwrap();
    let template: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut routes = BTreeSet::new();
    for (_, resource) in template["Resources"].as_mapping().unwrap() {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else { continue };
        for (_, event) in events {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let p = &event["Properties"];
            let iam = p["Auth"]["Authorizer"].as_str() == Some("AWS_IAM");
            routes.insert((
                p["Method"].as_str().unwrap().to_owned(),
                p["Path"].as_str().unwrap().to_owned(),
                iam,
            ));
        }
    }
    routes
}

#[test]
fn every_route_of_the_template_is_in_the_openapi_file_and_nothing_else() {
    let doc: Value =
        serde_yaml::from_str(&std::fs::read_to_string(contracts_dir().join("openapi.yaml")).unwrap())
            .unwrap();
    let documented: BTreeSet<(String, String, bool)> = operations()
        .into_iter()
        .map(|(method, path)| {
            let security = &doc["paths"][&path][method.to_lowercase()]["security"];
            let iam = security.as_array().is_some_and(|s| s.iter().any(|r| r.get("sigv4").is_some()));
            (method, path, iam)
        })
        .collect();
    let routes = template_routes();
    assert_eq!(
        routes.len(),
        31,
        "14 hooks twice (plain and by secret path), My products and MUST's two helpers: {routes:?}"
    );
    assert_eq!(
        routes.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String, bool)>::new(),
        "routes of template.yaml missing from openapi.yaml (or with another authorization)"
    );
    assert_eq!(
        documented.difference(&routes).collect::<Vec<_>>(),
        Vec::<&(String, String, bool)>::new(),
        "operations of openapi.yaml that template.yaml does not route"
    );
}

#[test]
fn the_asyncapi_document_ties_every_kind_to_its_queue_and_schema() {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(contracts_dir().join("asyncapi.yaml")).unwrap())
            .unwrap();
    assert_eq!(doc["asyncapi"].as_str(), Some("3.0.0"));
    for (channel, umbrella) in
        [("bankEvents", "bank-event.schema.json"), ("bankNotifications", "notice.schema.json")]
    {
        let mut named = BTreeSet::new();
        for (_, message) in doc["channels"][channel]["messages"].as_mapping().unwrap() {
            let reference = message["$ref"].as_str().unwrap();
            let id = reference.strip_prefix("#/components/messages/").unwrap();
            let message = &doc["components"]["messages"][id];
            let kind = message["name"].as_str().unwrap().to_owned();
            let schema = message["payload"]["schema"]["$ref"].as_str().unwrap();
            assert_eq!(schema, format!("schemas/{kind}.schema.json"), "{id}");
            assert!(contracts_dir().join(schema).is_file(), "{schema}");
            named.insert(kind);
        }
        assert_eq!(named, kinds(umbrella), "{channel}");
    }
}

/// The bank's choice of insurer: the walk-through in `shared/examples/bank/choice-by-bank/`
/// holds, and its broken forms are refused.
#[test]
fn the_banks_choice_examples_validate_and_their_broken_forms_are_refused() {
    let files = json_files(&examples_dir().join("bank/choice-by-bank"));
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["truck.insurer-chosen.json", "truck.policy-requested.json"]);
    for (name, event) in &files {
        validate_event(event).unwrap_or_else(|v| panic!("bank/choice-by-bank/{name}: {v}"));
        assert_eq!(format!("{}.json", event["type"].as_str().unwrap()), *name);
    }
    let request = example("bank/choice-by-bank", "truck.policy-requested.json");
    assert_eq!(request["choice"], json!("bank"));
    let chosen = example("bank", "truck.insurer-chosen.json");
    let cases = [
        (
            "the bank's choice with a preferred insurer",
            with(&request, "/payment/preferredInsurer", Some(json!("ingostrah"))),
            "payment",
        ),
        ("an unknown choice", with(&request, "/choice", Some(json!("insurer"))), "/choice"),
        ("a choice naming no insurer", with(&chosen, "/insurer", None), "insurer"),
        ("an insurer code in capitals", with(&chosen, "/insurer", Some(json!("INGOSTRAH"))), "/insurer"),
        ("an unknown payment method", with(&chosen, "/paymentMethod", Some(json!("cash"))), "/paymentMethod"),
        ("a choice for no request", with(&chosen, "/requestId", None), "requestId"),
    ];
    for (case, event, fragment) in cases {
        refused(validate_event(&event), case, fragment);
    }
    let reminder = example("notifications", "truck.choice-reminder.json");
    refused(
        validate_notice(&with(&reminder, "/offers", Some(json!([])))),
        "a reminder of no offers",
        "/offers",
    );
    refused(
        validate_notice(&with(&reminder, "/offers/0/outcome", Some(json!("approved")))),
        "an offer with a field the contract does not name",
        "/offers/0",
    );
}
