//! GitHub's OAuth endpoints and REST API on loopback.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;

/// A stand-in for GitHub's OAuth endpoints and REST API that checks what GitHub checks:
/// the client, the exact redirect URI, PKCE (S256), single-use codes, the bearer token.
pub fn fake_github(redirect_uri: String) -> String {
    use base64::Engine;
    use poem::web::{Data, Form, Query};
    use poem::{get, handler, post, EndpointExt, Request, Response, Route};
    use sha2::Digest;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct State {
        codes: Mutex<HashMap<String, String>>,
        redirect: String,
    }
    #[handler]
    pub fn authorize(
        Query(q): Query<HashMap<String, String>>,
        state: Data<&Arc<State>>,
    ) -> Response {
        let ok = q.get("client_id").map(String::as_str) == Some("gh-client")
            && q.get("redirect_uri") == Some(&state.redirect)
            && q.get("code_challenge_method").map(String::as_str) == Some("S256");
        if !ok {
            return Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .body("bad authorize request");
        }
        let code = format!("code{}", rand::random::<u64>());
        state
            .codes
            .lock()
            .unwrap()
            .insert(code.clone(), q["code_challenge"].clone());
        let to = format!("{}?code={code}&state={}", state.redirect, q["state"]);
        Response::builder()
            .status(StatusCode::FOUND)
            .header("location", to)
            .finish()
    }
    #[handler]
    pub fn token(
        req: &Request,
        Form(f): Form<HashMap<String, String>>,
        state: Data<&Arc<State>>,
    ) -> Response {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("gh-client:gh-secret")
        );
        let client_ok = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(basic.as_str())
            || (f.get("client_id").map(String::as_str) == Some("gh-client")
                && f.get("client_secret").map(String::as_str) == Some("gh-secret"));
        let challenge = f
            .get("code")
            .and_then(|c| state.codes.lock().unwrap().remove(c));
        let verified = match (challenge, f.get("code_verifier")) {
            (Some(ch), Some(v)) => {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(sha2::Sha256::digest(v.as_bytes()))
                    == ch
            }
            _ => false,
        };
        let body = if client_ok && verified && f.get("redirect_uri") == Some(&state.redirect) {
            json!({"access_token": "gho_fake", "token_type": "bearer", "scope": "read:user,user:email"})
        } else {
            // GitHub answers a bad code with 200 and an error body.
            json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."})
        };
        let status = if body.get("error").is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        Response::builder()
            .status(status)
            .content_type("application/json")
            .body(body.to_string())
    }
    pub fn authorized(req: &Request) -> bool {
        req.headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some("Bearer gho_fake")
    }
    #[handler]
    pub fn user(req: &Request) -> Response {
        if !authorized(req) {
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .finish();
        }
        poem::web::Json(
            json!({"id": 4242, "login": "octocat", "name": "The Octocat", "email": null}),
        )
        .into_response()
    }
    #[handler]
    pub fn emails(req: &Request) -> Response {
        if !authorized(req) {
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .finish();
        }
        poem::web::Json(json!([
            {"email": "old@example.test", "primary": false, "verified": true},
            {"email": "octo@example.test", "primary": true, "verified": true}
        ]))
        .into_response()
    }
    use poem::IntoResponse;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let state = Arc::new(State {
        codes: Default::default(),
        redirect: redirect_uri,
    });
    let app = Route::new()
        .at("/login/oauth/authorize", get(authorize))
        .at("/login/oauth/access_token", post(token))
        .at("/api/user", get(user))
        .at("/api/user/emails", get(emails))
        .data(state);
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    format!("http://{addr}")
}
