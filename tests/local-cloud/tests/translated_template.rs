//! The deployment's rehearsal without AWS: `template.yaml` goes through AWS's own SAM
//! translator (`scripts/translate-template.py`, the `aws-sam-translator` package in `.venv`
//! that `sam deploy` uses), and the CloudFormation it makes must be what the local cloud
//! runs: the same functions (binary, environment, timeout), each with a role of its own whose
//! statements are those the local cloud reads for it, each SQS event source mapping with the
//! local poller's queue, batch size, `ReportBatchItemFailures`, batching window and maximum
//! concurrency, and each HTTP API route (method and path to the function, with its
//! authorizer) that the local gateway serves, with the permission API Gateway needs to call it.
//! Besides the agreement, what the code relies on is pinned: every SQS handler answers with
//! `batchItemFailures`, the hook routes are the hook catalogue's, the bank's routes are
//! `GET /api/customers/{customerId}/products`, `POST /api/trucks/license-category` and
//! `POST /api/trucks/tariff`, each with IAM auth.
//!
//! `POLIS_TEMPLATE=/path/to/copy.yaml` rehearses another template (to see a broken copy fail).
//! Without `.venv` (`make deps` makes it) the test fails; it never skips.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use polis::domain::must::hook::HookKind;
use polis_local_cloud::template::{EventSource, FunctionDef, Template};
use serde_json::{json, Value};

const BASIC_EXECUTION: &str = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";
const XRAY_WRITE: &str = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess";
const SQS_EXECUTION: &str = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Rehearsal {
    /// The SAM template, as the local cloud reads it.
    sam: Template,
    /// The translator's CloudFormation, read by the local cloud's reader.
    cfn: Template,
    /// The translator's CloudFormation as it is.
    raw: Value,
}

impl Rehearsal {
    fn resource(&self, id: &str) -> &Value {
        self.raw["Resources"].get(id).unwrap_or_else(|| panic!("no {id} in the translated template"))
    }

    fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.raw["Resources"].as_object().unwrap().iter().filter(move |(_, r)| r["Type"] == json!(kind))
    }

    fn sam_functions(&self) -> Vec<FunctionDef> {
        self.sam.functions().expect("the local cloud reads the SAM template")
    }
}

fn rehearsal() -> &'static Rehearsal {
    static REHEARSAL: OnceLock<Rehearsal> = OnceLock::new();
    REHEARSAL.get_or_init(|| {
        let template = std::env::var_os("POLIS_TEMPLATE").map(PathBuf::from).unwrap_or(root().join("template.yaml"));
        let python = root().join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run `make deps` (its venv has aws-sam-translator); this test needs the SAM translator",
            python.display()
        );
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("template-{}.cfn.json", std::process::id()));
        let run = Command::new(&python)
            .arg(root().join("scripts/translate-template.py"))
            .arg(&template)
            .arg("-o")
            .arg(&out)
            .output()
            .expect("runs the translator");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            run.status.success(),
            "the SAM translator failed on {}{}:\n{stderr}",
            template.display(),
            if stderr.contains("No module named") { " (run `make deps`: PY_DEPS has aws-sam-translator)" } else { "" }
        );
        let raw: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let cfn = Template::load(&out).expect("the local cloud reads the translated template");
        let _ = std::fs::remove_file(&out);
        let sam = Template::load(&template).expect("the local cloud reads the SAM template");
        Rehearsal { sam, cfn, raw }
    })
}

/// The alias `live` through which every event reaches `function` (`AutoPublishAlias`).
fn alias(function: &str) -> String {
    format!("{function}Aliaslive")
}

fn sorted(mut items: Vec<Value>) -> Vec<Value> {
    items.sort_by_key(Value::to_string);
    items
}

