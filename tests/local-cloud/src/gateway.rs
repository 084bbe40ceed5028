//! An API Gateway HTTP API: routes requests by the template's `HttpApi` events
//! and invokes the function with a payload-format-2.0 event.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::runtime::{InvokeError, RuntimeApi};
use crate::sigv4::{self, Principal};

#[derive(Debug, Clone)]
pub struct Route {
    pub method: String,
    /// `/api/hooks/{scoringId}/approved`
    pub path: String,
    pub function: String,
    /// Only SigV4-signed calls (API Gateway's `AWS_IAM` authorizer).
    pub iam: bool,
}

impl Route {
    /// The path parameters when `path` matches this route.
    fn matches(&self, method: &Method, path: &str) -> Option<Map<String, Value>> {
        if self.method != "ANY" && self.method != method.as_str() {
            return None;
        }
        let want: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let got: Vec<&str> = path.trim_matches('/').split('/').collect();
        if want.len() != got.len() {
            return None;
        }
        let mut params = Map::new();
        for (w, g) in want.iter().zip(&got) {
            match w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                Some(name) if !g.is_empty() => {
                    params.insert(name.to_owned(), json!(percent_decode(g)));
                }
                Some(_) => return None,
                None if w == g => {}
                None => return None,
            }
        }
        Some(params)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct Gateway {
    pub routes: Vec<Route>,
    pub api: Arc<RuntimeApi>,
    /// Who may call `iam` routes; none means every such call is refused.
    pub principal: Option<Principal>,
}

/// API Gateway's payload limit for HTTP APIs: a larger body is answered 413 by the gateway
/// itself, and no function is called.
pub const PAYLOAD_LIMIT: usize = 10 * 1024 * 1024;

pub fn router(gateway: Arc<Gateway>) -> Router {
    // The body is read whole and measured here, answered as the gateway answers it (axum's own
    // limit, 2 MB, would answer in its own words).
    Router::new().fallback(handle).with_state(gateway).layer(axum::extract::DefaultBodyLimit::disable())
}

async fn handle(
    State(gw): State<Arc<Gateway>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let Some((route, params)) = gw.routes.iter().find_map(|r| r.matches(&method, &path).map(|p| (r, p)))
    else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"message": "Not Found"}))).into_response();
    };
    if body.len() > PAYLOAD_LIMIT {
        let too_large = json!({"message": "Request Entity Too Large"});
        return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(too_large)).into_response();
    }
    if route.iam {
        let pairs: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("localhost");
        let url = format!("http://{host}{uri}");
        let verdict = match &gw.principal {
            Some(p) => sigv4::verify(p, method.as_str(), &url, &pairs, &body),
            None => Err("no principal is configured".into()),
        };
        if let Err(why) = verdict {
            return (StatusCode::FORBIDDEN, axum::Json(json!({"message": why}))).into_response();
        }
    }
    let mut header_map = Map::new();
    for (name, value) in &headers {
        let value = value.to_str().unwrap_or_default();
        match header_map.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(value);
            }
            _ => {
                header_map.insert(name.as_str().to_owned(), json!(value));
            }
        }
    }
    let (body_text, encoded) = match std::str::from_utf8(&body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(&body), true),
    };
    let route_key = format!("{} {}", route.method, route.path);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": uri.query().unwrap_or(""),
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "local",
            "http": {
                "method": method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": format!("local-{now}"),
            "routeKey": route_key,
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": now,
        },
        "pathParameters": params,
        "isBase64Encoded": encoded,
    });
    if !body.is_empty() {
        event["body"] = json!(body_text);
    }
    let answer = gw.api.invoke(&route.function, event.to_string().into_bytes()).await;
    match answer {
        Ok(bytes) => to_http(&bytes),
        Err(InvokeError::Timeout(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"message": "Service Unavailable"})))
                .into_response()
        }
        Err(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"message": "Internal Server Error"})))
                .into_response()
        }
    }
}

/// A payload-2.0 Lambda response as HTTP.
fn to_http(bytes: &[u8]) -> Response {
    let Ok(answer) = serde_json::from_slice::<Value>(bytes) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "unreadable function response").into_response();
    };
    let status = answer.get("statusCode").and_then(Value::as_u64).unwrap_or(200) as u16;
    let body = answer.get("body").and_then(Value::as_str).unwrap_or_default();
    let body = if answer.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false) {
        base64::engine::general_purpose::STANDARD.decode(body).unwrap_or_default()
    } else {
        body.as_bytes().to_vec()
    };
    let mut response = Response::builder().status(status);
    if let Some(headers) = answer.get("headers").and_then(Value::as_object) {
        for (k, v) in headers {
            if let Some(v) = v.as_str() {
                response = response.header(k, v);
            }
        }
    }
    response.body(Body::from(body)).unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_literal_segments_and_capture_parameters() {
        let r = Route {
            method: "POST".into(),
            path: "/api/hooks/{scoringId}/documents/upload-failed".into(),
            function: "f".into(),
            iam: false,
        };
        let p = r.matches(&Method::POST, "/api/hooks/abc-1/documents/upload-failed").unwrap();
        assert_eq!(p["scoringId"], "abc-1");
        assert!(r.matches(&Method::GET, "/api/hooks/abc-1/documents/upload-failed").is_none());
        assert!(r.matches(&Method::POST, "/api/hooks/abc-1/documents/upload-completed").is_none());
        assert!(r.matches(&Method::POST, "/api/hooks//documents/upload-failed").is_none());
        let p = r.matches(&Method::POST, "/api/hooks/a%2Fb/documents/upload-failed").unwrap();
        assert_eq!(p["scoringId"], "a/b", "decoded, as API Gateway does; the function must validate");
    }
}
