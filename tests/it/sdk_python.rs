//! The Python SDK (`sdk/python`) end to end: its pytest suite runs against a real pushdial
//! started here, in the virtual environment `./scripts/test` prepares
//! (`.pushdial/python-venv`, with `pip install -e 'sdk/python[test]'`).
//!
//! The server has one agent whose phone (the reference agent) dials a call created with
//! `confirm: "auto"` at once and holds a `prompt` call unanswered until the call is
//! canceled or the test ends, so that the suite sees both a call's whole life and a call
//! it may cancel; webhooks may reach loopback, where the suite runs its own receiver.
//! A second deployment allows 2 API requests a second, so that the suite meets real
//! `429`s with `Retry-After`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pushdial_sdk::agent::RunOptions;

use crate::harness::*;

fn root() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

/// The virtual environment's Python (`PUSHDIAL_PYTHON` overrides it).
fn python() -> String {
    if let Ok(p) = std::env::var("PUSHDIAL_PYTHON") {
        return p;
    }
    let venv = format!("{}/.pushdial/python-venv/bin/python", root());
    assert!(
        std::path::Path::new(&venv).is_file(),
        "{venv} is missing: ./scripts/test creates it (ensure_python_sdk in scripts/lib.sh)"
    );
    venv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_suite_passes_against_a_real_server() {
    let python = python();
    let app = TestApp::spawn_tuned(|c| {
        c.webhook_allow_subnets = "127.0.0.0/8".into();
        c.presence_window = Duration::from_secs(60);
    })
    .await;
    let limited = TestApp::spawn_tuned(|c| c.limit_api_per_second = 2).await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;

    // The phone's person: an `auto` call is dialed without asking; a `prompt` call is
    // asked about, and this person does not answer until the test is over (the agent
    // drops the question when the call is canceled or expires).
    let done = Arc::new(AtomicBool::new(false));
    let answer = Arc::clone(&done);
    // Set however the test ends: a panic below (pytest too slow, Python missing) must not
    // leave the person's blocking thread spinning, which would hang the test, not fail it.
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _done_on_exit = SetOnDrop(Arc::clone(&done));
    let phone = RunningAgent::start_with(
        device,
        RunOptions {
            auto: false,
            call_duration: Duration::ZERO,
            confirm: Some(Arc::new(move |_: &str| {
                while !answer.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                false
            })),
            ..Default::default()
        },
    )
    .await;

    let run = tokio::process::Command::new(&python)
        .args([
            "-m",
            "pytest",
            "sdk/python/tests",
            "-q",
            "-p",
            "no:cacheprovider",
        ])
        .current_dir(root())
        .env("PUSHDIAL_URL", &app.url)
        .env("PUSHDIAL_SECRET_KEY", &app.org.secret_key)
        .env("PUSHDIAL_AGENT_ID", &agent_id)
        .env("PUSHDIAL_LIMITED_URL", &limited.url)
        .env("PUSHDIAL_LIMITED_SECRET_KEY", &limited.org.secret_key)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the Python SDK's tests finish within 3 minutes")
        .expect("the virtual environment's Python runs");
    done.store(true, Ordering::Relaxed);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the Python SDK's tests failed (see pytest's output above)"
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.contains("passed") && !summary.contains("skipped"),
        "every test of the Python SDK ran against the server: {summary}"
    );
    phone.stop().await;
}
