//! The `pushdial` binary: bootstrap of an organization, migrations, help.

use std::process::Command;

use crate::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_pushdial");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_org_prints_one_json_object_whose_keys_work() {
    let app = TestApp::spawn().await;
    let out = Command::new(BIN)
        .args([
            "admin",
            "create-org",
            "--name",
            "Bootstrap Inc",
            "--country",
            "gb",
        ])
        .env("DATABASE_URL", &app.database_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let org: serde_json::Value =
        serde_json::from_str(stdout.trim()).expect("exactly one JSON object on stdout");
    assert_eq!(stdout.trim().lines().count(), 1);
    assert!(org["org_id"].as_str().unwrap().starts_with("org_"));
    let sk = org["secret_key"].as_str().unwrap();
    assert!(sk.starts_with("pd_sk_"));
    assert!(org["publishable_key"]
        .as_str()
        .unwrap()
        .starts_with("pd_pk_"));
    let client = pushdial_sdk::Client::new(&app.url, sk).unwrap();
    let agent = client.create_agent("First agent", None).await.unwrap();
    let org_json: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/organization", app.url))
        .bearer_auth(sk)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(org_json["country"], "GB");
    assert_eq!(
        org_json["dialing"]["allowed_countries"],
        serde_json::json!(["GB"])
    );
    assert_eq!(client.list_agents().await.unwrap().data[0].id, agent.id);

    // Plan limits, shown in the rate-limit headers.
    let out = Command::new(BIN)
        .args([
            "admin",
            "set-limits",
            "--org",
            org["org_id"].as_str().unwrap(),
            "--api-per-second",
            "7",
        ])
        .env("DATABASE_URL", &app.database_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/agents", app.url))
        .bearer_auth(sk)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["ratelimit-policy"], "\"org\";q=7;w=1");
    let missing = Command::new(BIN)
        .args([
            "admin",
            "set-limits",
            "--org",
            "org_missing",
            "--api-per-second",
            "7",
        ])
        .env("DATABASE_URL", &app.database_url)
        .output()
        .unwrap();
    assert!(!missing.status.success());

    let bad = Command::new(BIN)
        .args(["admin", "create-org", "--name", " "])
        .env("DATABASE_URL", &app.database_url)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(bad.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_sets_up_an_empty_database() {
    let admin_url = format!("{}/postgres", server_url());
    let name = format!("pushdial_test_mig{:x}", rand::random::<u32>());
    let pool = sqlx::PgPool::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("create database {name}"))
        .execute(&pool)
        .await
        .unwrap();
    let url = format!("{}/{name}", server_url());
    for _ in 0..2 {
        let out = Command::new(BIN)
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    let tables: i64 = sqlx::query_scalar("select count(*) from information_schema.tables where table_name in ('calls', 'jobs', 'devices')")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(tables, 3);
}

#[test]
fn help_lists_every_setting() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "PUSHDIAL_LISTEN",
        "PUSHDIAL_PUBLIC_URL",
        "PUSHDIAL_OFFER_TIMEOUT",
        "PUSHDIAL_PRESENCE_WINDOW",
        "PUSHDIAL_CALL_EXPIRES_IN",
    ] {
        assert!(help.contains(var), "--help mentions {var}");
    }
    for cmd in ["serve", "api", "worker", "migrate", "admin"] {
        assert!(help.contains(cmd), "--help lists {cmd}");
    }
}
