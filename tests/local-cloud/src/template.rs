//! Reads the SAM template: the functions with their events and environment,
//! and the tables, queues and buckets they use. CloudFormation's short tags
//! (`!Ref`, `!GetAtt`, `!Sub`) are turned into their long JSON form first.
//!
//! It reads as well the CloudFormation that AWS's SAM translator makes of the template
//! (`scripts/translate-template.py`, JSON): there the functions are `AWS::Lambda::Function`s
//! with a role each, their SQS events `AWS::Lambda::EventSourceMapping`s and their routes the
//! OpenAPI body of each `AWS::ApiGatewayV2::Api`; [`Template::functions`] and
//! [`Template::policy_statements`] answer the same from either.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::CloudError;

pub struct Template {
    pub parameters: BTreeMap<String, Option<String>>,
    pub globals_env: Map<String, Value>,
    pub globals_timeout: u64,
    pub resources: BTreeMap<String, Value>,
    /// The template's `Conditions`, unevaluated (see [`crate::provision::Resources::resolve`]).
    pub conditions: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventSource {
    /// `iam`: the route takes only SigV4-signed calls (`AWS_IAM` on the route or as its API's default).
    /// `api`: the logical id of the HTTP API the route is on.
    Http { api: String, method: String, path: Value, iam: bool },
    /// `report_batch_item_failures`: `FunctionResponseTypes` holds `ReportBatchItemFailures`, so
    /// the poller deletes only the messages the function did not name as failed (without it, a
    /// batch the function answers is deleted whole, as Lambda does). The batching window and the
    /// maximum concurrency are carried as declared; the local poller does not wait or scale by them.
    Sqs {
        queue: String,
        batch_size: usize,
        report_batch_item_failures: bool,
        maximum_batching_window_seconds: u64,
        maximum_concurrency: Option<Value>,
    },
    /// An EventBridge schedule (SAM's `Schedule` event, CloudFormation's `AWS::Events::Rule`
    /// with a `ScheduleExpression` targeting the function); the expression unresolved.
    Schedule { expression: Value },
}

/// SAM's name for the HTTP API of `HttpApi` events that name none.
const IMPLICIT_HTTP_API: &str = "ServerlessHttpApi";

impl EventSource {
    /// An SQS source from the properties SAM's `SQS` event and CloudFormation's
    /// `AWS::Lambda::EventSourceMapping` share.
    fn sqs(queue: String, props: &Value) -> EventSource {
        EventSource::Sqs {
            queue,
            batch_size: props.get("BatchSize").and_then(Value::as_u64).unwrap_or(10) as usize,
            report_batch_item_failures: props
                .get("FunctionResponseTypes")
                .map(as_list)
                .unwrap_or_default()
                .contains(&json!("ReportBatchItemFailures")),
            maximum_batching_window_seconds: props
                .get("MaximumBatchingWindowInSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            maximum_concurrency: props.pointer("/ScalingConfig/MaximumConcurrency").cloned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDef {
    pub logical_id: String,
    pub binary: String,
    /// Unresolved: values may still be `{"Ref": ...}` and friends.
    pub environment: Map<String, Value>,
    pub events: Vec<EventSource>,
    pub timeout_seconds: u64,
}

fn yaml_to_json(v: serde_yaml::Value) -> Result<Value, CloudError> {
    use serde_yaml::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => json!(b),
        Y::Number(n) => serde_json::to_value(n).map_err(|e| CloudError::Template(e.to_string()))?,
        Y::String(s) => json!(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    other => serde_yaml::to_string(&other).unwrap_or_default().trim().to_owned(),
                };
                out.insert(key, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let name = tagged.tag.to_string();
            let name = name.trim_start_matches('!');
            let inner = yaml_to_json(tagged.value)?;
            match name {
                "Ref" => json!({"Ref": inner}),
                "GetAtt" => match inner {
                    Value::String(s) => {
                        let (res, att) = s.split_once('.').unwrap_or((&s, ""));
                        json!({"Fn::GetAtt": [res, att]})
                    }
                    other => json!({"Fn::GetAtt": other}),
                },
                other => json!({ format!("Fn::{other}"): inner }),
            }
        }
    })
}

impl Template {
    pub fn load(path: &Path) -> Result<Template, CloudError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CloudError::Template(format!("{}: {e}", path.display())))?;
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| CloudError::Template(e.to_string()))?;
        let doc = yaml_to_json(yaml)?;
        let parameters = doc
            .get("Parameters")
            .and_then(Value::as_object)
            .map(|ps| {
                ps.iter()
                    .map(|(k, v)| {
                        let default = v.get("Default").map(|d| match d {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        });
                        (k.clone(), default)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let globals_env = doc
            .pointer("/Globals/Function/Environment/Variables")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let resources = doc
            .get("Resources")
            .and_then(Value::as_object)
            .ok_or_else(|| CloudError::Template("no Resources".into()))?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let globals_timeout = doc.pointer("/Globals/Function/Timeout").and_then(Value::as_u64).unwrap_or(3);
        let conditions = doc.get("Conditions").and_then(Value::as_object).cloned().unwrap_or_default();
        Ok(Template { parameters, globals_env, globals_timeout, resources, conditions })
    }

    /// Every statement a function's policies hold: inline ones, and those of the managed
    /// policies it names by `!Ref`. In translated CloudFormation, those of the function's role
    /// (its inline policies, then the managed policies of this template among its
    /// `ManagedPolicyArns`; AWS's own managed policies, named by ARN, are not modelled).
    pub fn policy_statements(&self, logical_id: &str) -> Vec<Value> {
        let statements =
            |p: &Value| p.get("Statement").and_then(Value::as_array).cloned().unwrap_or_default();
        let managed = |p: &Value| {
            p.get("Ref")
                .and_then(Value::as_str)
                .and_then(|m| self.resources.get(m))
                .and_then(|r| r.pointer("/Properties/PolicyDocument"))
                .map(statements)
                .unwrap_or_default()
        };
        if self.is_translated() {
            let Some(role) = self.role_of(logical_id) else { return Vec::new() };
            let inline = role
                .pointer("/Properties/Policies")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("PolicyDocument"))
                .flat_map(statements);
            let arns = role.pointer("/Properties/ManagedPolicyArns").and_then(Value::as_array);
            return inline.chain(arns.into_iter().flatten().flat_map(managed)).collect();
        }
        self.resources
            .get(logical_id)
            .and_then(|r| r.pointer("/Properties/Policies"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|p| if p.get("Ref").is_some() { managed(p) } else { statements(p) })
            .collect()
    }

    /// Whether this is CloudFormation made by the SAM translator (no `AWS::Serverless::*` left).
    pub fn is_translated(&self) -> bool {
        !self.resources.values().any(|r| {
            r.get("Type").and_then(Value::as_str).is_some_and(|t| t.starts_with("AWS::Serverless::"))
        })
    }

    /// The logical id of a translated function's role (`Role: !GetAtt X.Arn`).
    pub fn role_id(&self, function: &str) -> Option<&str> {
        self.resources.get(function)?.pointer("/Properties/Role/Fn::GetAtt/0")?.as_str()
    }

    fn role_of(&self, function: &str) -> Option<&Value> {
        self.resources.get(self.role_id(function)?)
    }

    pub fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.resources.iter().filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
    }

    /// The authorizer of an `HttpApi` event: its own `Auth.Authorizer`, else its API's default.
    fn route_authorizer(&self, event: &Value) -> Option<String> {
        let own = event.pointer("/Auth/Authorizer").and_then(Value::as_str);
        let api_default = || {
            let api = event.pointer("/ApiId/Ref").and_then(Value::as_str)?;
            self.resources.get(api)?.pointer("/Properties/Auth/DefaultAuthorizer")?.as_str()
        };
        own.or_else(api_default).map(str::to_owned)
    }

    pub fn functions(&self) -> Result<Vec<FunctionDef>, CloudError> {
        if self.is_translated() {
            return self.translated_functions();
        }
        let mut out = Vec::new();
        for (id, res) in self.of_type("AWS::Serverless::Function") {
            let binary = res
                .pointer("/Metadata/BuildProperties/Binary")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    CloudError::Template(format!("{id}: Metadata.BuildProperties.Binary is required"))
                })?
                .to_owned();
            let mut environment = self.globals_env.clone();
            if let Some(vars) = res.pointer("/Properties/Environment/Variables").and_then(Value::as_object) {
                environment.extend(vars.clone());
            }
            let mut events = Vec::new();
            if let Some(evs) = res.pointer("/Properties/Events").and_then(Value::as_object) {
                for (name, ev) in evs {
                    let props = ev.get("Properties").cloned().unwrap_or_default();
                    match ev.get("Type").and_then(Value::as_str) {
                        Some("HttpApi") => events.push(EventSource::Http {
                            api: props
                                .pointer("/ApiId/Ref")
                                .and_then(Value::as_str)
                                .unwrap_or(IMPLICIT_HTTP_API)
                                .to_owned(),
                            method: props
                                .get("Method")
                                .and_then(Value::as_str)
                                .unwrap_or("ANY")
                                .to_uppercase(),
                            path: props.get("Path").cloned().unwrap_or_default(),
                            iam: self.route_authorizer(&props).as_deref() == Some("AWS_IAM"),
                        }),
                        Some("SQS") => {
                            let queue = props
                                .pointer("/Queue/Fn::GetAtt/0")
                                .and_then(Value::as_str)
                                .ok_or_else(|| {
                                    CloudError::Template(format!("{id}.{name}: Queue must be !GetAtt X.Arn"))
                                })?
                                .to_owned();
                            events.push(EventSource::sqs(queue, &props));
                        }
                        Some("Schedule") => events.push(EventSource::Schedule {
                            expression: props.get("Schedule").cloned().ok_or_else(|| {
                                CloudError::Template(format!("{id}.{name}: a Schedule event needs Schedule"))
                            })?,
                        }),
                        other => {
                            return Err(CloudError::Template(format!(
                                "{id}.{name}: event type {other:?} not supported"
                            )))
                        }
                    }
                }
            }
            let timeout_seconds =
                res.pointer("/Properties/Timeout").and_then(Value::as_u64).unwrap_or(self.globals_timeout);
            out.push(FunctionDef { logical_id: id.clone(), binary, environment, events, timeout_seconds });
        }
        Ok(out)
    }
}

