//! The published contract: poem-openapi renders an OpenAPI 3.0 document, which cannot say
//! what the server answers (a 3.0 document has no `webhooks`, and its fields cannot be
//! `null` without `nullable`). `finish` turns it, in this one place, into the OpenAPI 3.1
//! document that is committed, served at `/openapi.json` and rendered at `/docs`:
//!
//! - every field of a response object is always present; a value that is absent is `null`,
//!   so every property of a response schema is required, and those that may be absent are
//!   nullable (`type: [T, "null"]`, or `anyOf` with `{type: null}`);
//! - a request's optional field may be left out or sent as `null` (both mean "not given",
//!   or "clear it" where an update says so);
//! - every response names the headers it may carry (`Request-Id` always, `Retry-After` on
//!   429 and 503, the rate-limit headers wherever a limit was consulted); every operation
//!   with a body documents 415, and every operation 408 and 413 (the limits that apply to
//!   any request before it reaches its handler); 405 (with `Allow`) is a shared response;
//! - an event stream's schema is one event's, whose `data` carries an item as JSON;
//! - a list's `Pagination` argument is its three query parameters (`limit`,
//!   `starting_after`, `ending_before`);
//! - a path's id has its kind's pattern, and a list's `limit` its bounds.
//!
//! `Methods` answers a 405's `Allow` from the same document's paths, and `BodySchemas`
//! holds JSON request bodies to its types (poem-openapi reads a number or a boolean into
//! a `String`).

use serde_json::{json, Map, Value};

/// The problem document's schema, referenced by every error response.
const PROBLEM: &str = "#/components/schemas/Problem";

/// The finished 3.1 document (pretty JSON) from poem-openapi's rendering.
pub fn finish(spec: &str) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(spec) else {
        return spec.to_owned();
    };
    transform(&mut doc);
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| spec.to_owned())
}

fn transform(doc: &mut Value) {
    doc["openapi"] = json!("3.1.0");
    let responses = schemas_reached(doc, &["paths"], |key| key == "responses")
        .into_iter()
        .chain(schemas_reached(doc, &["webhooks"], |key| {
            key == "requestBody"
        }))
        .collect::<std::collections::HashSet<_>>();
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in schemas.iter_mut() {
            fix_object(schema, responses.contains(name));
        }
    }
    add_components(doc);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for op in item.values_mut() {
                fix_operation(op);
            }
        }
    }
    if let Some(text) = doc.pointer("/info/description").and_then(Value::as_str) {
        doc["info"]["description"] = json!(format!("{text}\n\n{CONTRACT_NOTES}"));
    }
}

/// What the reference says about the shape of every answer.
const CONTRACT_NOTES: &str = "**The shape of every answer.** Every field of a response \
object is always present: a value that is absent is `null`, never a missing field, and the \
schemas say so (every property required, nullable where it may be absent). In a request, an \
optional field may be left out or sent as `null`. Every error is a problem document \
(`application/problem+json`) whose `errors` is always present (`[]` when no field is at \
fault). A request with a body must send `Content-Type: application/json`, or it is answered \
`415` (`unsupported_media_type`). A method a path does not accept is answered `405` \
(`method_not_allowed`) with `Allow` listing the methods it does accept. `GET /` redirects \
to the console (`/console/`).";

