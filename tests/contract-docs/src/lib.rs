//! The contracts the bank's developers generate code from, loaded and applied:
//! `contracts/schemas/*.schema.json` (JSON Schema 2020-12, one per bank event and notice)
//! and `contracts/openapi.yaml` (OpenAPI 3.1, the hook API and the bank API).
//!
//! [`validate_event`], [`validate_notice`] and [`validate_answer`] hold what the code
//! sends and accepts to those files, so the contracts cannot drift from the code: this
//! crate's tests run them on every example in `shared/examples`, and the end-to-end
//! harness on every notice and every HTTP answer of the end-to-end suite.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::{Draft, Registry, Resource, Validator};
use serde_json::Value;

/// Where the contracts are registered (nothing is fetched: every `$ref` resolves to a file of
/// `contracts/`, registered under this base, relative references as they are written).
const BASE: &str = "https://polis.invalid/contracts/";
const OPENAPI: &str = "openapi.yaml";
/// The umbrella schemas (a `oneOf` of every kind), besides one schema per kind.
pub const EVENT_SCHEMA: &str = "bank-event.schema.json";
pub const NOTICE_SCHEMA: &str = "notice.schema.json";

/// What a message or answer breaks: which contract, and each error with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The message or answer (`notice truck.offer`, `POST /api/hooks/{scoringId}/approved 200`).
    pub what: String,
    pub errors: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} breaks its contract: {}", self.what, self.errors.join("; "))
    }
}

impl std::error::Error for Violation {}

fn violation(what: impl Into<String>, error: impl Into<String>) -> Violation {
    Violation { what: what.into(), errors: vec![error.into()] }
}

/// The `contracts/` directory.
pub fn contracts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contracts")
}

/// The `shared/examples/` directory.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/examples")
}

struct Contracts {
    registry: Registry<'static>,
    openapi: Value,
    /// Schema file names (`truck.offer.schema.json`).
    schemas: Vec<String>,
    /// The kinds each umbrella schema's `type` names.
    kinds: HashMap<String, Vec<String>>,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

fn load() -> Result<Contracts, String> {
    let dir = contracts_dir();
    let read = |path: &PathBuf| std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()));
    let openapi: Value = serde_yaml::from_str(&read(&dir.join(OPENAPI))?)
        .map_err(|e| format!("{OPENAPI} is not YAML: {e}"))?;
    let mut resources = vec![(format!("{BASE}{OPENAPI}"), openapi.clone())];
    let mut schemas = Vec::new();
    let mut kinds_of = HashMap::new();
    let entries = std::fs::read_dir(dir.join("schemas")).map_err(|e| format!("contracts/schemas: {e}"))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        if !name.ends_with(".schema.json") {
            continue;
        }
        let schema: Value =
            serde_json::from_str(&read(&path)?).map_err(|e| format!("schemas/{name} is not JSON: {e}"))?;
        if let Some(kinds) = schema.pointer("/properties/type/enum").and_then(Value::as_array) {
            kinds_of
                .insert(name.clone(), kinds.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect());
        }
        resources.push((format!("{BASE}schemas/{name}"), schema));
        schemas.push(name);
    }
    schemas.sort();
    let registry = Registry::new()
        .draft(Draft::Draft202012)
        .extend(resources.into_iter().map(|(uri, value)| (uri, Resource::from_contents(value))))
        .and_then(|builder| builder.prepare())
        .map_err(|e| format!("the contracts do not load: {e}"))?;
    Ok(Contracts { registry, openapi, schemas, kinds: kinds_of, validators: Mutex::default() })
}

fn contracts() -> &'static Contracts {
    static CONTRACTS: OnceLock<Contracts> = OnceLock::new();
    CONTRACTS.get_or_init(|| load().unwrap_or_else(|e| panic!("contracts/: {e}")))
}

