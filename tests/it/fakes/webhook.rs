//! A webhook receiver on loopback whose answers the test scripts; every request it gets is
//! checked against the published document's `webhooks` section and kept.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::harness::eventually;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: poem::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap().to_owned()
    }
}

/// The receiver's next answers: status and an optional `Retry-After`.
pub type Script = Arc<Mutex<VecDeque<(u16, Option<&'static str>)>>>;

/// A webhook receiver: records every request, answers from a script (then 200); a
/// scripted status 0 never answers.
#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<Received>>>,
    pub script: Script,
    /// Requests whose body contains this text are answered 500 (a call the receiver chokes on).
    pub refuse: Arc<Mutex<Option<String>>>,
}

impl Receiver {
    pub async fn start(script: Vec<(u16, Option<&'static str>)>) -> (Receiver, String) {
        let r = Receiver::default();
        r.script.lock().unwrap().extend(script);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let state = r.clone();
        let app =
            poem::Route::new().at(
                "/hook",
                poem::post(poem::endpoint::make(move |req: poem::Request| {
                    let state = state.clone();
                    async move {
                        let headers = req.headers().clone();
                        let body = req.into_body().into_vec().await.unwrap_or_default();
                        crate::harness::contract::check_webhook(&body);
                        let refused =
                            state.refuse.lock().unwrap().as_ref().is_some_and(|r| {
                                String::from_utf8_lossy(&body).contains(r.as_str())
                            });
                        state.got.lock().unwrap().push(Received { headers, body });
                        if refused {
                            return poem::Response::builder()
                                .status(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
                                .body("refused");
                        }
                        let (status, retry_after) = state
                            .script
                            .lock()
                            .unwrap()
                            .pop_front()
                            .unwrap_or((200, None));
                        if status == 0 {
                            // Scripted hang: never answer.
                            std::future::pending::<()>().await;
                        }
                        let mut resp = poem::Response::builder()
                            .status(poem::http::StatusCode::from_u16(status).unwrap());
                        if let Some(r) = retry_after {
                            resp = resp.header("retry-after", r);
                        }
                        resp.body(format!("answer {status}"))
                    }
                })),
            );
        tokio::spawn(async move {
            let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
            poem::Server::new_with_acceptor(acceptor).run(app).await
        });
        (r, url)
    }

    pub fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(
            Duration::from_secs(15),
            &format!("{n} webhook requests"),
            || async {
                let got = self.got();
                (got.len() >= n).then_some(got)
            },
        )
        .await
    }
}

/// Whether `secret` signed the request (checked with the `standardwebhooks` crate, a
/// library we did not write).
pub fn verify(secret: &str, r: &Received) -> bool {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&r.body, &r.headers)
        .is_ok()
}