/// Names of the component schemas reachable from the parts of `doc` under `root` whose key
/// `pick` accepts (and from the schemas those reach).
fn schemas_reached(doc: &Value, root: &[&str], pick: impl Fn(&str) -> bool) -> Vec<String> {
    fn refs(x: &Value, out: &mut Vec<String>) {
        match x {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    if let Some(name) = r.strip_prefix("#/components/schemas/") {
                        out.push(name.to_owned());
                    }
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    fn picked(x: &Value, pick: &dyn Fn(&str) -> bool, out: &mut Vec<String>) {
        match x {
            Value::Object(m) => {
                for (k, v) in m {
                    if pick(k) {
                        refs(v, out);
                    } else {
                        picked(v, pick, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| picked(v, pick, out)),
            _ => {}
        }
    }
    let mut start = doc;
    for key in root {
        start = &start[*key];
    }
    let mut todo = vec![];
    picked(start, &pick, &mut todo);
    let mut seen: Vec<String> = vec![];
    while let Some(name) = todo.pop() {
        if seen.contains(&name) {
            continue;
        }
        if let Some(schema) = doc.pointer(&format!("/components/schemas/{name}")) {
            refs(schema, &mut todo);
        }
        seen.push(name);
    }
    seen
}

/// A response object: every property required, those poem left optional nullable. A request
/// object: optional properties accept `null`.
fn fix_object(schema: &mut Value, response: bool) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let required: Vec<String> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    let names: Vec<String> = props.keys().cloned().collect();
    for (name, prop) in props.iter_mut() {
        if !required.contains(name) {
            *prop = nullable(std::mem::take(prop));
        }
    }
    if response {
        obj.insert("required".into(), json!(names));
    }
}

/// `schema`, or `null`.
fn nullable(mut schema: Value) -> Value {
    let Some(obj) = schema.as_object_mut() else {
        return schema;
    };
    if obj.is_empty() {
        return schema; // any value, null included
    }
    if let Some(Value::String(t)) = obj.get("type").cloned() {
        obj.insert("type".into(), json!([t, "null"]));
        if let Some(Value::Array(values)) = obj.get_mut("enum") {
            values.push(Value::Null);
        }
        return schema;
    }
    let mut outer = Map::new();
    for key in ["description", "title", "default", "example"] {
        if let Some(v) = obj.remove(key) {
            outer.insert(key.into(), v);
        }
    }
    outer.insert("anyOf".into(), json!([schema, {"type": "null"}]));
    Value::Object(outer)
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "headers": {"Request-Id": {"$ref": "#/components/headers/Request-Id"}},
        "content": {"application/problem+json": {"schema": {"$ref": PROBLEM}}}
    })
}

fn add_components(doc: &mut Value) {
    let header = |description: &str, schema: Value, required: bool| json!({"description": description, "required": required, "schema": schema});
    doc["components"]["headers"] = json!({
        "Request-Id": header("The id of this request: quote it when asking about it.", json!({"type": "string"}), true),
        "Retry-After": header("Seconds to wait before retrying.", json!({"type": "integer", "minimum": 1}), true),
        "RateLimit-Policy": header("The rate-limit policy consulted (`\"name\";q=quota;w=window seconds`).", json!({"type": "string"}), false),
        "RateLimit": header("What is left of that policy (`\"name\";r=remaining;t=seconds until reset`).", json!({"type": "string"}), false),
        "Allow": header("The methods this path accepts.", json!({"type": "string"}), true),
    });
    let mut not_allowed = problem_response(
        "The path does not accept this method (`method_not_allowed`); `Allow` lists those it does.",
    );
    not_allowed["headers"]["Allow"] = json!({"$ref": "#/components/headers/Allow"});
    doc["components"]["responses"] = json!({ "MethodNotAllowed": not_allowed });
}

/// An event stream's schema as OpenAPI 3.1 readers take it: the schema of one event (3.1
/// has no keyword for the whole stream), whose `data` is one item as JSON. poem-openapi
/// renders the stream as an array of items (`format: event-stream`), which a reader
/// validates each event against, and finds every event wrong.
fn describe_event(schema: &mut Value) {
    if schema.get("format").and_then(Value::as_str) != Some("event-stream") {
        return;
    }
    let item = schema.get("items").cloned().unwrap_or_else(|| json!({}));
    *schema = json!({
        "description": "One server-sent event of the stream (`text/event-stream`): its `event` \
            names the kind of item, and its `data` is the item as JSON.",
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": {"type": "string"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": item,
            },
            "id": {"type": "string"},
            "retry": {"type": "integer", "minimum": 0},
        },
    });
}

/// The kind of id a path parameter names, by its name.
fn id_kind(name: &str) -> Option<pushdial_core::ids::Kind> {
    use pushdial_core::ids::Kind;
    Some(match name {
        "agent_id" => Kind::Agent,
        "api_key_id" => Kind::Key,
        "blocked_number_id" => Kind::BlockedNumber,
        "call_id" => Kind::Call,
        "callback_id" => Kind::Callback,
        "device_id" => Kind::Device,
        "endpoint_id" => Kind::WebhookEndpoint,
        "event_id" => Kind::Event,
        "identity_id" => Kind::Identity,
        "invitation_id" => Kind::Invitation,
        "user_id" => Kind::User,
        "widget_id" => Kind::Widget,
        _ => return None,
    })
}