impl Template {
    /// The functions of translated CloudFormation, with the events that reach them.
    fn translated_functions(&self) -> Result<Vec<FunctionDef>, CloudError> {
        // `AutoPublishAlias`: events reach a function through its alias; locally there is one version,
        // so the alias is the function.
        let aliases: BTreeMap<&str, &str> = self
            .of_type("AWS::Lambda::Alias")
            .filter_map(|(id, alias)| {
                Some((id.as_str(), alias.pointer("/Properties/FunctionName/Ref")?.as_str()?))
            })
            .collect();
        let function_of = |name: &'_ str| -> String { aliases.get(name).copied().unwrap_or(name).to_owned() };
        let mut events: BTreeMap<String, Vec<EventSource>> = BTreeMap::new();
        for (id, mapping) in self.of_type("AWS::Lambda::EventSourceMapping") {
            let props = mapping.get("Properties").cloned().unwrap_or_default();
            let function = props.pointer("/FunctionName/Ref").and_then(Value::as_str).map(function_of);
            let queue = props.pointer("/EventSourceArn/Fn::GetAtt/0").and_then(Value::as_str);
            let (Some(function), Some(queue)) = (function, queue) else {
                return Err(CloudError::Template(format!(
                    "{id}: FunctionName must be !Ref F (or its alias) and EventSourceArn !GetAtt Q.Arn"
                )));
            };
            let queue_type = self.resources.get(queue).and_then(|q| q.get("Type")).and_then(Value::as_str);
            if queue_type != Some("AWS::SQS::Queue") {
                return Err(CloudError::Template(format!("{id}: only SQS event sources are supported")));
            }
            events.entry(function).or_default().push(EventSource::sqs(queue.to_owned(), &props));
        }
        for (id, rule) in self.of_type("AWS::Events::Rule") {
            let props = rule.get("Properties").cloned().unwrap_or_default();
            let Some(expression) = props.get("ScheduleExpression").cloned() else {
                return Err(CloudError::Template(format!("{id}: only schedule rules are supported")));
            };
            for target in props.get("Targets").map(as_list).unwrap_or_default() {
                let function = target
                    .pointer("/Arn/Fn::GetAtt/0")
                    .or_else(|| target.pointer("/Arn/Ref"))
                    .and_then(Value::as_str)
                    .map(function_of)
                    .ok_or_else(|| {
                        CloudError::Template(format!(
                            "{id}: a target must be !GetAtt Function.Arn or !Ref its alias"
                        ))
                    })?;
                events
                    .entry(function)
                    .or_default()
                    .push(EventSource::Schedule { expression: expression.clone() });
            }
        }
        for (api, def) in self.of_type("AWS::ApiGatewayV2::Api") {
            let body = def.pointer("/Properties/Body").ok_or_else(|| {
                CloudError::Template(format!("{api}: an HTTP API without an OpenAPI Body is not supported"))
            })?;
            let api_iam = is_iam(body.get("security"));
            for (path, operations) in body.get("paths").and_then(Value::as_object).into_iter().flatten() {
                for (method, op) in operations.as_object().into_iter().flatten() {
                    let method = match method.as_str() {
                        "x-amazon-apigateway-any-method" => "ANY".to_owned(),
                        m => m.to_uppercase(),
                    };
                    let uri = op
                        .pointer("/x-amazon-apigateway-integration/uri/Fn::Sub")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let function = uri
                        .split_once("/functions/${")
                        .and_then(|(_, rest)| {
                            rest.split_once(".Arn}/invocations").or_else(|| rest.split_once("}/invocations"))
                        })
                        .map(|(f, _)| function_of(f))
                        .ok_or_else(|| {
                            CloudError::Template(format!(
                                "{api} {method} {path}: integration is not a Lambda function of the stack"
                            ))
                        })?;
                    let iam = match op.get("security") {
                        Some(own) => is_iam(Some(own)),
                        None => api_iam,
                    };
                    events.entry(function).or_default().push(EventSource::Http {
                        api: api.clone(),
                        method,
                        path: json!(path),
                        iam,
                    });
                }
            }
        }
        let mut out = Vec::new();
        for (id, res) in self.of_type("AWS::Lambda::Function") {
            let binary = res
                .pointer("/Metadata/BuildProperties/Binary")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    CloudError::Template(format!("{id}: Metadata.BuildProperties.Binary is required"))
                })?
                .to_owned();
            out.push(FunctionDef {
                logical_id: id.clone(),
                binary,
                environment: res
                    .pointer("/Properties/Environment/Variables")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
                events: events.remove(id).unwrap_or_default(),
                timeout_seconds: res.pointer("/Properties/Timeout").and_then(Value::as_u64).unwrap_or(3),
            });
        }
        if let Some(function) = events.keys().next() {
            return Err(CloudError::Template(format!("events for {function}, which is not a function here")));
        }
        Ok(out)
    }
}

/// The period of an EventBridge rate expression: `rate(5 minutes)`, `rate(1 hour)`, `rate(2 days)`.
pub fn schedule_period(expression: &str) -> Result<std::time::Duration, CloudError> {
    let bad = || CloudError::Template(format!("schedule {expression:?}: only rate(N unit) is supported"));
    let inner = expression.trim().strip_prefix("rate(").and_then(|r| r.strip_suffix(')')).ok_or_else(bad)?;
    let (count, unit) = inner.trim().split_once(' ').ok_or_else(bad)?;
    let count: u64 = count.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return Err(bad()),
    };
    if count == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(count * seconds))
}

/// Whether an OpenAPI `security` requirement list asks for `AWS_IAM`.
fn is_iam(security: Option<&Value>) -> bool {
    security.and_then(Value::as_array).is_some_and(|reqs| reqs.iter().any(|r| r.get("AWS_IAM").is_some()))
}

/// A value that may be one item or a list of them (IAM's `Action`, `Resource`), as a list.
pub fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}
