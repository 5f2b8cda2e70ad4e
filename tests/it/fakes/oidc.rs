//! An OpenID Connect provider on loopback (tests/oidc/provider.mjs, a real provider
//! library run by node), and a pushdial that signs in with it.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::{json, Value};

use crate::harness::TestApp;

/// The loopback OpenID Connect provider (tests/oidc/provider.mjs), stopped on drop.
pub struct OidcProvider {
    child: Child,
    _stdin: ChildStdin,
    pub issuer: String,
}

impl OidcProvider {
    /// Starts the provider with one client, `pushdial`, whose redirect URI is the
    /// deployment's callback.
    pub fn start(redirect_uri: &str) -> OidcProvider {
        let root = env!("CARGO_MANIFEST_DIR");
        let clients = json!([{
            "client_id": "pushdial",
            "client_secret": "s3cret",
            "redirect_uris": [redirect_uri],
        }]);
        let mut child = Command::new("node")
            .arg(format!("{root}/tests/oidc/provider.mjs"))
            .env("OIDC_CLIENTS", clients.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node is installed and tests/oidc has its packages (scripts/test runs npm ci)");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("the OIDC provider did not start: {line:?}"));
        OidcProvider {
            child,
            _stdin: stdin,
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pushdial whose sign-in provider `oidc` is the loopback provider.
pub async fn app_with_oidc(
    tune: impl FnOnce(&mut pushdial_core::Config),
) -> (TestApp, OidcProvider) {
    let mut provider = None;
    let app = TestApp::spawn_tuned(|c| {
        let p = OidcProvider::start(&format!("http://{}/auth/oidc/callback", c.listen));
        c.oidc_issuer = Some(p.issuer.clone());
        c.oidc_client_id = Some("pushdial".into());
        c.oidc_client_secret = Some("s3cret".into());
        provider = Some(p);
        tune(c);
    })
    .await;
    (app, provider.unwrap())
}
