//! The template and the code agree: every hook path has exactly one function
//! named after it, every function's binary is built by the workspace, every
//! environment variable the code reads is set (and none is set that is not
//! read), every queue a function sends to and every secret it reads is one
//! its policy allows, and queues outlast their consumers' timeouts six times.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use polis::domain::must::hook::HookKind;
use polis_local_cloud::provision::Resources;
use polis_local_cloud::template::{as_list, EventSource, Template};
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn template() -> Template {
    Template::load(&root().join("template.yaml")).expect("template.yaml loads")
}

/// Parameters at their defaults, for resolving `!Sub` in paths.
fn defaults(t: &Template) -> Resources {
    let parameters = t.parameters.iter().map(|(k, v)| (k.clone(), v.clone().unwrap_or_default())).collect();
    Resources { parameters, region: "eu-central-1".into(), ..Resources::default() }
}

/// Every bin target in the workspace, with the source files that make it up
/// (its own file and, for a package with a library, the library's files).
fn workspace_binaries() -> BTreeMap<String, Vec<PathBuf>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON");
    let mut bins = BTreeMap::new();
    for package in meta["packages"].as_array().unwrap() {
        let targets = package["targets"].as_array().unwrap();
        let lib_dir = targets
            .iter()
            .find(|t| t["kind"].as_array().unwrap().contains(&json!("lib")))
            .map(|t| Path::new(t["src_path"].as_str().unwrap()).parent().unwrap().to_path_buf());
        for t in targets.iter().filter(|t| t["kind"].as_array().unwrap().contains(&json!("bin"))) {
            let mut files = vec![PathBuf::from(t["src_path"].as_str().unwrap())];
            if let Some(dir) = &lib_dir {
                files.push(dir.join("lib.rs"));
            }
            bins.insert(t["name"].as_str().unwrap().to_owned(), files);
        }
    }
    bins
}

/// Names passed to `var("…")`, `number("…", …)` or `list("…")` in `text`.
fn names_read(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for marker in ["var(\"", "number(\"", "list(\"", "flag(\"", "choice(\""] {
        for (at, _) in text.match_indices(marker) {
            let rest = &text[at + marker.len()..];
            if let Some(end) = rest.find('"') {
                names.insert(rest[..end].to_owned());
            }
        }
    }
    names
}

/// The variables a source file reads: by name, and through the library's `config::table`, those that
/// function reads (its body in `shared/src/adapters/config.rs`).
fn variables_read(files: &[PathBuf]) -> BTreeSet<String> {
    let config = std::fs::read_to_string(root().join("shared/src/adapters/config.rs")).expect("config.rs");
    let table = config
        .split_once("pub fn table(")
        .and_then(|(_, rest)| rest.split_once("\n}\n"))
        .expect("config::table")
        .0;
    let mut names = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        names.extend(names_read(&text));
        if text.contains("config::table(") {
            names.extend(names_read(table));
        }
    }
    names
}

fn allows(statements: &[Value], action: &str, resource: &Value) -> bool {
    statements
        .iter()
        .any(|s| as_list(&s["Action"]).contains(&json!(action)) && as_list(&s["Resource"]).contains(resource))
}

fn is_type(t: &Template, logical_id: &str, kind: &str) -> bool {
    t.resources.get(logical_id).and_then(|r| r["Type"].as_str()) == Some(kind)
}

