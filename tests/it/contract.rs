//! Every answer of every test is checked against the published OpenAPI document: the
//! api shows each answer it sends to an observer (`pushdial_api::contract::set_observer`),
//! this module finds its operation (method + path template), its response (status, or
//! `default`), checks the headers that matter and validates the JSON body with a JSON
//! Schema (draft 2020-12) validator. Mismatches are kept per server address; a `TestApp`
//! fails its test when it is dropped with any (`PUSHDIAL_CONTRACT=report` only prints
//! them, to survey a whole suite).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{json, Value};

/// The document the code publishes (equal to the committed one: `committed_openapi`).
pub static DOC: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(&pushdial_api::openapi_json()).expect("the document is JSON")
});

/// Headers whose presence the document must declare.
const HEADERS_THAT_MATTER: &[&str] = &[
    "request-id",
    "retry-after",
    "ratelimit-policy",
    "ratelimit",
    "location",
    "allow",
];

static VALIDATORS: LazyLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> =
    LazyLock::new(Default::default);

/// Mismatches seen, by the address of the server that answered.
static MISMATCHES: LazyLock<Mutex<Vec<(String, String)>>> = LazyLock::new(Default::default);

/// How many answers were checked in this process.
pub static CHECKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Installs the observer in this process (once).
pub fn install() {
    pushdial_api::contract::set_observer(Arc::new(|seen| {
        CHECKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(path) = std::env::var("PUSHDIAL_CONTRACT_COVERAGE") {
            let tpl = template(seen.path).unwrap_or_else(|| "-".into());
            append(&path, &format!("{} {tpl} {}", seen.method, seen.status));
        }
        let found = check(
            seen.method.as_str(),
            seen.path,
            seen.status,
            seen.headers,
            seen.body,
        );
        if found.is_empty() {
            return;
        }
        let mut all = MISMATCHES.lock().unwrap_or_else(|e| e.into_inner());
        for m in found {
            if !enforced() {
                report(&m);
            }
            all.push((seen.local.clone(), m));
        }
    }));
}

/// Checks a webhook delivery's body against the document's `webhooks` section (its `type`
/// names the webhook); mismatches count against the test like the api's answers.
pub fn check_webhook(body: &[u8]) {
    let found = match serde_json::from_slice::<Value>(body) {
        Err(e) => vec![format!("webhook body is not JSON: {e}")],
        Ok(v) => {
            let kind = v["type"].as_str().unwrap_or_default().to_owned();
            let content = &DOC["webhooks"][&kind]["post"]["requestBody"]["content"];
            match content.as_object().and_then(|c| c.keys().next()) {
                None => vec![format!("webhook {kind:?} is not in the document")],
                Some(media) => {
                    let pointer = format!(
                        "/webhooks/{}/post/requestBody/content/{}/schema",
                        escape(&kind),
                        escape(media)
                    );
                    validate(&pointer, &v)
                        .err()
                        .map(|e| format!("webhook {kind}: {e}"))
                        .into_iter()
                        .collect()
                }
            }
        }
    };
    let mut all = MISMATCHES.lock().unwrap_or_else(|e| e.into_inner());
    for m in found {
        if !enforced() {
            report(&m);
        }
        all.push((WEBHOOKS.to_owned(), m));
    }
}

/// The "address" under which webhook deliveries' mismatches are kept.
pub const WEBHOOKS: &str = "webhooks";

/// Takes the mismatches of the servers at `addrs` (`127.0.0.1:port`), or of all servers.
pub fn take_mismatches(addrs: Option<&[String]>) -> Vec<String> {
    let mut all = MISMATCHES.lock().unwrap_or_else(|e| e.into_inner());
    let (mine, others): (Vec<_>, Vec<_>) = all
        .drain(..)
        .partition(|(a, _)| addrs.is_none_or(|addrs| addrs.contains(a)));
    *all = others;
    mine.into_iter().map(|(_, m)| m).collect()
}

/// Appends a mismatch to `PUSHDIAL_CONTRACT_FILE` (a survey of the suite: nextest keeps a
/// passing test's output to itself).
fn report(mismatch: &str) {
    let path = std::env::var("PUSHDIAL_CONTRACT_FILE")
        .unwrap_or_else(|_| "target/contract-mismatches.txt".into());
    append(&path, mismatch);
}

fn append(path: &str, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Whether mismatches fail the test (the default) or are only printed.
pub fn enforced() -> bool {
    std::env::var("PUSHDIAL_CONTRACT").map_or(true, |v| v != "report")
}

/// The path template of the document that `path` matches (a literal segment wins over a
/// parameter).
pub fn template(path: &str) -> Option<String> {
    let given: Vec<&str> = path.split('/').collect();
    DOC["paths"]
        .as_object()?
        .keys()
        .filter(|t| {
            let t: Vec<&str> = t.split('/').collect();
            t.len() == given.len()
                && t.iter()
                    .zip(&given)
                    .all(|(t, g)| t == g || (t.starts_with('{') && !g.is_empty()))
        })
        .max_by_key(|t| t.split('/').filter(|s| !s.starts_with('{')).count())
        .cloned()
}

fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Follows a `$ref` within the document.
fn resolve(v: &Value) -> &Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => DOC
            .pointer(r.trim_start_matches('#'))
            .unwrap_or(&Value::Null),
        None => v,
    }
}