impl Contracts {
    /// The validator of `schema` (whose relative `$ref`s resolve against `base`), compiled once.
    fn validator(&self, key: &str, base: &str, schema: &Value) -> Result<Arc<Validator>, String> {
        let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = cache.get(key) {
            return Ok(v.clone());
        }
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&self.registry)
            .with_base_uri(base)
            .build(schema)
            .map_err(|e| format!("{key} does not compile: {e}"))?;
        let validator = Arc::new(validator);
        cache.insert(key.to_owned(), validator.clone());
        Ok(validator)
    }

    fn check(
        &self,
        what: &str,
        key: &str,
        base: &str,
        schema: &Value,
        instance: &Value,
    ) -> Result<(), Violation> {
        let validator = self.validator(key, base, schema).map_err(|e| violation(what, e))?;
        let errors: Vec<String> = validator.iter_errors(instance).map(|e| describe(&e)).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Violation { what: what.to_owned(), errors })
        }
    }

    /// Validates against a whole schema file of `contracts/schemas`.
    fn check_file(&self, what: &str, file: &str, instance: &Value) -> Result<(), Violation> {
        if !self.schemas.iter().any(|s| s == file) {
            return Err(violation(what, format!("no schema contracts/schemas/{file}")));
        }
        let schema = serde_json::json!({ "$ref": format!("{BASE}schemas/{file}") });
        self.check(what, file, &format!("{BASE}schemas/"), &schema, instance)
    }

    /// A message of the kind its `type` names, valid against that kind's schema and the umbrella's.
    fn check_message(&self, side: &str, umbrella: &str, json: &Value) -> Result<(), Violation> {
        let Some(kind) = json.get("type").and_then(Value::as_str) else {
            return Err(violation(side, "no string `type`"));
        };
        let what = format!("{side} {kind}");
        if !self.kinds.get(umbrella).is_some_and(|kinds| kinds.iter().any(|k| k == kind)) {
            return Err(violation(
                &what,
                format!("unknown {side} type {kind:?}: {umbrella} does not name it"),
            ));
        }
        let file = format!("{kind}.schema.json");
        self.check_file(&what, &file, json)?;
        self.check_file(&what, umbrella, json)
    }
}

/// One error with its place; for `oneOf`/`anyOf`, why each alternative failed.
fn describe(e: &jsonschema::ValidationError<'_>) -> String {
    let at = e.instance_path().to_string();
    let mut said = format!("at {} ({}): {e}", if at.is_empty() { "/" } else { &at }, e.schema_path());
    if let jsonschema::error::ValidationErrorKind::OneOfNotValid { context }
    | jsonschema::error::ValidationErrorKind::AnyOf { context } = e.kind()
    {
        for (i, alternative) in context.iter().enumerate() {
            let why: Vec<String> = alternative.iter().map(describe).collect();
            said.push_str(&format!(" [alternative {i}: {}]", why.join(", ")));
        }
    }
    said
}

/// Validates a bank event (what the bank sends on the bank-events queue) against
/// `contracts/schemas/{type}.schema.json` and `bank-event.schema.json`.
pub fn validate_event(json: &Value) -> Result<(), Violation> {
    contracts().check_message("event", EVENT_SCHEMA, json)
}

/// Validates a notice (what polis sends on the bank-notifications queue) against
/// `contracts/schemas/{type}.schema.json` and `notice.schema.json`.
pub fn validate_notice(json: &Value) -> Result<(), Violation> {
    contracts().check_message("notice", NOTICE_SCHEMA, json)
}

