//! The TypeScript SDK (`sdk/ts`) end to end: its test suite (`npm test` there: the tests'
//! typecheck, then vitest over `sdk/ts/test/`) runs under Node against a real pushdial
//! with what it needs prepared here: an agent whose phone (the reference agent) answers,
//! a second organization with a tiny rate limit to be refused by, and loopback allowed as
//! a webhook destination so that the suite's own receiver gets signed deliveries.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use pushdial_sdk::agent::RunOptions;

use crate::harness::*;

/// Numbers ending in this are asked about for a while, then declined: calls to them stay
/// cancelable long enough for the suite to cancel them.
const SLOW_SUFFIX: &str = "99";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_suite_passes_against_a_real_server() {
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/ts");
    assert!(
        sdk.join("node_modules/vitest").is_dir(),
        "sdk/ts's npm packages are missing: ./scripts/test installs them (or `npm ci` in sdk/ts)"
    );
    let app = TestApp::spawn_tuned(|c| {
        c.webhook_allow_subnets = "127.0.0.0/8".into();
        c.webhook_retry_schedule = "0s,300ms,300ms".into();
    })
    .await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ada").await;
    // Asked about a call (`confirm: prompt`), the phone says yes at once, except to a
    // slow number; `confirm: auto` calls it dials without asking.
    let phone = RunningAgent::start_with(
        device,
        RunOptions {
            auto: false,
            confirm: Some(Arc::new(|to: &str| {
                if to.ends_with(SLOW_SUFFIX) {
                    std::thread::sleep(Duration::from_secs(4));
                    return false;
                }
                true
            })),
            ..Default::default()
        },
    )
    .await;
    // An organization allowed 2 requests a second, set before its key is first used.
    let limited = app.other_org().await;
    sqlx::query("update organizations set limit_api_per_second = 2 where id = $1")
        .bind(&limited.org_id)
        .execute(&app.db)
        .await
        .unwrap();

    let mut cmd = tokio::process::Command::new("npm");
    cmd.args(["test", "--silent"])
        .current_dir(&sdk)
        .env("PUSHDIAL_URL", &app.url)
        .env("PUSHDIAL_API_KEY", &app.org.secret_key)
        .env("PUSHDIAL_AGENT_ID", &agent_id)
        .env("PUSHDIAL_LIMITED_API_KEY", &limited.secret_key)
        .env("PUSHDIAL_SLOW_SUFFIX", SLOW_SUFFIX)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let status = tokio::time::timeout(Duration::from_secs(180), cmd.status())
        .await
        .expect("the TypeScript SDK's suite finished within 3 minutes")
        .expect("npm runs (./scripts/test installs Node.js)");
    phone.stop().await;
    assert!(
        status.success(),
        "the TypeScript SDK's suite failed ({status}): see its output above"
    );
}