/// What the server checks of a parameter before anything else, stated: an id in a path is
/// its kind's prefix and 26 characters of Crockford's base 32 (`core::ids`; anything else
/// is `400 invalid_id`), and a list's `limit` is 1 to 100 (20 when left out).
fn describe_parameter(param: &mut Value) {
    let name = param["name"].as_str().unwrap_or_default().to_owned();
    let place = param["in"].as_str().unwrap_or_default().to_owned();
    let Some(schema) = param.get_mut("schema").and_then(Value::as_object_mut) else {
        return;
    };
    if place == "path" {
        if let Some(kind) = id_kind(&name) {
            schema.insert(
                "pattern".into(),
                json!(format!("^{}_[0-9a-hjkmnp-tv-z]{{26}}$", kind.prefix())),
            );
        }
    } else if place == "query" && name == "limit" {
        schema.insert("minimum".into(), json!(1));
        schema.insert("maximum".into(), json!(100));
        schema.insert("default".into(), json!(20));
    }
}

/// The three query parameters a list's `Pagination` argument takes, written in place of
/// the one marker parameter poem-openapi renders for it.
fn expand_pagination(params: &mut Vec<Value>) {
    let marked =
        |p: &Value| p["in"] == "query" && p["schema"]["format"] == crate::models::PAGINATION_MARKER;
    let Some(at) = params.iter().position(marked) else {
        return;
    };
    let query = |name: &str, schema: Value| {
        json!({"deprecated": false, "explode": true, "in": "query", "name": name,
            "required": false, "schema": schema})
    };
    let mut limit = query("limit", json!({"type": "integer", "format": "int64"}));
    limit["description"] = json!("1 to 100, default 20.");
    let three = [
        limit,
        query("starting_after", json!({"type": "string"})),
        query("ending_before", json!({"type": "string"})),
    ];
    params.splice(at..=at, three);
}

fn fix_operation(op: &mut Value) {
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        expand_pagination(params);
        params.iter_mut().for_each(describe_parameter);
    }
    let has_body = op.get("requestBody").is_some();
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    if has_body {
        responses.entry("415").or_insert_with(|| {
            problem_response(
                "The body is not JSON (`unsupported_media_type`): send `Content-Type: application/json`.",
            )
        });
    }
    responses.entry("408").or_insert_with(|| {
        problem_response("The request's body did not arrive in time (`request_timeout`).")
    });
    responses.entry("413").or_insert_with(|| {
        problem_response("The request's body is over 64 KiB (`payload_too_large`).")
    });
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else {
            continue;
        };
        if let Some(stream) = response
            .get_mut("content")
            .and_then(|c| c.pointer_mut("/text~1event-stream/schema"))
        {
            describe_event(stream);
        }
        let headers = response
            .entry("headers")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        let Some(headers) = headers else {
            continue;
        };
        let mut names = vec!["Request-Id", "RateLimit-Policy", "RateLimit"];
        if status == "429" || status == "503" {
            names.push("Retry-After");
        }
        for name in names {
            headers
                .entry(name)
                .or_insert_with(|| json!({"$ref": format!("#/components/headers/{name}")}));
        }
    }
}

/// Path templates of the document with the methods each accepts, for `Allow`.
#[derive(Debug, Default)]
pub struct Methods(Vec<(Vec<String>, String)>);

