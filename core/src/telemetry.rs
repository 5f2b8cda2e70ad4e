//! Logs and traces. Logs go to stderr as text or JSON lines (`PUSHDIAL_LOG_FORMAT`), each
//! with the fields of the spans it happened in (`request_id`, `call_id`, `job_id` …).
//! With `PUSHDIAL_OTLP_ENDPOINT` set, the same spans are exported as OpenTelemetry traces
//! over OTLP/HTTP, and a trace continues from the request that created a job into the
//! worker that runs it: `queue::enqueue` stores the W3C `traceparent` in the job's payload
//! and the worker adopts it.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{Config, LogFormat};

/// The payload key a job's trace context travels under.
pub const TRACEPARENT: &str = "traceparent";

/// What must be flushed before the process exits.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the global subscriber: the log format of `config`, filtered by `RUST_LOG`
/// (default `info,sqlx=warn`), plus the OTLP exporter when an endpoint is configured.
/// Call once, inside the Tokio runtime.
pub fn init(config: &Config) -> Result<Telemetry, String> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let logs = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let provider = match &config.otlp_endpoint {
        Some(endpoint) => Some(otlp_provider(endpoint)?),
        None => None,
    };
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("pushdial"))
            .boxed()
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    Ok(Telemetry { provider })
}

impl Telemetry {
    /// Exports the spans still buffered; bounded so a dead collector cannot hold up exit.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let done = tokio::task::spawn_blocking(move || {
                provider.shutdown_with_timeout(Duration::from_secs(5))
            })
            .await;
            if let Ok(Err(e)) = done {
                eprintln!("pushdial: exporting the last traces failed: {e}");
            }
        }
    }
}

fn otlp_provider(endpoint: &str) -> Result<SdkTracerProvider, String> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let client = OtlpHttp {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?,
        runtime: tokio::runtime::Handle::try_current()
            .map_err(|_| "telemetry must start inside the Tokio runtime".to_owned())?,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(url)
        .with_http_client(client)
        .build()
        .map_err(|e| format!("PUSHDIAL_OTLP_ENDPOINT: {e}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("pushdial")
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build())
}

/// The exporter's HTTP client: our reqwest, run on the Tokio runtime. The SDK's batch
/// processor exports from its own thread, outside any runtime, so each request is spawned
/// onto the runtime captured at start and awaited from there.
#[derive(Debug)]
struct OtlpHttp {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpHttp {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let sent = self.runtime.spawn(async move {
            let resp = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = sent.await??;
        let mut resp = http::Response::new(body);
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        Ok(resp)
    }
}

/// The current span's trace context as a W3C `traceparent`, when traces are exported.
pub fn traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the trace a job's payload carries, if any.
pub fn adopt(span: &tracing::Span, payload: &serde_json::Value) {
    if let Some(parent) = payload.get(TRACEPARENT).and_then(|v| v.as_str()) {
        let carrier = HashMap::from([(TRACEPARENT.to_owned(), parent.to_owned())]);
        let cx = TraceContextPropagator::new().extract(&carrier);
        let _ = span.set_parent(cx);
    }
}