#[test]
fn every_hook_path_has_exactly_one_function_named_after_it() {
    let t = template();
    let resources = defaults(&t);
    let functions = t.functions().unwrap();
    let mut routes = Vec::new();
    for f in &functions {
        for e in &f.events {
            if let EventSource::Http { method, path, .. } = e {
                routes.push((method.clone(), resources.resolve(path).unwrap(), f));
            }
        }
    }
    for kind in HookKind::ALL {
        let path = format!("/api/hooks/{{scoringId}}/{}", kind.path());
        let serving: Vec<_> = routes.iter().filter(|(_, p, _)| *p == path).collect();
        assert_eq!(serving.len(), 1, "{path} must have exactly one function: {serving:?}");
        let (method, _, function) = serving[0];
        assert_eq!(method, "POST");
        assert_eq!(function.logical_id, xtask::hook_function_id(kind), "named after its hook");
        assert_eq!(function.binary, "hook", "every hook function runs the one hook binary");
        assert_eq!(function.environment["HOOK_PATH"], json!(kind.path()), "and is told its hook");
    }
    let hook_routes = routes.iter().filter(|(_, p, _)| p.starts_with("/api/hooks/")).count();
    assert_eq!(hook_routes, HookKind::ALL.len(), "no hook route outside the catalogue");
    // The same hooks behind a secret token in the path (`secret-path` mode), by the same functions.
    for kind in HookKind::ALL {
        let path = format!("/h/{{hookToken}}/api/hooks/{{scoringId}}/{}", kind.path());
        let serving: Vec<_> = routes.iter().filter(|(_, p, _)| *p == path).collect();
        assert_eq!(serving.len(), 1, "{path}");
        assert_eq!(serving[0].2.logical_id, xtask::hook_function_id(kind));
    }
    assert_eq!(
        routes.len(),
        2 * HookKind::ALL.len() + 3,
        "the hooks twice, My products and MUST's two helpers"
    );
}

#[test]
fn the_generated_parts_of_the_template_are_up_to_date() {
    let current = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let generated = xtask::generate(&current).unwrap();
    assert!(generated == current, "template.yaml is stale: run `cargo run -p xtask -- template`");
}

#[test]
fn every_partition_key_a_policy_allows_is_one_the_storage_format_defines() {
    let t = template();
    let mut checked = 0;
    for (id, _) in t.resources.iter() {
        for statement in t.policy_statements(id) {
            let patterns =
                as_list(&statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]);
            for pattern in patterns.iter().filter_map(Value::as_str) {
                // A prefix (`TRUCK#*`), or one exact key (the kept index, a partner's token item).
                let known = match pattern.strip_suffix('*') {
                    Some(prefix) => polis::keys::LEADING_KEY_PREFIXES.contains(&prefix),
                    None => {
                        polis::keys::LEADING_KEY_PREFIXES.contains(&pattern)
                            || [polis::keys::MUST_TOKEN, polis::keys::BIMA_TOKEN]
                                .iter()
                                .any(|name| polis::keys::token_key(name) == pattern)
                    }
                };
                assert!(known, "{id} allows {pattern}, which polis::keys does not define");
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "{checked} LeadingKeys patterns checked");
}

#[test]
fn each_runner_may_touch_only_its_own_partners_token() {
    let t = template();
    for (function, own, other) in [
        ("TruckRunnerFunction", polis::keys::MUST_TOKEN, polis::keys::BIMA_TOKEN),
        ("TruckHelpersFunction", polis::keys::MUST_TOKEN, polis::keys::BIMA_TOKEN),
        ("LoanRunnerFunction", polis::keys::BIMA_TOKEN, polis::keys::MUST_TOKEN),
    ] {
        let allowed: Vec<String> = t
            .policy_statements(function)
            .iter()
            .flat_map(|s| as_list(&s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]))
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        let tokens: Vec<&String> = allowed.iter().filter(|k| k.starts_with("TOKEN#")).collect();
        assert_eq!(tokens, [&polis::keys::token_key(own)], "{function}: {allowed:?}");
        assert!(!allowed.contains(&polis::keys::token_key(other)), "{function}");
    }
}

#[test]
fn bank_facing_routes_take_only_signed_calls_and_hook_routes_their_own_secret() {
    let t = template();
    let resources = defaults(&t);
    let mut bank_routes = Vec::new();
    for f in t.functions().unwrap() {
        for e in &f.events {
            let EventSource::Http { path, iam, .. } = e else { continue };
            let path = resources.resolve(path).unwrap();
            if path.contains("/api/hooks/") {
                assert!(!iam, "{path}: MUST cannot sign with our IAM; hooks carry their own secret");
            } else {
                assert!(iam, "{path} ({}) is bank-facing and must be IAM-authorized", f.logical_id);
                bank_routes.push(path);
            }
        }
    }
    assert_eq!(
        bank_routes,
        ["/api/customers/{customerId}/products", "/api/trucks/license-category", "/api/trucks/tariff"]
    );
}