impl Methods {
    /// From the document's `paths`, and the plain routes served beside the API.
    pub fn new(spec: &Value, plain: &[(&str, &str)]) -> Methods {
        let mut out = vec![];
        if let Some(paths) = spec.get("paths").and_then(Value::as_object) {
            for (path, item) in paths {
                let mut methods: Vec<String> = item
                    .as_object()
                    .map(|m| {
                        m.keys()
                            .filter(|k| {
                                matches!(k.as_str(), "get" | "put" | "post" | "delete" | "patch")
                            })
                            .map(|k| k.to_uppercase())
                            .collect()
                    })
                    .unwrap_or_default();
                if methods.iter().any(|m| m == "GET") {
                    // poem answers HEAD wherever it answers GET.
                    methods.push("HEAD".into());
                }
                if path.starts_with("/widget/v1/") {
                    // The widget's CORS preflight.
                    methods.push("OPTIONS".into());
                }
                methods.sort();
                out.push((segments(path), methods.join(", ")));
            }
        }
        for (path, methods) in plain {
            out.push((segments(path), (*methods).to_owned()));
        }
        Methods(out)
    }

    /// The methods the route matching `path` accepts, if it is one of ours.
    pub fn allowed(&self, path: &str) -> Option<&str> {
        best_match(self.0.iter(), path).map(|(_, methods)| methods.as_str())
    }
}

/// The entry whose path template `path` matches; a literal segment wins over a parameter
/// (`/v1/invitations/accept` over `/v1/invitations/{id}`).
fn best_match<'a, T>(
    entries: impl Iterator<Item = &'a (Vec<String>, T)>,
    path: &str,
) -> Option<&'a (Vec<String>, T)> {
    let given: Vec<&str> = path.split('/').collect();
    entries
        .filter(|(template, _)| {
            template.len() == given.len()
                && template
                    .iter()
                    .zip(&given)
                    .all(|(t, g)| t == g || (t.starts_with('{') && !g.is_empty()))
        })
        .max_by_key(|(template, _)| template.iter().filter(|t| !t.starts_with('{')).count())
}

/// Gives every 405 the `Allow` header RFC 9110 requires: the methods of the route, from
/// the same table as the document.
pub struct AllowHeader(pub std::sync::Arc<Methods>);

impl<E: poem::Endpoint> poem::Middleware<E> for AllowHeader {
    type Output = AllowHeaderEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        AllowHeaderEndpoint {
            inner,
            methods: self.0.clone(),
        }
    }
}

pub struct AllowHeaderEndpoint<E> {
    inner: E,
    methods: std::sync::Arc<Methods>,
}

impl<E: poem::Endpoint> poem::Endpoint for AllowHeaderEndpoint<E> {
    type Output = poem::Response;

    async fn call(&self, req: poem::Request) -> poem::Result<poem::Response> {
        use poem::IntoResponse;
        let path = req.uri().path().to_owned();
        // A method the route does not accept is refused here, from the document, before
        // anything behind the route (the widget's gate looks up its key or callback first)
        // answers it in its own way.
        let allowed = self.methods.allowed(&path);
        if let Some(allowed) = allowed {
            let method = req.method().as_str();
            if !allowed.split(", ").any(|m| m == method) {
                let mut resp =
                    crate::problem::catch_all(poem::error::MethodNotAllowedError.into()).await;
                if let Ok(v) = poem::http::HeaderValue::from_str(allowed) {
                    resp.headers_mut().insert(poem::http::header::ALLOW, v);
                }
                return Ok(resp);
            }
        }
        let mut resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) if e.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED => {
                crate::problem::catch_all(e).await
            }
            Err(e) => return Err(e),
        };
        if resp.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED
            && !resp.headers().contains_key(poem::http::header::ALLOW)
        {
            if let Some(v) = allowed.and_then(|m| poem::http::HeaderValue::from_str(m).ok()) {
                resp.headers_mut().insert(poem::http::header::ALLOW, v);
            }
        }
        Ok(resp)
    }
}

type MethodSchemas = Vec<(String, Value)>;

/// The JSON request bodies' schemas by path template and method, to hold bodies to the
/// document's primitive types: poem-openapi reads a number or a boolean into a `String`
/// field (`{"name": false}` would name an agent "false"), which the document, saying
/// `string`, does not allow. One check, from the document, for every operation.
#[derive(Debug, Default)]
pub struct BodySchemas {
    /// Path template, and each method's body schema.
    routes: Vec<(Vec<String>, MethodSchemas)>,
    schemas: Value,
}

