//! Attacks of issue 17 (tenancy), each kept as a test written as the attack.
//!
//! Hole 9: the database did not enforce tenancy. Foreign keys named the parent's `id` only,
//! so a row of one organization could point at another organization's agent, call, device
//! or webhook endpoint — a bug in one query away from a tenant's call reaching another's
//! phone. Every such key is now `(org_id, parent_id) references parent (org_id, id)`.

use pushdial_sdk::CreateCall;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::*;

/// Inserts a copy of one row of `table` (the one whose `key` column is `value`), with
/// `patch` applied to its columns, in a transaction that is rolled back: the database's
/// answer to the insert.
async fn insert_copy(
    app: &TestApp,
    table: &str,
    key: &str,
    value: &str,
    patch: Value,
) -> Result<(), sqlx::Error> {
    // Every column the insert may set (identity and generated ones are the database's).
    let columns: String = sqlx::query_scalar(
        "select string_agg(quote_ident(column_name::text), ', ' order by ordinal_position)
         from information_schema.columns
         where table_schema = 'public' and table_name = $1
           and is_identity = 'NO' and is_generated = 'NEVER'",
    )
    .bind(table)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let mut tx = app.db.begin().await.unwrap();
    let done = sqlx::query(&format!(
        "insert into {table} ({columns})
         select {columns} from jsonb_populate_record(null::{table},
             (select to_jsonb(t) from {table} t where {key}::text = $1) || $2::jsonb)"
    ))
    .bind(value)
    .bind(patch)
    .execute(&mut *tx)
    .await;
    tx.rollback().await.unwrap();
    done.map(|_| ())
}

fn is_foreign_key_violation(result: &Result<(), sqlx::Error>, constraint: &str) -> bool {
    match result {
        Err(sqlx::Error::Database(e)) => {
            e.code().as_deref() == Some("23503") && e.constraint() == Some(constraint)
        }
        _ => false,
    }
}

/// Ids of one organization's rows: its agent, device, call and webhook endpoint.
struct Tenant {
    agent: String,
    device: String,
    call: String,
    endpoint: String,
    _stream: pushdial_sdk::Stream,
}