#[test]
fn every_function_binary_is_built_by_the_workspace() {
    let bins = workspace_binaries();
    for f in template().functions().unwrap() {
        assert!(bins.contains_key(&f.binary), "{}: no binary {} in the workspace", f.logical_id, f.binary);
    }
}

#[test]
fn the_template_sets_exactly_the_environment_the_code_reads() {
    let t = template();
    let bins = workspace_binaries();
    for f in t.functions().unwrap() {
        let read = variables_read(&bins[&f.binary]);
        assert!(read.contains("TABLE_NAME"), "{}: reads the table", f.logical_id);
        let set: BTreeSet<String> = f.environment.keys().cloned().collect();
        let missing: Vec<_> = read.difference(&set).collect();
        assert!(missing.is_empty(), "{} reads {missing:?}, which the template does not set", f.logical_id);
        // Read by `polis::telemetry::init`, which every function calls first.
        let telemetry = ["POLIS_ENVIRONMENT", "OTEL_EXPORTER_OTLP_ENDPOINT"];
        let unread: Vec<_> = set.difference(&read).filter(|v| !telemetry.contains(&v.as_str())).collect();
        assert!(unread.is_empty(), "{} is given {unread:?}, which its code never reads", f.logical_id);
    }
}

#[test]
fn every_queue_a_function_sends_to_and_every_secret_it_reads_is_allowed_and_nothing_else() {
    let t = template();
    for f in t.functions().unwrap() {
        let statements = t.policy_statements(&f.logical_id);
        let mut queues_in_env = BTreeSet::new();
        for (name, value) in &f.environment {
            let Some(target) = value.get("Ref").and_then(Value::as_str) else { continue };
            if is_type(&t, target, "AWS::SQS::Queue") {
                let arn = json!({"Fn::GetAtt": [target, "Arn"]});
                if name.ends_with("_DLQ_URL") {
                    // Dead-letter queues are drained (by replay), never sent to.
                    for action in ["sqs:ReceiveMessage", "sqs:DeleteMessage"] {
                        assert!(
                            allows(&statements, action, &arn),
                            "{} may not {action} {target}",
                            f.logical_id
                        );
                    }
                } else {
                    queues_in_env.insert(target.to_owned());
                    assert!(
                        allows(&statements, "sqs:SendMessage", &arn),
                        "{} may not send to {target}",
                        f.logical_id
                    );
                }
            }
            if target.ends_with("ParameterName") {
                let arn = json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter${{{target}}}")});
                assert!(
                    allows(&statements, "ssm:GetParameter", &arn),
                    "{} may not read {target}",
                    f.logical_id
                );
            }
        }
        for s in statements.iter().filter(|s| as_list(&s["Action"]).contains(&json!("sqs:SendMessage"))) {
            for r in as_list(&s["Resource"]) {
                let queue = r.pointer("/Fn::GetAtt/0").and_then(Value::as_str).unwrap_or_default();
                assert!(
                    queues_in_env.contains(queue),
                    "{} may send to {queue} but has no URL for it",
                    f.logical_id
                );
            }
        }
    }
}