impl BodySchemas {
    pub fn new(spec: &Value) -> BodySchemas {
        let mut routes = vec![];
        if let Some(paths) = spec.get("paths").and_then(Value::as_object) {
            for (path, item) in paths {
                let Some(item) = item.as_object() else {
                    continue;
                };
                let bodies: Vec<(String, Value)> = item
                    .iter()
                    .filter_map(|(method, op)| {
                        // `application/json; charset=utf-8`, as poem-openapi writes it.
                        let (_, media) = op
                            .pointer("/requestBody/content")?
                            .as_object()?
                            .iter()
                            .find(|(media, _)| media.starts_with("application/json"))?;
                        Some((method.to_uppercase(), media.get("schema")?.clone()))
                    })
                    .collect();
                if !bodies.is_empty() {
                    routes.push((segments(path), bodies));
                }
            }
        }
        BodySchemas {
            routes,
            schemas: spec
                .pointer("/components/schemas")
                .cloned()
                .unwrap_or_default(),
        }
    }

    fn schema(&self, method: &str, path: &str) -> Option<&Value> {
        let (_, bodies) = best_match(self.routes.iter(), path)?;
        bodies.iter().find(|(m, _)| m == method).map(|(_, s)| s)
    }

    /// Where `value` holds a number or a boolean that `schema` says is a string, as a JSON
    /// path (`name`, `metadata.plan`, `origins[2]`), and what it holds.
    fn mistyped(&self, schema: &Value, value: &Value, at: &str, depth: usize) -> Option<String> {
        if depth > 32 {
            return None;
        }
        if let Some(name) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
        {
            return self.mistyped(self.schemas.get(name)?, value, at, depth + 1);
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            let parts = schema.get(key).and_then(Value::as_array);
            // A choice that admits a number or a boolean itself is not this check's to refuse.
            let admits_other = |t: &Value| {
                matches!(t.as_str(), Some("number" | "integer" | "boolean"))
                    || t.as_array().is_some_and(|ts| {
                        ts.iter()
                            .any(|t| matches!(t.as_str(), Some("number" | "integer" | "boolean")))
                    })
            };
            if key != "allOf"
                && parts
                    .is_some_and(|ps| ps.iter().any(|p| p.get("type").is_some_and(admits_other)))
            {
                continue;
            }
            for part in parts.into_iter().flatten() {
                if let Some(found) = self.mistyped(part, value, at, depth + 1) {
                    return Some(found);
                }
            }
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        match value {
            Value::Bool(_) | Value::Number(_)
                if types.contains(&"string")
                    && !types
                        .iter()
                        .any(|t| matches!(*t, "number" | "integer" | "boolean")) =>
            {
                Some(format!("`{at}` must be a string, not {value}"))
            }
            Value::Object(fields) => fields.iter().find_map(|(name, v)| {
                let inner = schema
                    .pointer(&format!(
                        "/properties/{}",
                        name.replace('~', "~0").replace('/', "~1")
                    ))
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))?;
                let at = if at.is_empty() {
                    name.clone()
                } else {
                    format!("{at}.{name}")
                };
                self.mistyped(inner, v, &at, depth + 1)
            }),
            Value::Array(items) => {
                let inner = schema.get("items")?;
                items
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| self.mistyped(inner, v, &format!("{at}[{i}]"), depth + 1))
            }
            _ => None,
        }
    }
}

/// Refuses a JSON body whose number or boolean stands where the document says string,
/// with the `400 invalid_request_body` a body of the wrong type gets.
pub struct StrictBodies(pub std::sync::Arc<BodySchemas>);

impl<E: poem::Endpoint> poem::Middleware<E> for StrictBodies {
    type Output = StrictBodiesEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        StrictBodiesEndpoint {
            inner,
            schemas: self.0.clone(),
        }
    }
}

pub struct StrictBodiesEndpoint<E> {
    inner: E,
    schemas: std::sync::Arc<BodySchemas>,
}