fn sorted_events(f: &FunctionDef) -> Vec<EventSource> {
    let mut events = f.events.clone();
    events.sort_by_key(|e| format!("{e:?}"));
    events
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

#[test]
fn the_translator_makes_one_lambda_function_of_each_function_the_local_cloud_runs() {
    let r = rehearsal();
    assert!(r.cfn.is_translated(), "AWS::Serverless::* left after the transform");
    let local: BTreeSet<String> = r.sam_functions().into_iter().map(|f| f.logical_id).collect();
    let deployed: BTreeSet<String> = r.of_type("AWS::Lambda::Function").map(|(id, _)| id.clone()).collect();
    assert!(!local.is_empty());
    assert_eq!(local, deployed, "the functions AWS would deploy are not those the local cloud runs");
}

#[test]
fn each_function_runs_locally_as_aws_would_run_it() {
    let r = rehearsal();
    let deployed: BTreeMap<String, FunctionDef> = r
        .cfn
        .functions()
        .expect("the local cloud reads the translated template")
        .into_iter()
        .map(|f| (f.logical_id.clone(), f))
        .collect();
    for local in r.sam_functions() {
        let id = &local.logical_id;
        let aws = deployed.get(id).unwrap_or_else(|| panic!("{id} is not deployed"));
        assert_eq!(local.binary, aws.binary, "{id}: binary");
        assert_eq!(local.environment, aws.environment, "{id}: environment");
        assert_eq!(local.timeout_seconds, aws.timeout_seconds, "{id}: timeout");
        assert_eq!(sorted_events(&local), sorted_events(aws), "{id}: the events that invoke it");
    }
}

#[test]
fn each_function_has_its_own_role_with_the_statements_the_local_cloud_reads() {
    let r = rehearsal();
    let mut roles = BTreeSet::new();
    for f in r.sam_functions() {
        let id = &f.logical_id;
        let function = r.resource(id);
        let role_id = function["Properties"]["Role"]["Fn::GetAtt"][0].as_str().unwrap_or_else(|| {
            panic!("{id}: Role is not a role of the stack: {}", function["Properties"]["Role"])
        });
        assert_eq!(function["Properties"]["Role"]["Fn::GetAtt"][1], json!("Arn"));
        assert!(roles.insert(role_id.to_owned()), "{id} shares its role {role_id} with another function");
        let role = r.resource(role_id);
        assert_eq!(role["Type"], json!("AWS::IAM::Role"), "{id}: {role_id}");
        let assume = list(&role["Properties"]["AssumeRolePolicyDocument"]["Statement"]);
        assert!(
            assume.iter().any(|s| s["Effect"] == json!("Allow")
                && list(&s["Action"]).contains(&json!("sts:AssumeRole"))
                && list(&s["Principal"]["Service"]).contains(&json!("lambda.amazonaws.com"))),
            "{id}: {role_id} is not assumable by Lambda: {assume:?}"
        );

        // The role's own statements: inline policies, and the stack's managed policies it attaches.
        let mut statements: Vec<Value> = list(&role["Properties"]["Policies"])
            .iter()
            .flat_map(|p| list(&p["PolicyDocument"]["Statement"]))
            .collect();
        let mut aws_managed = BTreeSet::new();
        for arn in list(&role["Properties"]["ManagedPolicyArns"]) {
            match (arn.as_str(), arn["Ref"].as_str()) {
                (Some(arn), _) => {
                    aws_managed.insert(arn.to_owned());
                }
                (_, Some(policy)) => {
                    let p = r.resource(policy);
                    assert_eq!(p["Type"], json!("AWS::IAM::ManagedPolicy"), "{id}: {policy}");
                    statements.extend(list(&p["Properties"]["PolicyDocument"]["Statement"]));
                }
                _ => panic!("{id}: {role_id} attaches {arn}, which the local cloud does not model"),
            }
        }
        let local = r.sam.policy_statements(id);
        assert!(!local.is_empty(), "{id}: no statements in the template");
        let actions = |ss: &[Value]| -> BTreeSet<String> {
            ss.iter()
                .flat_map(|s| list(&s["Action"]))
                .map(|a| a.as_str().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(actions(&statements), actions(&local), "{id}: the deployed role's actions");
        assert_eq!(
            sorted(statements.clone()),
            sorted(local.clone()),
            "{id}: the deployed role's statements are not those the local cloud reads"
        );
        assert_eq!(sorted(r.cfn.policy_statements(id)), sorted(local.clone()), "{id}: local reader");

        // AWS's managed policies: logs, traces, and for a queue's consumer what its poller does.
        let mut expected = BTreeSet::from([BASIC_EXECUTION.to_owned()]);
        if function["Properties"]["TracingConfig"]["Mode"] == json!("Active") {
            expected.insert(XRAY_WRITE.to_owned());
        }
        if f.events.iter().any(|e| matches!(e, EventSource::Sqs { .. })) {
            expected.insert(SQS_EXECUTION.to_owned());
        }
        assert_eq!(aws_managed, expected, "{id}: AWS managed policies of {role_id}");
    }
}

#[test]
fn each_queue_mapping_is_what_the_local_poller_does() {
    let r = rehearsal();
    let mappings: Vec<(&String, &Value)> = r.of_type("AWS::Lambda::EventSourceMapping").collect();
    let mut local_sources = 0;
    for f in r.sam_functions() {
        let id = &f.logical_id;
        for e in &f.events {
            let EventSource::Sqs {
                queue,
                batch_size,
                report_batch_item_failures,
                maximum_batching_window_seconds,
                maximum_concurrency,
            } = e
            else {
                continue;
            };
            local_sources += 1;
            // Every SQS handler goes through lambda-glue's `sqs_batch`, which answers with the
            // failed messages: without the flag AWS would delete them with the batch.
            assert!(
                report_batch_item_failures,
                "{id} <- {queue}: the handler reports batch item failures; FunctionResponseTypes must hold ReportBatchItemFailures"
            );
            let found: Vec<_> = mappings
                .iter()
                .filter(|(_, m)| {
                    m["Properties"]["FunctionName"] == json!({"Ref": alias(id)})
                        && m["Properties"]["EventSourceArn"] == json!({"Fn::GetAtt": [queue, "Arn"]})
                })
                .collect();
            assert_eq!(found.len(), 1, "{id} <- {queue}: event source mappings {found:?}");
            let (mapping_id, m) = found[0];
            let p = &m["Properties"];
            assert_eq!(
                p["BatchSize"].as_u64().unwrap_or(10) as usize,
                *batch_size,
                "{mapping_id}: BatchSize"
            );
            assert_eq!(
                list(&p["FunctionResponseTypes"]).contains(&json!("ReportBatchItemFailures")),
                *report_batch_item_failures,
                "{mapping_id}: ReportBatchItemFailures"
            );
            assert_eq!(
                p["MaximumBatchingWindowInSeconds"].as_u64().unwrap_or(0),
                *maximum_batching_window_seconds,
                "{mapping_id}: MaximumBatchingWindowInSeconds"
            );
            assert_eq!(
                p["ScalingConfig"].get("MaximumConcurrency"),
                maximum_concurrency.as_ref(),
                "{mapping_id}: ScalingConfig.MaximumConcurrency"
            );
            assert_ne!(p["Enabled"], json!(false), "{mapping_id} is disabled");
            // A consumer with reserved concurrency: its poller never asks for more (else Lambda
            // throttles the extra invocations and their messages go round to the dead-letter queue).
            if let Some(reserved) = r.resource(id)["Properties"].get("ReservedConcurrentExecutions") {
                assert_eq!(
                    p["ScalingConfig"].get("MaximumConcurrency"),
                    Some(reserved),
                    "{mapping_id}: ScalingConfig.MaximumConcurrency must be {id}'s reserved concurrency"
                );
            }
        }
    }
    assert!(local_sources > 0);
    assert_eq!(mappings.len(), local_sources, "event source mappings the local cloud does not poll");
}

/// (API, METHOD, path, function, IAM-authorized)
type RouteKey = (String, String, String, String, bool);

#[test]
fn each_route_and_authorizer_is_what_the_local_gateway_serves() {
    let r = rehearsal();
    let functions = r.sam_functions();
    let mut local: BTreeSet<RouteKey> = BTreeSet::new();
    for f in &functions {
        for e in &f.events {
            if let EventSource::Http { api, method, path, iam } = e {
                let path =
                    path.as_str().unwrap_or_else(|| panic!("{}: path {path} is not literal", f.logical_id));
                local.insert((api.clone(), method.clone(), path.to_owned(), f.logical_id.clone(), *iam));
            }
        }
    }

    // What API Gateway would route, read from each API's OpenAPI body.
    let mut deployed: BTreeSet<RouteKey> = BTreeSet::new();
    for (api, def) in r.of_type("AWS::ApiGatewayV2::Api") {
        let body = &def["Properties"]["Body"];
        let api_security = body.get("security");
        for (path, operations) in body["paths"].as_object().into_iter().flatten() {
            for (method, op) in operations.as_object().into_iter().flatten() {
                let integration = &op["x-amazon-apigateway-integration"];
                assert_eq!(integration["type"], json!("aws_proxy"), "{api} {method} {path}");
                assert_eq!(
                    integration["payloadFormatVersion"],
                    json!("2.0"),
                    "{api} {method} {path}: payload 2.0"
                );
                let uri = integration["uri"]["Fn::Sub"].as_str().unwrap_or_default();
                let function = uri
                    .split_once("/functions/${")
                    .and_then(|(_, rest)| rest.strip_suffix("Aliaslive}/invocations"))
                    .unwrap_or_else(|| panic!("{api} {method} {path}: integration {uri}"));
                let security = op.get("security").or(api_security).map(list).unwrap_or_default();
                let iam = match security.as_slice() {
                    // `Auth.Authorizer: NONE` on a route of an API with a default authorizer.
                    [] => false,
                    [only] if only.as_object().is_some_and(|o| o.len() == 1 && o.contains_key("NONE")) => {
                        false
                    }
                    [only] if only.as_object().is_some_and(|o| o.len() == 1 && o.contains_key("AWS_IAM")) => {
                        true
                    }
                    other => panic!(
                        "{api} {method} {path}: an authorizer the local gateway does not run: {other:?}"
                    ),
                };
                deployed.insert((api.clone(), method.to_uppercase(), path.clone(), function.to_owned(), iam));
            }
        }
        if !deployed.iter().any(|(a, ..)| a == api) {
            panic!("{api} has no routes");
        }
    }
    assert_eq!(
        deployed,
        local,
        "routes: only deployed {:?}; only local {:?}",
        deployed.difference(&local).collect::<Vec<_>>(),
        local.difference(&deployed).collect::<Vec<_>>()
    );

    // API Gateway may call each route's function.
    for (api, method, path, function, _) in &deployed {
        let source = format!("/${{__Stage__}}/{method}{}", star_params(path));
        let allowed = r.of_type("AWS::Lambda::Permission").any(|(_, p)| {
            let p = &p["Properties"];
            p["FunctionName"] == json!({"Ref": alias(function)})
                && p["Action"] == json!("lambda:InvokeFunction")
                && p["Principal"] == json!("apigateway.amazonaws.com")
                && p["SourceArn"]["Fn::Sub"][1]["__ApiId__"] == json!({"Ref": api})
                && p["SourceArn"]["Fn::Sub"][0].as_str().is_some_and(|s| s.ends_with(&source))
        });
        assert!(allowed, "{api} {method} {path}: no permission for API Gateway to invoke {function}");
    }

    // What the code relies on: the hook catalogue's paths, unauthenticated at the gateway (MUST
    // cannot sign; the hook function checks its secret), each by the function told its hook;
    // and the bank's routes, SigV4-signed.
    let hook_path = |f: &str| -> Value {
        functions
            .iter()
            .find(|d| d.logical_id == f)
            .map(|d| d.environment["HOOK_PATH"].clone())
            .unwrap_or_default()
    };
    let mut expected_hooks = BTreeSet::new();
    for kind in HookKind::ALL {
        for prefix in ["", "/h/{hookToken}"] {
            let path = format!("{prefix}/api/hooks/{{scoringId}}/{}", kind.path());
            let serving: Vec<_> = deployed.iter().filter(|(_, _, p, ..)| *p == path).collect();
            assert_eq!(serving.len(), 1, "{path}: routes {serving:?}");
            let (api, method, _, function, iam) = serving[0];
            assert_eq!((api.as_str(), method.as_str(), *iam), ("HttpApi", "POST", false), "{path}");
            assert_eq!(hook_path(function), json!(kind.path()), "{path} goes to {function}");
            expected_hooks.insert(path);
        }
    }
    let bank: Vec<_> = deployed.iter().filter(|(api, ..)| api == "BankApi").collect();
    let route = |method: &str, path: &str, function: &str| {
        ("BankApi".to_owned(), method.to_owned(), path.to_owned(), function.to_owned(), true)
    };
    assert_eq!(
        bank,
        [
            &route("GET", "/api/customers/{customerId}/products", "ProductsApiFunction"),
            &route("POST", "/api/trucks/license-category", "TruckHelpersFunction"),
            &route("POST", "/api/trucks/tariff", "TruckHelpersFunction"),
        ],
        "the bank's API: My products and MUST's two helpers, each SigV4-signed"
    );
    let other: Vec<_> =
        deployed.iter().filter(|(api, _, p, ..)| api != "BankApi" && !expected_hooks.contains(p)).collect();
    assert!(other.is_empty(), "routes outside the hook catalogue and the bank's API: {other:?}");
}

/// `/a/{x}/b` as API Gateway's source ARN writes it: `/a/*/b`.
fn star_params(path: &str) -> String {
    path.split('/').map(|s| if s.starts_with('{') { "*" } else { s }).collect::<Vec<_>>().join("/")
}

#[test]
fn each_schedule_is_an_eventbridge_rule_that_may_invoke_its_function_at_the_rate_the_local_cloud_runs() {
    let r = rehearsal();
    let mut schedules = 0;
    for f in r.sam_functions() {
        let id = &f.logical_id;
        for e in &f.events {
            let EventSource::Schedule { expression } = e else { continue };
            schedules += 1;
            let rules: Vec<(&String, &Value)> = r
                .of_type("AWS::Events::Rule")
                .filter(|(_, rule)| {
                    list(&rule["Properties"]["Targets"]).iter().any(|t| t["Arn"] == json!({"Ref": alias(id)}))
                })
                .collect();
            assert_eq!(rules.len(), 1, "{id}: schedule rules {rules:?}");
            let (rule_id, rule) = rules[0];
            assert_eq!(&rule["Properties"]["ScheduleExpression"], expression, "{rule_id}: its rate");
            assert_ne!(rule["Properties"]["State"], json!("DISABLED"), "{rule_id} is disabled");
            let allowed = r.of_type("AWS::Lambda::Permission").any(|(_, p)| {
                let p = &p["Properties"];
                p["FunctionName"] == json!({"Ref": alias(id)})
                    && p["Action"] == json!("lambda:InvokeFunction")
                    && p["Principal"] == json!("events.amazonaws.com")
                    && p["SourceArn"] == json!({"Fn::GetAtt": [rule_id, "Arn"]})
            });
            assert!(allowed, "{rule_id}: no permission for EventBridge to invoke {id}");
        }
    }
    assert!(schedules > 0, "the watchdog runs on a schedule");
    assert_eq!(r.of_type("AWS::Events::Rule").count(), schedules, "rules the local cloud does not run");
}

/// What `Key` of a resource's properties `Ref`s, if it does.
/// The key a property names: the stack's own (`!If [condition, <the stack's key>, !Ref <the bank's ARN>]`),
/// created unless the bank passes its own ARN.
fn stack_key<'a>(value: &'a Value, condition: &str) -> Option<&'a str> {
    let choice = value.get("Fn::If")?.as_array()?;
    if choice.first()? != &json!(condition) {
        return None;
    }
    let ours = &choice[1];
    ref_of(ours).or_else(|| {
        let att = ours.get("Fn::GetAtt")?.as_array()?;
        (att.get(1)? == &json!("Arn")).then(|| att.first()?.as_str())?
    })
}

fn ref_of(value: &Value) -> Option<&str> {
    value.get("Ref").and_then(Value::as_str)
}

#[test]
fn every_alarm_reaches_a_topic_whose_key_lets_cloudwatch_publish() {
    let r = rehearsal();
    let alarms: Vec<(&String, &Value)> = r.of_type("AWS::CloudWatch::Alarm").collect();
    assert!(alarms.len() > 20, "the alarms: {}", alarms.len());
    let mut topics = BTreeSet::new();
    for (id, alarm) in &alarms {
        let actions = list(&alarm["Properties"]["AlarmActions"]);
        let ours: Vec<&str> = actions.iter().filter_map(ref_of).collect();
        assert_eq!(ours.len(), 1, "{id}: alarm actions {actions:?}");
        topics.insert(ours[0].to_owned());
        // The bank's own topic too, when given (OnCallTopicArn), and nothing else.
        let others: Vec<&Value> = actions.iter().filter(|a| ref_of(a).is_none()).collect();
        for other in others {
            assert_eq!(
                other,
                &json!({"Fn::If": ["HasOnCallTopic", {"Ref": "OnCallTopicArn"}, {"Ref": "AWS::NoValue"}]}),
                "{id}"
            );
        }
    }
    for topic in &topics {
        let t = r.resource(topic);
        assert_eq!(t["Type"], json!("AWS::SNS::Topic"), "{topic}");
        let key_id = stack_key(&t["Properties"]["KmsMasterKeyId"], "CreateLogsKey")
            .unwrap_or_else(|| panic!("{topic} is not encrypted with a key of the stack's: {t}"));
        let key = r.resource(key_id);
        assert_eq!(key["Type"], json!("AWS::KMS::Key"), "{key_id}");
        let cloudwatch_may_publish = list(&key["Properties"]["KeyPolicy"]["Statement"]).iter().any(|s| {
            let actions = list(&s["Action"]);
            s["Effect"] == json!("Allow")
                && list(&s["Principal"]["Service"]).contains(&json!("cloudwatch.amazonaws.com"))
                && actions.contains(&json!("kms:Decrypt"))
                && actions.contains(&json!("kms:GenerateDataKey*"))
        });
        assert!(cloudwatch_may_publish, "{key_id}'s policy does not let CloudWatch publish to {topic}");
    }
    // The alarms an on-call engineer relies on besides the generated ones.
    let metrics: Vec<String> = alarms
        .iter()
        .flat_map(|(_, a)| {
            let p = &a["Properties"];
            let mut named = vec![p["MetricName"].as_str().unwrap_or_default().to_owned()];
            for m in list(&p["Metrics"]) {
                named.push(m["MetricStat"]["Metric"]["MetricName"].as_str().unwrap_or_default().to_owned());
            }
            named
        })
        .collect();
    for metric in ["4xx", "5xx", "ApproximateAgeOfOldestMessage", "Quarantined", "StuckProcesses"] {
        assert!(metrics.iter().any(|m| m == metric), "no alarm on {metric}");
    }
    let notices_age = alarms.iter().any(|(_, a)| {
        a["Properties"]["MetricName"] == json!("ApproximateAgeOfOldestMessage")
            && list(&a["Properties"]["Dimensions"])
                .iter()
                .any(|d| d["Value"] == json!({"Fn::GetAtt": ["BankNotificationsQueue", "QueueName"]}))
    });
    assert!(notices_age, "no alarm on the age of the bank's notices");
}

/// The rehearsal of `sam deploy --config-env {env}` with `overrides` on top: the Rules'
/// failed assertions, or `Ok` when CloudFormation would go ahead.
fn deploy_rehearsal(env: &str, overrides: &str) -> Result<(), String> {
    let run = Command::new(root().join(".venv/bin/python"))
        .current_dir(root())
        .arg("scripts/translate-template.py")
        .arg("template.yaml")
        .args(["-o", "/dev/null", "--config-env", env, "--parameter-overrides", overrides])
        .output()
        .expect("runs the translator");
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    match run.status.code() {
        Some(0) => Ok(()),
        Some(2) if stderr.contains("would refuse") => Err(stderr),
        _ => panic!("the rehearsal of {env} did not run: {stderr}"),
    }
}

#[test]
fn prod_is_refused_without_an_on_call_destination_musts_networks_and_payment_hosts() {
    let refused =
        deploy_rehearsal("prod", "").expect_err("prod as samconfig.toml has it names no on-call destination");
    for rule in ["ProdAlarmsReachSomeone", "ProdHooksOnlyFromMust", "ProdPaymentLinksOnlyToInsurers"] {
        assert!(refused.contains(rule), "{rule} not reported: {refused}");
    }
    let networks = "HookSourceNetworks=203.0.113.0/24 PaymentLinkHosts=pay.insurer.example";
    let without_on_call = deploy_rehearsal("prod", networks).expect_err("still no on-call destination");
    assert!(without_on_call.contains("ProdAlarmsReachSomeone"), "{without_on_call}");
    assert!(!without_on_call.contains("ProdHooksOnlyFromMust"), "{without_on_call}");
    for destination in
        ["AlarmEmail=oncall@bank.example", "OnCallTopicArn=arn:aws:sns:eu-central-1:123456789012:oncall"]
    {
        assert_eq!(deploy_rehearsal("prod", &format!("{networks} {destination}")), Ok(()), "{destination}");
    }
    assert_eq!(deploy_rehearsal("dev", ""), Ok(()), "dev deploys without them");
}

/// The statements of a key's policy that allow more than administration: using the key, or granting its use.
fn use_statements(key: &Value) -> Vec<Value> {
    list(&key["Properties"]["KeyPolicy"]["Statement"])
        .into_iter()
        .filter(|s| {
            list(&s["Action"]).iter().filter_map(Value::as_str).any(|a| {
                ["kms:*", "kms:Create*"].contains(&a)
                    || ["Decrypt", "Encrypt", "GenerateDataKey", "ReEncrypt", "CreateGrant"]
                        .iter()
                        .any(|u| a.contains(u))
            })
        })
        .collect()
}

#[test]
fn every_store_of_data_and_every_log_is_encrypted_with_a_customer_managed_key_only_its_users_can_use() {
    let r = rehearsal();
    let data = |v: &Value, what: &str| {
        assert_eq!(stack_key(v, "CreateDataKey"), Some("DataKey"), "{what} is not under the data key: {v}");
    };
    let table = &r.resource("Table")["Properties"];
    assert_eq!(table["SSESpecification"]["SSEType"], json!("KMS"));
    data(&table["SSESpecification"]["KMSMasterKeyId"], "the table");
    let queues: Vec<_> = r.of_type("AWS::SQS::Queue").collect();
    assert_eq!(queues.len(), 7, "the queues and their dead letters");
    for (id, q) in queues {
        data(&q["Properties"]["KmsMasterKeyId"], id);
    }
    for bucket in ["DocumentsBucket", "ArchiveBucket"] {
        let rule =
            &r.resource(bucket)["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
        assert_eq!(rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"], json!("aws:kms"), "{bucket}");
        assert_eq!(rule["BucketKeyEnabled"], json!(true), "{bucket}");
        data(&rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"], bucket);
    }
    let log_groups: Vec<_> = r.of_type("AWS::Logs::LogGroup").collect();
    assert_eq!(log_groups.len(), 23, "a group per function and per API");
    for (id, g) in log_groups {
        assert_eq!(stack_key(&g["Properties"]["KmsKeyId"], "CreateLogsKey"), Some("LogsKey"), "{id}");
    }

    // No key lets the account as a whole use it: each use is tied to a service or to roles.
    for (id, key) in r.of_type("AWS::KMS::Key") {
        for s in use_statements(key) {
            let conditioned = s.get("Condition").is_some_and(|c| !c.as_object().unwrap().is_empty());
            let service = s["Principal"].get("Service").is_some();
            assert!(conditioned || service, "{id} lets its principal use it unconditioned: {s}");
            assert!(!list(&s["Action"]).contains(&json!("kms:*")), "{id}: {s}");
        }
    }
    // Partner tokens: only the roles under the partner-calls path open them, and only the
    // functions that call MUST or BIMA have that path and the policy that uses the key.
    let tokens = use_statements(r.resource("TokensKey"));
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(
        tokens[0]["Condition"]["ArnLike"]["aws:PrincipalArn"],
        json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/polis/${AWS::StackName}/partner-calls/*"})
    );
    let mut partner_callers = Vec::new();
    for (id, role) in r.of_type("AWS::IAM::Role") {
        if id == "CodeDeployServiceRole" {
            continue;
        }
        let path =
            role["Properties"]["Path"]["Fn::Sub"].as_str().unwrap_or_else(|| panic!("{id} has no path"));
        let managed = list(&role["Properties"]["ManagedPolicyArns"]);
        let uses_tokens = managed.contains(&json!({"Ref": "TokensKeyUsePolicy"}));
        assert_eq!(path.ends_with("/partner-calls/"), uses_tokens, "{id}: path {path}");
        assert!(path.starts_with("/polis/${AWS::StackName}/"), "{id}: path {path}");
        if uses_tokens {
            partner_callers.push(id.trim_end_matches("Role").to_owned());
        }
    }
    partner_callers.sort();
    assert_eq!(partner_callers, ["LoanRunnerFunction", "TruckHelpersFunction", "TruckRunnerFunction"]);
}

#[test]
fn archived_policies_are_write_once_for_their_retention_and_every_access_is_logged() {
    let r = rehearsal();
    let archive = &r.resource("ArchiveBucket")["Properties"];
    assert_eq!(archive["VersioningConfiguration"]["Status"], json!("Enabled"));
    assert_eq!(archive["ObjectLockEnabled"], json!(true));
    let retention = &archive["ObjectLockConfiguration"]["Rule"]["DefaultRetention"];
    assert_eq!(retention["Mode"], json!({"Ref": "ArchiveLockMode"}));
    assert_eq!(retention["Years"], json!({"Ref": "PolicyRetentionYears"}));
    let params = &r.raw["Parameters"];
    assert_eq!(params["ArchiveLockMode"]["Default"], json!("COMPLIANCE"));
    assert_eq!(params["PolicyRetentionYears"]["Default"], json!(5));
    for rule in list(&archive["LifecycleConfiguration"]["Rules"]) {
        for deletes in [
            "ExpirationInDays",
            "ExpirationDate",
            "NoncurrentVersionExpiration",
            "NoncurrentVersionExpirationInDays",
        ] {
            assert!(rule.get(deletes).is_none(), "an archive lifecycle rule deletes versions: {rule}");
        }
    }
    for bucket in ["DocumentsBucket", "ArchiveBucket"] {
        let logging = &r.resource(bucket)["Properties"]["LoggingConfiguration"];
        assert_eq!(logging["DestinationBucketName"], json!({"Ref": "AccessLogsBucket"}), "{bucket}");
    }
    let table = &r.resource("Table")["Properties"];
    assert_eq!(table["DeletionProtectionEnabled"], json!(true));
    assert_eq!(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], json!(true));
    assert_eq!(r.resource("Table")["DeletionPolicy"], json!("Retain"));
}

#[test]
fn every_function_moves_to_a_new_version_gradually_through_its_alias_and_rolls_back_on_its_alarms() {
    let r = rehearsal();
    let hooks: BTreeSet<String> = HookKind::ALL.into_iter().map(xtask::hook_function_id).collect();
    let aliases: BTreeMap<String, &Value> = r
        .of_type("AWS::Lambda::Alias")
        .map(|(_, a)| (ref_of(&a["Properties"]["FunctionName"]).unwrap().to_owned(), a))
        .collect();
    let functions: Vec<&String> = r.of_type("AWS::Lambda::Function").map(|(id, _)| id).collect();
    assert_eq!(functions.len(), 21);
    for function in functions {
        let alias = aliases.get(function.as_str()).unwrap_or_else(|| panic!("{function} has no alias"));
        assert_eq!(alias["Properties"]["Name"], json!("live"), "{function}");
        let group_id = ref_of(&alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"])
            .unwrap_or_else(|| panic!("{function}'s alias is not shifted by CodeDeploy"));
        let group = &r.resource(group_id)["Properties"];
        assert_eq!(
            group["DeploymentConfigName"]["Fn::Sub"][1]["ConfigName"],
            json!("Canary10Percent5Minutes"),
            "{function}"
        );
        assert_eq!(group["AlarmConfiguration"]["Enabled"], json!(true), "{function}");
        let alarms: BTreeSet<String> = list(&group["AlarmConfiguration"]["Alarms"])
            .iter()
            .map(|a| ref_of(&a["Name"]).unwrap().to_owned())
            .collect();
        let mut expected = BTreeSet::from([format!("{function}ErrorsAlarm")]);
        if hooks.contains(function) {
            expected.insert("HookApi5xxAlarm".to_owned());
        }
        assert_eq!(alarms, expected, "{function}'s rollback alarms");
        for alarm in &alarms {
            assert_eq!(r.resource(alarm)["Type"], json!("AWS::CloudWatch::Alarm"));
        }
        assert!(
            list(&group["AutoRollbackConfiguration"]["Events"]).contains(&json!("DEPLOYMENT_STOP_ON_ALARM")),
            "{function}"
        );
    }
    // Every event reaches the alias, so the new version takes traffic only as CodeDeploy shifts it.
    for (id, mapping) in r.of_type("AWS::Lambda::EventSourceMapping") {
        let target = ref_of(&mapping["Properties"]["FunctionName"]).unwrap();
        assert!(target.ends_with("Aliaslive"), "{id} maps to {target}");
    }
    for (id, rule) in r.of_type("AWS::Events::Rule") {
        for target in list(&rule["Properties"]["Targets"]) {
            assert!(ref_of(&target["Arn"]).is_some_and(|t| t.ends_with("Aliaslive")), "{id}: {target}");
        }
    }
    for (api, def) in r.of_type("AWS::ApiGatewayV2::Api") {
        for (path, ops) in def["Properties"]["Body"]["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let uri =
                    op["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"].as_str().unwrap_or_default();
                assert!(uri.contains("Aliaslive}/invocations"), "{api} {method} {path}: {uri}");
            }
        }
    }
}