#[test]
fn runner_queues_outlast_six_function_timeouts_and_have_dead_letter_queues() {
    let t = template();
    let resources = defaults(&t);
    for f in t.functions().unwrap() {
        for e in &f.events {
            let EventSource::Sqs { queue, .. } = e else { continue };
            let props = &t.resources[queue]["Properties"];
            let visibility: u64 = resources.resolve(&props["VisibilityTimeout"]).unwrap().parse().unwrap();
            assert!(
                visibility >= 6 * f.timeout_seconds,
                "{queue}: {visibility}s < 6 x {}s",
                f.timeout_seconds
            );
            let dlq =
                props.pointer("/RedrivePolicy/deadLetterTargetArn/Fn::GetAtt/0").and_then(Value::as_str);
            assert!(
                dlq.is_some_and(|d| is_type(&t, d, "AWS::SQS::Queue")),
                "{queue} has no dead-letter queue"
            );
            let fifo = props["FifoQueue"] == json!(true);
            let dlq_fifo = t.resources[dlq.unwrap()]["Properties"]["FifoQueue"] == json!(true);
            assert_eq!(fifo, dlq_fifo, "{queue} and its DLQ are both FIFO or both standard");
            let batch = t.resources[&f.logical_id].pointer("/Properties/Events").unwrap();
            assert!(
                batch.to_string().contains("ReportBatchItemFailures"),
                "{}: partial batch failures",
                f.logical_id
            );
        }
    }
}

#[test]
fn both_apis_are_throttled_and_log_each_request_without_bodies_or_headers() {
    let t = template();
    let resources = defaults(&t);
    let mut apis = 0;
    for (id, api) in t.of_type("AWS::Serverless::HttpApi") {
        let p = &api["Properties"];
        for limit in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
            let value = resources.resolve(&p["DefaultRouteSettings"][limit]).unwrap_or_default();
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{id}: {limit} is not set"));
            assert!((1.0..=10_000.0).contains(&value), "{id}: {limit} = {value}");
        }
        let format =
            p["AccessLogSettings"]["Format"].as_str().unwrap_or_else(|| panic!("{id}: no access log"));
        let line: Value = serde_json::from_str(format).expect("the access log format is one JSON object");
        assert!(line.get("requestId").is_some() && line.get("status").is_some(), "{id}: {format}");
        // The path may hold the secret-path token: the route (its template) only.
        for leak in ["body", "header", "authorizer", "queryString", "$context.path"] {
            assert!(!format.to_lowercase().contains(&leak.to_lowercase()), "{id}'s access log names {leak}");
        }
        let group =
            p.pointer("/AccessLogSettings/DestinationArn/Fn::GetAtt/0").and_then(Value::as_str).unwrap();
        let retention = &t.resources[group]["Properties"]["RetentionInDays"];
        assert!(resources.resolve(retention).is_ok_and(|days| !days.is_empty()), "{group}: no retention");
        apis += 1;
    }
    assert_eq!(apis, 2, "the hook API and the bank's API");
}

#[test]
fn hooks_and_each_runner_have_reserved_concurrency_and_runner_pollers_stay_within_it() {
    let t = template();
    let mut runners = 0;
    for f in t.functions().unwrap() {
        let props = &t.resources[&f.logical_id]["Properties"];
        let reserved = &props["ReservedConcurrentExecutions"];
        let takes_work = f.binary == "hook" || f.binary.ends_with("-runner");
        if !takes_work {
            continue;
        }
        assert!(reserved.get("Ref").is_some(), "{}: no reserved concurrency", f.logical_id);
        for e in &f.events {
            let EventSource::Sqs { .. } = e else { continue };
            let scaling = props["Events"]
                .as_object()
                .unwrap()
                .values()
                .find_map(|e| e.pointer("/Properties/ScalingConfig/MaximumConcurrency").cloned());
            assert_eq!(scaling.as_ref(), Some(reserved), "{}: the poller asks for its reserve", f.logical_id);
            runners += 1;
        }
    }
    assert_eq!(runners, 2, "truck-runner and loan-runner");
}