impl<E: poem::Endpoint> poem::Endpoint for StrictBodiesEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: poem::Request) -> poem::Result<Self::Output> {
        let json = req
            .content_type()
            .is_some_and(|t| t.trim_start().starts_with("application/json"));
        let schema = if json {
            self.schemas.schema(req.method().as_str(), req.uri().path())
        } else {
            None
        };
        if let Some(schema) = schema {
            // The pipeline has read the body already (bounded); this takes it from memory.
            let bytes = req.take_body().into_bytes().await?;
            if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
                if let Some(detail) = self.schemas.mistyped(schema, &value, "", 0) {
                    let problem = crate::problem::Problem::new(400, "invalid_request_body", detail);
                    return Err(poem::Error::from_response(problem.into_poem()));
                }
            }
            req.set_body(bytes);
        }
        self.inner.call(req).await
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split('/').map(str::to_owned).collect()
}

/// One answer of the api as it leaves the process, for an observer that checks it against
/// the document (the test harness does, for every answer of every test).
pub struct Observed<'a> {
    /// The listener's address: which server answered.
    pub local: String,
    pub method: &'a poem::http::Method,
    pub path: &'a str,
    pub status: u16,
    pub headers: &'a poem::http::HeaderMap,
    /// The body, when it is JSON (streams, pages and files are not read).
    pub body: Option<&'a [u8]>,
}

/// What observes every answer.
pub type Observer = std::sync::Arc<dyn Fn(&Observed<'_>) + Send + Sync>;

static OBSERVER: std::sync::OnceLock<Observer> = std::sync::OnceLock::new();

/// Installs the process's observer (once; later calls are ignored). Without one, answers
/// pass untouched.
pub fn set_observer(observer: Observer) {
    let _ = OBSERVER.set(observer);
}

/// Shows every answer to the observer, if one is installed.
pub struct Observe;

impl<E: poem::Endpoint> poem::Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ObserveEndpoint { inner }
    }
}

pub struct ObserveEndpoint<E> {
    inner: E,
}

impl<E: poem::Endpoint> poem::Endpoint for ObserveEndpoint<E> {
    type Output = poem::Response;

    async fn call(&self, req: poem::Request) -> poem::Result<poem::Response> {
        use poem::IntoResponse;
        let Some(observer) = OBSERVER.get() else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let local = req
            .local_addr()
            .as_socket_addr()
            .map(ToString::to_string)
            .unwrap_or_default();
        let mut resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let json = resp
            .headers()
            .get(poem::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        let body = if json {
            let bytes = resp.take_body().into_bytes().await.unwrap_or_default();
            resp.set_body(bytes.clone());
            Some(bytes)
        } else {
            None
        };
        observer(&Observed {
            local,
            method: &method,
            path: &path,
            status: resp.status().as_u16(),
            headers: resp.headers(),
            body: body.as_deref(),
        });
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn schemas() -> BodySchemas {
        BodySchemas::new(&json!({
            "paths": {"/v1/things/{id}": {"post": {"requestBody": {"content": {
                "application/json; charset=utf-8": {"schema": {"$ref": "#/components/schemas/Thing"}}
            }}}}},
            "components": {"schemas": {"Thing": {"type": "object", "properties": {
                "name": {"type": ["string", "null"]},
                "count": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "label": {"anyOf": [{"type": "string"}, {"type": "null"}]}
            }}}}
        }))
    }

    fn check(body: Value) -> Option<String> {
        let s = schemas();
        let schema = s.schema("POST", "/v1/things/thg_1").unwrap().clone();
        s.mistyped(&schema, &body, "", 0)
    }

    #[test]
    fn numbers_and_booleans_are_refused_only_where_the_document_says_string() {
        assert_eq!(
            check(json!({"name": "a", "count": 3, "tags": ["x"], "label": null})),
            None
        );
        assert_eq!(check(json!({"either": 5, "metadata": {"k": "v"}})), None);
        assert!(check(json!({"name": false})).unwrap().contains("`name`"));
        assert!(check(json!({"tags": ["x", 2]}))
            .unwrap()
            .contains("`tags[1]`"));
        assert!(check(json!({"metadata": {"k": true}}))
            .unwrap()
            .contains("`metadata.k`"));
        assert!(check(json!({"label": 1.5})).unwrap().contains("`label`"));
        assert!(schemas().schema("GET", "/v1/things/thg_1").is_none());
    }
}