/// The operations of `contracts/openapi.yaml`: (upper-case method, path template).
pub fn operations() -> Vec<(String, String)> {
    let mut ops = Vec::new();
    if let Some(paths) = contracts().openapi.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            for method in ["get", "put", "post", "delete", "options", "head", "patch", "trace"] {
                if item.get(method).is_some() {
                    ops.push((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    ops
}

/// Whether a concrete path (or a template) is served by `template`: literal segments equal,
/// a `{parameter}` segment any non-empty one.
fn path_matches(template: &str, path: &str) -> bool {
    let want: Vec<&str> = template.trim_matches('/').split('/').collect();
    let got: Vec<&str> = path.trim_matches('/').split('/').collect();
    want.len() == got.len()
        && want.iter().zip(&got).all(|(w, g)| {
            if w.starts_with('{') && w.ends_with('}') {
                !g.is_empty()
            } else {
                w == g
            }
        })
}

/// Follows a local `$ref` (`#/components/...`) of the OpenAPI document.
fn follow<'a>(doc: &'a Value, mut value: &'a Value) -> Result<&'a Value, String> {
    for _ in 0..8 {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer =
                    reference.strip_prefix('#').ok_or(format!("{reference}: not a local reference"))?;
                value = doc.pointer(pointer).ok_or(format!("{reference}: not in openapi.yaml"))?;
            }
            None => return Ok(value),
        }
    }
    Err("a $ref chain over 8 long".into())
}

/// The schema `schema` found in the OpenAPI document, its local `$ref`s made absolute (the
/// document is registered whole; relative file references resolve against `contracts/`).
fn absolute(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("$ref", Value::String(r)) if r.starts_with('#') => {
                        (k.clone(), Value::String(format!("{BASE}{OPENAPI}{r}")))
                    }
                    _ => (k.clone(), absolute(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(absolute).collect()),
        other => other.clone(),
    }
}

/// Validates an HTTP answer of either API against `contracts/openapi.yaml`: the operation by
/// method and path (a concrete path, its query string ignored, or a template), the response by
/// status (exact, then `4XX`/`5XX`, then `default`), and the body against the response's JSON
/// schema (a response without content must have an empty body). A path or method with no
/// operation must have API Gateway's answer, `404` and the `Unrouted` response's body.
pub fn validate_answer(method: &str, path: &str, status: u16, body: &[u8]) -> Result<(), Violation> {
    let c = contracts();
    let method = method.to_ascii_lowercase();
    let path = path.split('?').next().unwrap_or_default();
    let paths = c.openapi.get("paths").and_then(Value::as_object);
    // The most literal template first (`/a/b` before `/a/{x}`).
    let template = paths
        .into_iter()
        .flatten()
        .filter(|(t, item)| path_matches(t, path) && item.get(&method).is_some())
        .min_by_key(|(t, _)| t.matches('{').count())
        .map(|(t, _)| t.clone());
    let key = match &template {
        Some(t) => format!("answer {} {t} {status}", method.to_uppercase()),
        None => "answer unrouted".to_owned(),
    };
    let (what, response) = match &template {
        Some(t) => {
            let what = format!("{} {t} {status}", method.to_uppercase());
            let responses = &c.openapi["paths"][t][&method]["responses"];
            let range = format!("{}XX", status / 100);
            let documented =
                [status.to_string(), range, "default".into()].iter().find_map(|k| responses.get(k));
            // API Gateway's own answers, on any path, before any function: a request it cannot
            // route (a path it normalises elsewhere) and a body over its payload limit.
            let gateway = match status {
                404 => c.openapi["components"]["responses"].get("Unrouted"),
                413 => c.openapi["components"]["responses"].get("GatewayTooLarge"),
                _ => None,
            };
            let response = documented
                .or(gateway)
                .ok_or_else(|| violation(&what, format!("status {status} is not a documented answer")))?;
            (what, response)
        }
        None => {
            let what = format!("{} {path} {status} (no route)", method.to_uppercase());
            if status != 404 {
                return Err(violation(what, "a path or method without a route must be answered 404"));
            }
            (what, &c.openapi["components"]["responses"]["Unrouted"])
        }
    };
    let response = follow(&c.openapi, response).map_err(|e| violation(&what, e))?;
    let Some(schema) = response.pointer("/content/application~1json/schema") else {
        if response.get("content").is_none() && !body.is_empty() {
            return Err(violation(&what, "a body where the contract has none"));
        }
        return Ok(());
    };
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        violation(&what, format!("the body is not JSON ({e}): {text:?}"))
    })?;
    c.check(&what, &key, &format!("{BASE}answer"), &absolute(schema), &json)
}

/// Validates `json` against one schema file of `contracts/schemas` (`common.schema.json#/$defs/...`
/// parts too: pass `"common.schema.json#/$defs/ArchivedFile"`).
pub fn validate_against(schema: &str, json: &Value) -> Result<(), Violation> {
    let c = contracts();
    let reference = serde_json::json!({ "$ref": format!("{BASE}schemas/{schema}") });
    c.check(schema, &format!("ref {schema}"), &format!("{BASE}schemas/"), &reference, json)
}

/// Every schema file in `contracts/schemas`.
pub fn schema_files() -> Vec<String> {
    contracts().schemas.clone()
}