#[test]
fn every_queue_refuses_calls_without_tls_and_the_hook_api_alarms_on_5xx() {
    let t = template();
    let queues: BTreeSet<&String> = t.of_type("AWS::SQS::Queue").map(|(id, _)| id).collect();
    let mut covered = BTreeSet::new();
    for (_, policy) in t.of_type("AWS::SQS::QueuePolicy") {
        let p = &policy["Properties"];
        let denies_plain_http = as_list(&p["PolicyDocument"]["Statement"]).iter().any(|s| {
            s["Effect"] == "Deny"
                && s["Principal"] == "*"
                && s["Action"] == "sqs:*"
                && s.pointer("/Condition/Bool/aws:SecureTransport") == Some(&json!("false"))
        });
        if denies_plain_http {
            covered.extend(as_list(&p["Queues"]).iter().filter_map(|q| q["Ref"].as_str().map(str::to_owned)));
        }
    }
    let covered: BTreeSet<&String> = covered.iter().collect();
    assert_eq!(covered, queues, "every queue, and only queues, under a TLS-only policy");
    // The hook API's 5xx answers as a share of its requests.
    let alarm = t.of_type("AWS::CloudWatch::Alarm").find_map(|(_, a)| {
        let metrics = as_list(&a["Properties"]["Metrics"]);
        let of_hook_api = |name: &str| {
            metrics.iter().find(|m| {
                let metric = &m["MetricStat"]["Metric"];
                metric["MetricName"] == name
                    && as_list(&metric["Dimensions"]).iter().any(|d| d["Value"] == json!({"Ref": "HttpApi"}))
            })
        };
        let (errors, requests) = (of_hook_api("5xx")?, of_hook_api("Count")?);
        let rate = metrics.iter().find(|m| m["ReturnData"] == true)?;
        Some((errors["Id"].clone(), requests["Id"].clone(), rate["Expression"].clone()))
    });
    let (errors, requests, rate) = alarm.expect("an alarm on the hook API's share of 5xx answers");
    let rate = rate.as_str().unwrap_or_default();
    assert!(
        rate.contains(&format!("{} / {}", errors.as_str().unwrap(), requests.as_str().unwrap())),
        "{rate}"
    );
}

/// `sam deploy --config-env <env>` must not stop for a parameter: every parameter without a
/// default is named in each environment of `samconfig.toml`, and the secrets' SSM names are the
/// ones README's first deploying step creates.
#[test]
fn every_samconfig_environment_names_every_required_parameter_and_the_readmes_secret_names() {
    let t = template();
    let required: Vec<&String> = t.parameters.iter().filter(|(_, d)| d.is_none()).map(|(n, _)| n).collect();
    assert!(!required.is_empty(), "the template has parameters only a deployer can know");
    let samconfig = std::fs::read_to_string(root().join("samconfig.toml")).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut environments = 0;
    let mut section = String::new();
    for line in samconfig.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let Some(overrides) = line.strip_prefix("parameter_overrides = ") else { continue };
        assert!(section.ends_with(".deploy.parameters"), "{section}: overrides belong to deploy");
        environments += 1;
        let given: BTreeMap<&str, &str> =
            overrides.trim_matches('"').split_whitespace().filter_map(|kv| kv.split_once('=')).collect();
        for name in &required {
            assert!(given.contains_key(name.as_str()), "{section}: {name} has no default and no value");
        }
        for (name, value) in given.iter().filter(|(n, _)| n.ends_with("ParameterName")) {
            assert!(t.parameters.contains_key(*name), "{section}: {name} is not a template parameter");
            let as_in_readme = value.replace("/prod/", "/dev/");
            assert!(
                readme.contains(&format!("--name {as_in_readme} ")),
                "{section}: {name}={value} is not the name README's step 1 creates"
            );
        }
    }
    assert_eq!(environments, 3, "default, dev and prod");
}