async fn tenant(app: &TestApp, org: &pushdial_core::tenants::NewOrg) -> Tenant {
    let client = app.client_for(org);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/webhook_endpoints", app.url))
        .bearer_auth(&org.secret_key)
        .json(&json!({ "url": "https://example.com/hook" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let endpoint: Value = r.json().await.unwrap();
    let (agent, device, device_id) = app.agent_with_device(&client, "Ann").await;
    let stream = live_stream(&device).await;
    let call = client
        .create_call(&CreateCall::for_agent("+14155550123", &agent), None)
        .await
        .unwrap();
    Tenant {
        agent,
        device: device_id,
        call: call.id,
        endpoint: endpoint["id"].as_str().unwrap().to_owned(),
        _stream: stream,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_cannot_reference_another_organizations_parent() {
    let app = TestApp::spawn().await;
    let ours = tenant(&app, &app.org).await;
    let other = app.other_org().await;
    let theirs = tenant(&app, &other).await;
    let message: String = eventually(
        std::time::Duration::from_secs(10),
        "a webhook message of our endpoint",
        || async {
            sqlx::query_scalar::<_, i64>(
                "select id from webhook_messages where endpoint_id = $1 limit 1",
            )
            .bind(&ours.endpoint)
            .fetch_optional(&app.db)
            .await
            .unwrap()
            .map(|id| id.to_string())
        },
    )
    .await;
    let event: String = sqlx::query_scalar("select id from call_events where call_id = $1 limit 1")
        .bind(&ours.call)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let messages = |endpoint: String| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from webhook_messages where endpoint_id = $1",
            )
            .bind(endpoint)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    let their_messages = messages(theirs.endpoint.clone()).await;

    // (child table, its key column, our row, the reference, our parent, their parent, the
    // foreign key, columns to change so that the copy is otherwise a valid row)
    let cases = [
        (
            "calls",
            "id",
            ours.call.clone(),
            "agent_id",
            ours.agent.clone(),
            theirs.agent.clone(),
            "calls_agent_id_fkey",
            json!({"id": "call_00000000000000000000000001"}),
        ),
        (
            "calls",
            "id",
            ours.call.clone(),
            "device_id",
            ours.device.clone(),
            theirs.device.clone(),
            "calls_device_id_fkey",
            json!({"id": "call_00000000000000000000000002"}),
        ),
        (
            "devices",
            "id",
            ours.device.clone(),
            "agent_id",
            ours.agent.clone(),
            theirs.agent.clone(),
            "devices_agent_id_fkey",
            json!({"id": "dev_00000000000000000000000001", "token_hash": "\\x00ff"}),
        ),
        (
            "call_events",
            "id",
            event,
            "call_id",
            ours.call.clone(),
            theirs.call.clone(),
            "call_events_call_id_fkey",
            json!({"id": "evt_00000000000000000000000001"}),
        ),
        (
            "webhook_messages",
            "id",
            message,
            "endpoint_id",
            ours.endpoint.clone(),
            theirs.endpoint.clone(),
            "webhook_messages_endpoint_id_fkey",
            json!({}),
        ),
    ];
    for (table, key, row, column, our_parent, their_parent, constraint, base) in cases {
        let with = |parent: &str| {
            let mut patch = base.clone();
            patch[column] = json!(parent);
            patch
        };
        // The copy pointing at our own parent is a valid row: the refusal below is about
        // the tenancy of the reference, nothing else.
        let own = insert_copy(&app, table, key, &row, with(&our_parent)).await;
        assert!(own.is_ok(), "{table}.{column} → ours: {own:?}");
        // The attack: the same row, pointing at the other organization's parent.
        let cross = insert_copy(&app, table, key, &row, with(&their_parent)).await;
        assert!(
            is_foreign_key_violation(&cross, constraint),
            "{table}.{column} → another organization's: {cross:?}"
        );
    }
    // Nothing stored: no copy, and the other organization's endpoint has no message more.
    let copies: i64 = sqlx::query_scalar(
        "select (select count(*) from calls where id like 'call_0000000000000000000000000%')
              + (select count(*) from devices where id = 'dev_00000000000000000000000001')
              + (select count(*) from call_events where id = 'evt_00000000000000000000000001')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(copies, 0);
    assert_eq!(messages(theirs.endpoint.clone()).await, their_messages);
    // And the organizations still see only their own.
    let (status, _) = app
        .api(Method::GET, &format!("/v1/calls/{}", theirs.call), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_foreign_key_between_tenant_tables_includes_org_id() {
    let app = TestApp::spawn().await;
    // Each foreign key from a table with org_id to another table with org_id, with the
    // pairs of columns it matches (child = parent).
    let keys: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "select c.conrelid::regclass::text, c.conname::text,
                array(select ca.attname::text || ' = ' || pa.attname::text
                      from unnest(c.conkey, c.confkey) as k(child, parent)
                      join pg_attribute ca on ca.attrelid = c.conrelid and ca.attnum = k.child
                      join pg_attribute pa on pa.attrelid = c.confrelid and pa.attnum = k.parent)
         from pg_constraint c
         where c.contype = 'f'
           and c.connamespace = 'public'::regnamespace
           and exists (select 1 from pg_attribute a where a.attrelid = c.conrelid
                         and a.attname = 'org_id' and not a.attisdropped)
           and exists (select 1 from pg_attribute a where a.attrelid = c.confrelid
                         and a.attname = 'org_id' and not a.attisdropped)
         order by 1, 2",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let missing: Vec<String> = keys
        .iter()
        .filter(|(_, _, pairs)| !pairs.iter().any(|p| p == "org_id = org_id"))
        .map(|(table, name, pairs)| format!("{table}.{name} ({})", pairs.join(", ")))
        .collect();
    assert!(
        missing.is_empty(),
        "foreign keys that let a row reference another organization's: {missing:?}"
    );
    // Not a vacuous pass: the tenant tables do reference one another.
    assert!(keys.len() >= 14, "{keys:?}");
}
