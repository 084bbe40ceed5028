//! Reads the SAM template: the functions with their events and environment,
//! and the tables, queues and buckets they use. CloudFormation's short tags
//! (`!Ref`, `!GetAtt`, `!Sub`) are turned into their long JSON form first.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::CloudError;

pub struct Template {
    pub parameters: BTreeMap<String, Option<String>>,
    pub globals_env: Map<String, Value>,
    pub globals_timeout: u64,
    pub resources: BTreeMap<String, Value>,
}

#[derive(Debug, Clone)]
pub enum EventSource {
    /// `iam`: the route takes only SigV4-signed calls (`AWS_IAM` on the route or as its API's default).
    Http {
        method: String,
        path: Value,
        iam: bool,
    },
    Sqs {
        queue: String,
        batch_size: usize,
    },
}

#[derive(Debug, Clone)]
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
        Ok(Template { parameters, globals_env, globals_timeout, resources })
    }

    /// The statements of a function's inline policies.
    /// Every statement a function's policies hold: inline ones, and those of the managed
    /// policies it names by `!Ref`.
    pub fn policy_statements(&self, logical_id: &str) -> Vec<Value> {
        let statements =
            |p: &Value| p.get("Statement").and_then(Value::as_array).cloned().unwrap_or_default();
        self.resources
            .get(logical_id)
            .and_then(|r| r.pointer("/Properties/Policies"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|p| match p.get("Ref").and_then(Value::as_str) {
                Some(managed) => self
                    .resources
                    .get(managed)
                    .and_then(|r| r.pointer("/Properties/PolicyDocument"))
                    .map(statements)
                    .unwrap_or_default(),
                None => statements(p),
            })
            .collect()
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
                            let batch_size =
                                props.get("BatchSize").and_then(Value::as_u64).unwrap_or(10) as usize;
                            events.push(EventSource::Sqs { queue, batch_size });
                        }
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

/// A value that may be one item or a list of them (IAM's `Action`, `Resource`), as a list.
pub fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}