/// What an on-call engineer needs from the template: every function's logs kept for a set
/// time and searchable with the saved queries, an alarm on its errors, a line on the
/// dashboard; every runner queue's oldest message watched; processes stuck in a stage alarmed.
#[test]
fn every_function_has_kept_logs_saved_queries_an_error_alarm_and_a_place_on_the_dashboard() {
    let t = template();
    let functions: BTreeSet<&String> = t.of_type("AWS::Serverless::Function").map(|(id, _)| id).collect();
    let dashboard = t.of_type("AWS::CloudWatch::Dashboard").next().expect("a dashboard").1;
    let body =
        dashboard["Properties"]["DashboardBody"]["Fn::Sub"].as_str().expect("the body is a !Sub string");
    let substituted: String = {
        let mut out = String::new();
        let mut rest = body;
        while let Some(at) = rest.find("${") {
            let end = rest[at..].find('}').expect("a closed ${...}") + at;
            out.push_str(&rest[..at]);
            out.push('x');
            rest = &rest[end + 1..];
        }
        out + rest
    };
    let widgets: Value = serde_json::from_str(&substituted).expect("the dashboard body is JSON");
    assert!(widgets["widgets"].as_array().is_some_and(|w| w.len() >= 10));
    let queries: Vec<&Value> = t.of_type("AWS::Logs::QueryDefinition").map(|(_, q)| q).collect();
    assert_eq!(queries.len(), 2, "one process's lines, errors by kind");
    for function in &functions {
        let group = &t.resources[&format!("{function}LogGroup")]["Properties"];
        assert_eq!(
            group["LogGroupName"],
            json!({"Fn::Sub": format!("/aws/lambda/${{{function}}}")}),
            "{function}"
        );
        assert_eq!(group["RetentionInDays"], json!({"Ref": "LogRetentionDays"}), "{function}");
        for query in &queries {
            let groups = as_list(&query["Properties"]["LogGroupNames"]);
            assert!(
                groups.contains(&json!({"Ref": format!("{function}LogGroup")})),
                "{function} in every query"
            );
        }
        let alarm = &t.resources[&format!("{function}ErrorsAlarm")]["Properties"];
        assert_eq!(alarm["MetricName"], "Errors", "{function}");
        assert!(body.contains(&format!("\"${{{function}}}\"")), "{function} on the dashboard");
    }
    let consumed: BTreeSet<String> = t
        .functions()
        .expect("the functions read")
        .into_iter()
        .flat_map(|spec| spec.events)
        .filter_map(|event| match event {
            EventSource::Sqs { queue, .. } => Some(queue),
            _ => None,
        })
        .collect();
    assert!(consumed.len() >= 3, "the truck, loan and bank-event queues: {consumed:?}");
    for queue in &consumed {
        let alarm = &t.resources[&format!("{queue}OldestMessageAlarm")]["Properties"];
        assert_eq!(alarm["MetricName"], "ApproximateAgeOfOldestMessage", "{queue}");
        assert_eq!(alarm["Threshold"], json!({"Ref": "QueueAgeAlarmSeconds"}), "{queue}");
        assert!(body.contains(&format!("${{{queue}.QueueName}}")), "{queue} on the dashboard");
    }
    let stuck = t.of_type("AWS::CloudWatch::Alarm").any(|(_, a)| {
        a["Properties"]["Namespace"] == "polis" && a["Properties"]["MetricName"] == "StuckProcesses"
    });
    assert!(stuck, "an alarm on processes stuck in a stage");
}

#[test]
fn every_queue_takes_messages_up_to_the_limit_the_code_sends_and_no_larger() {
    // A hook whose message would pass the limit goes by reference; a queue that took less
    // would refuse messages the code thinks fit, one that took more would let a batch pass
    // a Lambda invocation's payload.
    let t = template();
    let resources = defaults(&t);
    let queues: Vec<(&String, &Value)> =
        t.resources.iter().filter(|(_, r)| r["Type"] == json!("AWS::SQS::Queue")).collect();
    assert!(queues.len() >= 7, "{}", queues.len());
    for (id, queue) in queues {
        let size = resources.resolve(&queue["Properties"]["MaximumMessageSize"]);
        assert_eq!(
            size.ok().and_then(|s| s.parse::<usize>().ok()),
            Some(polis::ports::QUEUE_MESSAGE_LIMIT),
            "{id}: MaximumMessageSize"
        );
    }
}