/// Validates `instance` against the schema at `pointer` (a JSON pointer into the document).
pub fn validate(pointer: &str, instance: &Value) -> Result<(), String> {
    let validator = {
        let mut cache = VALIDATORS.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(pointer) {
            Some(v) => v.clone(),
            None => {
                let schema = json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "$ref": "#/target",
                    "target": DOC.pointer(pointer).cloned().unwrap_or(Value::Null),
                    "components": {"schemas": DOC["components"]["schemas"].clone()},
                });
                let v = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .should_validate_formats(true)
                    .build(&schema)
                    .map_err(|e| format!("schema at {pointer} does not compile: {e}"))?;
                let v = Arc::new(v);
                cache.insert(pointer.to_owned(), v.clone());
                v
            }
        }
    };
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

/// What in one answer the document does not allow (empty when it all agrees).
pub fn check(
    method: &str,
    path: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: Option<&[u8]>,
) -> Vec<String> {
    let what = format!("{method} {path} → {status}");
    let mut out = vec![];
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(tpl) = template(path) else {
        // Not an operation of the document (pages, files, health, sign-in): its problem
        // documents still have the one shape.
        if media_type(content_type) == "application/problem+json" {
            if let Some(body) = body {
                match serde_json::from_slice::<Value>(body) {
                    Ok(v) => {
                        if let Err(e) = validate("/components/schemas/Problem", &v) {
                            out.push(format!("{what}: problem document: {e}"));
                        }
                    }
                    Err(e) => out.push(format!("{what}: problem body is not JSON: {e}")),
                }
            }
        }
        return out;
    };
    let op_method = if method == "HEAD" {
        "get".to_owned()
    } else {
        method.to_lowercase()
    };
    let op_pointer = format!("/paths/{}/{}", escape(&tpl), op_method);
    let (response, response_pointer) = match DOC.pointer(&op_pointer) {
        Some(op) => {
            let key = status.to_string();
            let key = if op["responses"].get(&key).is_some() {
                key
            } else if op["responses"].get("default").is_some() {
                "default".to_owned()
            } else {
                out.push(format!(
                    "{what}: status {status} is not documented for {method} {tpl}"
                ));
                return out;
            };
            let pointer = format!("{op_pointer}/responses/{key}");
            (&op["responses"][&key], pointer)
        }
        None if method == "OPTIONS" && tpl.starts_with("/widget/v1/") => return out, // CORS
        None if status == 405 => (
            &DOC["components"]["responses"]["MethodNotAllowed"],
            "/components/responses/MethodNotAllowed".to_owned(),
        ),
        None => {
            out.push(format!(
                "{what}: {method} {tpl} is not in the document, yet answered {status}"
            ));
            return out;
        }
    };
    let (response, response_pointer) = match response.get("$ref").and_then(Value::as_str) {
        Some(r) => (resolve(response), r.trim_start_matches('#').to_owned()),
        None => (response, response_pointer),
    };
    // Headers.
    let documented: HashMap<String, &Value> = response["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.to_lowercase(), resolve(v)))
                .collect()
        })
        .unwrap_or_default();
    for (name, spec) in &documented {
        match headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            None if spec["required"] == true => {
                out.push(format!("{what}: required header {name} is missing"));
            }
            None => {}
            Some(value) => {
                let ok = match spec["schema"]["type"].as_str() {
                    Some("integer") => value.parse::<i64>().is_ok_and(|n| {
                        spec["schema"]["minimum"]
                            .as_i64()
                            .is_none_or(|min| n >= min)
                    }),
                    _ => !value.is_empty(),
                };
                if !ok {
                    out.push(format!(
                        "{what}: header {name}: {value:?} does not match its schema"
                    ));
                }
            }
        }
    }
    for name in HEADERS_THAT_MATTER {
        if headers.contains_key(*name) && !documented.contains_key(*name) {
            out.push(format!("{what}: header {name} is sent but not documented"));
        }
    }
    if status == 405 {
        let allow = headers
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mut expected: Vec<String> = DOC["paths"][&tpl]
            .as_object()
            .map(|m| m.keys().map(|k| k.to_uppercase()).collect())
            .unwrap_or_default();
        if expected.iter().any(|m| m == "GET") {
            expected.push("HEAD".into());
        }
        if tpl.starts_with("/widget/v1/") {
            expected.push("OPTIONS".into());
        }
        expected.sort();
        let mut given: Vec<String> = allow.split(',').map(|m| m.trim().to_owned()).collect();
        given.sort();
        if given != expected {
            out.push(format!(
                "{what}: Allow {allow:?}, the document's path accepts {expected:?}"
            ));
        }
    }
    // Body.
    let content = response["content"].as_object();
    let Some(content) = content else {
        if body.is_some_and(|b| !b.is_empty()) {
            out.push(format!(
                "{what}: a body is sent where the document has none"
            ));
        }
        return out;
    };
    if method == "HEAD" {
        return out;
    }
    let Some((media, _)) = content
        .iter()
        .find(|(k, _)| media_type(k) == media_type(content_type))
    else {
        out.push(format!(
            "{what}: content type {content_type:?} is not documented (the document has {:?})",
            content.keys().collect::<Vec<_>>()
        ));
        return out;
    };
    let Some(body) = body else {
        return out; // a stream, not read
    };
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            out.push(format!("{what}: body is not JSON: {e}"));
            return out;
        }
    };
    let pointer = format!("{response_pointer}/content/{}/schema", escape(media));
    if let Err(e) = validate(&pointer, &value) {
        out.push(format!("{what}: {e}"));
    }
    out
}
