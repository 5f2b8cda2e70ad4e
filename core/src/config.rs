//! Configuration from `DATABASE_URL`, `REDIS_URL` and `PUSHDIAL_*` environment variables
//! (or the matching command-line flags), each with a default that works on a developer's
//! machine. `pushdial --help` lists them all, and so does the README.

use std::net::SocketAddr;
use std::time::Duration;

/// Everything a pushdial process needs to know about its environment.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// PostgreSQL connection string.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/pushdial"
    )]
    pub database_url: String,

    /// Redis connection string (presence, live fan-out between replicas, wake-ups).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Address the HTTP server listens on.
    #[arg(long, env = "PUSHDIAL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Public base URL of this deployment, used in links such as pairing URIs
    /// (default: http://<PUSHDIAL_LISTEN>).
    #[arg(long, env = "PUSHDIAL_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Address of a second listener serving only `/healthz`, `/readyz` and `/metrics`, kept
    /// off the public one (metrics describe the deployment to whoever reads them). Unset:
    /// an api serves no metrics unless `PUSHDIAL_METRICS_TOKEN` is set. A worker-only
    /// process serves them on its own `PUSHDIAL_LISTEN`, which is not public.
    #[arg(long, env = "PUSHDIAL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// A bearer token that opens `/metrics` on the api's own listener
    /// (`Authorization: Bearer <token>`), for scrapers that cannot reach a second port.
    #[arg(long, env = "PUSHDIAL_METRICS_TOKEN")]
    pub metrics_token: Option<String>,

    /// Time a client has to send a request's head (line and headers), counted from the
    /// connection's opening or from the end of the previous response: also the longest a
    /// kept-alive connection may stay idle.
    #[arg(long, env = "PUSHDIAL_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// How long a device has to acknowledge an offer before the next device is tried.
    #[arg(long, env = "PUSHDIAL_OFFER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub offer_timeout: Duration,

    /// A live socket counts as present for this long after its last heartbeat; agents are
    /// asked to send heartbeats three times per window.
    #[arg(long, env = "PUSHDIAL_PRESENCE_WINDOW", default_value = "60s", value_parser = parse_duration)]
    pub presence_window: Duration,

    /// A device with a push channel stays reachable for this long after its last check-in.
    #[arg(long, env = "PUSHDIAL_PUSH_STALENESS", default_value = "30d", value_parser = parse_duration)]
    pub push_staleness: Duration,

    /// Default lifetime of a call when the request gives no `expires_in`.
    #[arg(long, env = "PUSHDIAL_CALL_EXPIRES_IN", default_value = "60s", value_parser = parse_duration)]
    pub call_expires_in: Duration,

    /// Lifetime of a pairing code.
    #[arg(long, env = "PUSHDIAL_PAIRING_CODE_TTL", default_value = "10m", value_parser = parse_duration)]
    pub pairing_code_ttl: Duration,

    /// How long a worker may hold a claimed job before another worker may take it over.
    #[arg(long, env = "PUSHDIAL_JOB_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub job_lease: Duration,

    /// Upper bound between two polls of the job table when no wake-up hint arrives.
    #[arg(long, env = "PUSHDIAL_JOB_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub job_poll_interval: Duration,

    /// Jobs one worker runs at the same time.
    #[arg(long, env = "PUSHDIAL_WORKER_CONCURRENCY", default_value_t = 32)]
    pub worker_concurrency: usize,

    /// Maximum PostgreSQL connections per process.
    #[arg(long, env = "PUSHDIAL_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,

    /// Requests one api process serves at once; beyond it a request is answered 503
    /// (`overloaded`, `Retry-After: 1`) at once instead of queueing for a database
    /// connection. Default: 32 per pool connection (`PUSHDIAL_DB_MAX_CONNECTIONS`): room
    /// for a burst to queue well under a second at the pool's pace. Agent sockets and
    /// health checks are not counted.
    #[arg(long, env = "PUSHDIAL_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,

    /// PostgreSQL connections each process opens at start and keeps open, so that the first
    /// requests after a start do not wait for connections to be made (at most the maximum).
    #[arg(long, env = "PUSHDIAL_DB_MIN_CONNECTIONS", default_value_t = 4)]
    pub db_min_connections: u32,

    /// Prefix of every Redis key and channel, so several deployments can share one Redis.
    #[arg(long, env = "PUSHDIAL_REDIS_PREFIX", default_value = "pd:")]
    pub redis_prefix: String,

    /// Loopback push service for development and tests: devices whose push channel is
    /// `loopback` are woken by a POST of the offer to this URL. Unset: no loopback push.
    #[arg(long, env = "PUSHDIAL_LOOPBACK_PUSH_URL")]
    pub loopback_push_url: Option<String>,

    /// Time allowed for in-flight work when the process is asked to stop.
    #[arg(long, env = "PUSHDIAL_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// The deployment's FCM service account (path of its JSON file; its `token_uri` is
    /// honoured). Organizations may bring their own.
    #[arg(long, env = "PUSHDIAL_FCM_CREDENTIALS")]
    pub fcm_credentials: Option<std::path::PathBuf>,

    /// FCM HTTP v1 base URL.
    #[arg(
        long,
        env = "PUSHDIAL_FCM_BASE_URL",
        default_value = "https://fcm.googleapis.com"
    )]
    pub fcm_base_url: String,

    /// The OAuth token endpoint used for organizations' uploaded FCM service accounts
    /// (their own `token_uri` is replaced by it, so that a tenant cannot make the server
    /// call an address of its choosing). The deployment's own account keeps its `token_uri`.
    #[arg(
        long,
        env = "PUSHDIAL_FCM_TOKEN_URI",
        default_value = "https://oauth2.googleapis.com/token"
    )]
    pub fcm_token_uri: String,

    /// The deployment's APNs token key (path of the .p8 file).
    #[arg(long, env = "PUSHDIAL_APNS_KEY")]
    pub apns_key: Option<std::path::PathBuf>,

    /// The APNs key's id (10 characters).
    #[arg(long, env = "PUSHDIAL_APNS_KEY_ID")]
    pub apns_key_id: Option<String>,

    /// The Apple developer team id (10 characters).
    #[arg(long, env = "PUSHDIAL_APNS_TEAM_ID")]
    pub apns_team_id: Option<String>,

    /// The iOS app's bundle id (the APNs topic).
    #[arg(long, env = "PUSHDIAL_APNS_TOPIC")]
    pub apns_topic: Option<String>,

    /// Send through APNs' sandbox (development builds of the app).
    #[arg(long, env = "PUSHDIAL_APNS_SANDBOX")]
    pub apns_sandbox: bool,

    /// The deployment's VAPID private key for Web Push (raw P-256 key, base64url, as
    /// `pushdial admin vapid-keys` prints it).
    #[arg(long, env = "PUSHDIAL_VAPID_PRIVATE_KEY", hide_env_values = true)]
    pub vapid_private_key: Option<String>,

    /// The contact in VAPID signatures (`mailto:` or `https:`; default: the public URL when
    /// it is https, else `mailto:push@localhost`).
    #[arg(long, env = "PUSHDIAL_VAPID_SUBJECT")]
    pub vapid_subject: Option<String>,

    /// Push sends per second through one credential (shared by every worker).
    #[arg(
        long,
        env = "PUSHDIAL_LIMIT_PUSH_PER_CREDENTIAL_PER_SECOND",
        default_value_t = 500
    )]
    pub limit_push_per_credential_per_second: u32,

    /// On SIGTERM, how long an api keeps serving while `/readyz` already fails, so that load
    /// balancers take it out of rotation before it stops accepting connections.
    #[arg(long, env = "PUSHDIAL_SHUTDOWN_DRAIN", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_drain: Duration,

    /// Key sealing secrets at rest (webhook signing secrets, push credentials, pending
    /// sign-ins): 32 bytes in base64, e.g. `openssl rand -base64 32`. Required unless the
    /// public URL is loopback (there, unset: a public development key, with a warning).
    #[arg(long, env = "PUSHDIAL_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,

    /// Earlier encryption keys (comma-separated, base64; `development` names the
    /// development key): they only open secrets, while `pushdial admin
    /// rotate-encryption-key` re-seals them with PUSHDIAL_ENCRYPTION_KEY.
    #[arg(
        long,
        env = "PUSHDIAL_ENCRYPTION_KEYS_PREVIOUS",
        hide_env_values = true
    )]
    pub encryption_keys_previous: Option<String>,

    /// Subnets webhook deliveries may reach although they are not public (comma-separated
    /// CIDRs). Empty: only public addresses.
    #[arg(long, env = "PUSHDIAL_WEBHOOK_ALLOW_SUBNETS", default_value = "")]
    pub webhook_allow_subnets: String,

    /// Delays of the webhook delivery attempts (each ±20 % jitter); the first is the
    /// initial attempt.
    #[arg(long, env = "PUSHDIAL_WEBHOOK_RETRY_SCHEDULE", default_value = DEFAULT_WEBHOOK_RETRY_SCHEDULE)]
    pub webhook_retry_schedule: String,

    /// Time a webhook receiver has to answer (a delivery holds a worker slot that long).
    #[arg(long, env = "PUSHDIAL_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub webhook_timeout: Duration,

    /// An endpoint failing without a success for this long is disabled.
    #[arg(long, env = "PUSHDIAL_WEBHOOK_DISABLE_AFTER", default_value = "5d", value_parser = parse_duration)]
    pub webhook_disable_after: Duration,

    /// Webhook deliveries (and other bulk jobs) one worker runs at once: the bulk lane's
    /// slots, apart from the call lane's (`PUSHDIAL_WORKER_CONCURRENCY`), so that slow
    /// receivers never delay a call. One organization gets at most a quarter of them (at
    /// least 4).
    #[arg(long, env = "PUSHDIAL_WEBHOOK_CONCURRENCY", default_value_t = 32)]
    pub webhook_concurrency: usize,

    /// Deliveries to one webhook endpoint in flight at once, across every worker: a slow
    /// receiver holds no more slots than this, however long its backlog.
    #[arg(
        long,
        env = "PUSHDIAL_WEBHOOK_ENDPOINT_CONCURRENCY",
        default_value_t = 4
    )]
    pub webhook_endpoint_concurrency: u32,

    /// Default webhook endpoints per organization (an organization's plan may set its own
    /// with `pushdial admin set-limits --webhook-endpoints`).
    #[arg(long, env = "PUSHDIAL_LIMIT_WEBHOOK_ENDPOINTS", default_value_t = 20)]
    pub limit_webhook_endpoints: u32,

    /// Test sends and resends (`/test`, `/events/{id}/resend`, `/recover`) per organization
    /// per minute.
    #[arg(
        long,
        env = "PUSHDIAL_LIMIT_WEBHOOK_SENDS_PER_MINUTE",
        default_value_t = 60
    )]
    pub limit_webhook_sends_per_minute: u32,

    /// Default public-API requests per second, per organization and per API key (an
    /// organization's plan may set its own).
    #[arg(long, env = "PUSHDIAL_LIMIT_API_PER_SECOND", default_value_t = 100)]
    pub limit_api_per_second: u32,

    /// Public-API requests per second per API key, when lower than the organization's
    /// (several keys then share the organization's budget without one starving the others).
    /// Unset: a key may use the organization's whole budget.
    #[arg(long, env = "PUSHDIAL_LIMIT_KEY_PER_SECOND")]
    pub limit_key_per_second: Option<u32>,

    /// Default calls created per organization per minute.
    #[arg(long, env = "PUSHDIAL_LIMIT_CALLS_PER_MINUTE", default_value_t = 60)]
    pub limit_calls_per_minute: u32,

    /// Calls to one destination number per organization per hour.
    #[arg(
        long,
        env = "PUSHDIAL_LIMIT_CALLS_PER_NUMBER_PER_HOUR",
        default_value_t = 10
    )]
    pub limit_calls_per_number_per_hour: u32,

    /// Pairing attempts per client IP per minute (a pairing code is a short secret).
    #[arg(
        long,
        env = "PUSHDIAL_LIMIT_PAIRING_PER_IP_PER_MINUTE",
        default_value_t = 10
    )]
    pub limit_pairing_per_ip_per_minute: u32,

    /// Proxies (comma-separated CIDRs) whose `X-Forwarded-For` names the client; per-IP
    /// limits then apply to the client, not to the proxy. Empty: the peer is the client.
    #[arg(long, env = "PUSHDIAL_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,

    /// Push wake-ups sent to one device per minute (a phone is not a pager).
    #[arg(
        long,
        env = "PUSHDIAL_LIMIT_PUSH_PER_DEVICE_PER_MINUTE",
        default_value_t = 20
    )]
    pub limit_push_per_device_per_minute: u32,

    /// Callback requests from one visitor address per widget per minute.
    #[arg(
        long,
        env = "PUSHDIAL_LIMIT_WIDGET_PER_IP_PER_MINUTE",
        default_value_t = 5
    )]
    pub limit_widget_per_ip_per_minute: u32,

    /// Callback requests for one visitor number per organization per hour.
    #[arg(
        long,
        env = "PUSHDIAL_LIMIT_WIDGET_PER_NUMBER_PER_HOUR",
        default_value_t = 3
    )]
    pub limit_widget_per_number_per_hour: u32,

    /// Directory of the built web surfaces (console, widget.js, web agent), served by the
    /// api at /console/, /widget.js and /agent/.
    #[arg(long, env = "PUSHDIAL_WEB_DIR", default_value = "web/dist")]
    pub web_dir: std::path::PathBuf,

    /// Requests per second from one client IP to one api process (flood protection, local).
    #[arg(long, env = "PUSHDIAL_LIMIT_IP_PER_SECOND", default_value_t = 200)]
    pub limit_ip_per_second: u32,

    /// Log format: `text` or `json` (one object per line, with the span fields such as
    /// `request_id` and `call_id`).
    #[arg(long, env = "PUSHDIAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// OpenTelemetry OTLP/HTTP endpoint receiving traces (e.g. `http://otel-collector:4318`;
    /// `/v1/traces` is appended). Unset: no export.
    #[arg(long, env = "PUSHDIAL_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Issuer URL of a generic OpenID Connect provider (a tenant's Okta, Azure AD,
    /// Keycloak …), offered as sign-in provider `oidc`; discovered from
    /// `<issuer>/.well-known/openid-configuration`.
    #[arg(long, env = "PUSHDIAL_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// Client id registered at the `oidc` provider.
    #[arg(long, env = "PUSHDIAL_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,

    /// Client secret registered at the `oidc` provider.
    #[arg(long, env = "PUSHDIAL_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,

    /// The `oidc` provider's name on the sign-in page.
    #[arg(long, env = "PUSHDIAL_OIDC_NAME", default_value = "Single sign-on")]
    pub oidc_name: String,

    /// Google OAuth client id (sign-in provider `google`, OpenID Connect).
    #[arg(long, env = "PUSHDIAL_GOOGLE_CLIENT_ID")]
    pub google_client_id: Option<String>,

    /// Google OAuth client secret.
    #[arg(long, env = "PUSHDIAL_GOOGLE_CLIENT_SECRET", hide_env_values = true)]
    pub google_client_secret: Option<String>,

    /// Google's issuer (discovery); changed only to test against a stand-in.
    #[arg(
        long,
        env = "PUSHDIAL_GOOGLE_ISSUER",
        default_value = "https://accounts.google.com"
    )]
    pub google_issuer: String,

    /// GitHub OAuth app client id (sign-in provider `github`).
    #[arg(long, env = "PUSHDIAL_GITHUB_CLIENT_ID")]
    pub github_client_id: Option<String>,

    /// GitHub OAuth app client secret.
    #[arg(long, env = "PUSHDIAL_GITHUB_CLIENT_SECRET", hide_env_values = true)]
    pub github_client_secret: Option<String>,

    /// GitHub's web URL (authorize and token endpoints); a GitHub Enterprise Server's URL
    /// works too.
    #[arg(
        long,
        env = "PUSHDIAL_GITHUB_URL",
        default_value = "https://github.com"
    )]
    pub github_url: String,

    /// GitHub's REST API URL (for Enterprise Server: `https://HOST/api/v3`).
    #[arg(
        long,
        env = "PUSHDIAL_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,

    /// A console session ends after this long without a request.
    #[arg(long, env = "PUSHDIAL_SESSION_IDLE_TIMEOUT", default_value = "12h", value_parser = parse_duration)]
    pub session_idle_timeout: Duration,

    /// A console session ends this long after sign-in, however active.
    #[arg(long, env = "PUSHDIAL_SESSION_LIFETIME", default_value = "7d", value_parser = parse_duration)]
    pub session_lifetime: Duration,

    /// SMTP server for invitation e-mails: `smtps://user:pass@host` (TLS),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS), or `smtp://host:25` (plain, for
    /// a relay on a trusted network). Unset: the invitation link is shown to the inviter.
    #[arg(long, env = "PUSHDIAL_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender of invitation e-mails.
    #[arg(
        long,
        env = "PUSHDIAL_SMTP_FROM",
        default_value = "pushdial <no-reply@localhost>"
    )]
    pub smtp_from: String,
}

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The configuration with every default, as for a local run; tests start from it.
    pub fn local() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        // Parsing no arguments with env disabled would still read the environment through
        // clap's `env`; that is what a local run does too, so keep it.
        match Wrapper::try_parse_from(["pushdial"]) {
            Ok(w) => w.config,
            Err(e) => {
                // Only a malformed PUSHDIAL_* variable can get here.
                eprintln!("{e}");
                std::process::exit(2)
            }
        }
    }

    /// Requests one api process serves at once (`PUSHDIAL_MAX_IN_FLIGHT`, or 32 per pool
    /// connection).
    pub fn in_flight_limit(&self) -> usize {
        self.max_in_flight
            .unwrap_or(self.db_max_connections as usize * 32)
            .max(1)
    }

    /// The public base URL without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The VAPID `sub` claim.
    pub fn vapid_subject(&self) -> String {
        match &self.vapid_subject {
            Some(s) => s.clone(),
            None if self.public_url().starts_with("https://") => self.public_url(),
            None => "mailto:push@localhost".to_owned(),
        }
    }

    /// The origin (scheme://host[:port]) of the public URL.
    pub fn public_origin(&self) -> String {
        let url = self.public_url();
        match url::Url::parse(&url) {
            Ok(u) => u.origin().ascii_serialization(),
            Err(_) => url,
        }
    }

    /// Whether the public URL's host is loopback (127.0.0.0/8, ::1, localhost): a
    /// deployment no one else reaches, which may seal with the development key.
    pub fn public_url_is_loopback(&self) -> bool {
        match url::Url::parse(&self.public_url()) {
            Ok(u) => match u.host() {
                Some(url::Host::Domain(d)) => d.trim_end_matches('.') == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            },
            Err(_) => false,
        }
    }

    /// Whether cookies may omit `Secure`: only on plain-http loopback (local development).
    pub fn insecure_cookies(&self) -> bool {
        match url::Url::parse(&self.public_url()) {
            Ok(u) if u.scheme() == "http" => match u.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            },
            _ => false,
        }
    }

    /// How often agents should send heartbeats.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.presence_window / 3).max(Duration::from_millis(100))
    }
}

/// The default webhook retry schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h,
/// 10 h, 10 h (read by `webhooks::parse_schedule`). Here, with the other defaults, so that
/// the configuration depends on no module it configures.
pub const DEFAULT_WEBHOOK_RETRY_SCHEDULE: &str = "0s,5s,5m,30m,2h,5h,10h,10h";

/// Parses `250ms`, `10s`, `5m`, `2h`, `30d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (examples: 500ms, 10s, 5m, 2h, 30d)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}` (use ms, s, m, h or d)"
            ))
        }
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("`{s}` is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses `PUSHDIAL_TRUSTED_PROXIES`.
pub fn parse_proxies(list: &str) -> Result<Vec<ipnet::IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.parse::<ipnet::IpNet>()
                .or_else(|_| e.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("`{e}` is not a CIDR or an address"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
