//! Egress safety: the one place that decides where our server may connect on behalf of a
//! tenant or a device.
//!
//! Tenants hand us webhook URLs and devices hand us Web Push endpoints, and the worker
//! POSTs to them, so a URL pointing at
//! `127.0.0.1`, a private network or a cloud metadata endpoint (`169.254.169.254`,
//! `fd00:ec2::254`) would let a tenant probe or attack our own infrastructure (SSRF).
//! This module owns the two defences:
//!
//! * [`EgressPolicy::check_url`] — a static check at create/update time and before each
//!   send: only `http`/`https`, no credentials in the URL, no local or internal host
//!   names, and no IP literal in a refused range (in any notation: the WHATWG parser of
//!   the `url` crate normalises decimal, octal, hex and short IPv4 forms as well as
//!   bracketed IPv6 into real addresses before we look at them).
//! * [`EgressPolicy::check_push_endpoint`] — the same, and `https` only: a Web Push
//!   endpoint in plain `http` is accepted only on a loopback address the operator
//!   allowlisted (the development gateway of `pushdial-agent --push-listen`).
//! * [`EgressPolicy::client`] — the HTTP client for deliveries. Its DNS resolver drops
//!   every resolved address the policy refuses, so the check happens on the very addresses
//!   the connection uses; there is no second resolution an attacker could answer
//!   differently (DNS rebinding). It follows no redirects and ignores proxy settings.
//!
//! Operators can open specific ranges (for example an on-premise receiver on a private
//! network) with `PUSHDIAL_WEBHOOK_ALLOW_SUBNETS`, parsed by [`EgressPolicy::parse`].
//! The allowlist applies to addresses only: local host names such as `localhost` stay
//! refused by [`EgressPolicy::check_url`] whatever the allowlist says.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Where webhook deliveries may go: everything that is not [forbidden](is_forbidden),
/// plus the subnets an operator explicitly allowlisted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Subnets that are allowed even though [`is_forbidden`] refuses them.
    allow: Vec<IpNet>,
}

/// Why an outbound URL (a webhook's, a push endpoint) or destination was refused. Each
/// message is written for the tenant or device that gave the URL.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EgressError {
    /// The URL cannot be parsed, has no host, or embeds credentials (`user:pass@`).
    #[error("the URL is invalid: {0}")]
    InvalidUrl(String),
    /// The scheme is neither `http` nor `https`.
    #[error("the URL scheme \"{0}\" is not supported; use http or https")]
    UnsupportedScheme(String),
    /// The host name designates the local machine or an internal network.
    #[error("the host \"{0}\" is a local or internal name and cannot be reached from here")]
    ForbiddenHost(String),
    /// The address (literal or resolved) is loopback, private, link-local or otherwise
    /// reserved.
    #[error(
        "the address {0} is a loopback, private, link-local or reserved address and cannot be reached from here"
    )]
    ForbiddenAddress(IpAddr),
    /// DNS resolution failed or returned no usable address.
    #[error("the host \"{0}\" could not be resolved to a usable address")]
    Unresolvable(String),
    /// A Web Push endpoint that is not `https` (plain `http` only on an allowlisted
    /// loopback address, for development).
    #[error("a push endpoint must be an https URL")]
    HttpsRequired,
}

impl EgressError {
    /// A stable snake_case name of the refusal, for events and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            EgressError::InvalidUrl(_) => "invalid_url",
            EgressError::UnsupportedScheme(_) => "unsupported_scheme",
            EgressError::ForbiddenHost(_) => "forbidden_host",
            EgressError::ForbiddenAddress(_) => "forbidden_address",
            EgressError::Unresolvable(_) => "unresolvable",
            EgressError::HttpsRequired => "https_required",
        }
    }

    /// The egress refusal in an HTTP client's error, if the policy's resolver refused the
    /// connection (its source chain carries an [`EgressError`]).
    pub fn of(err: &reqwest::Error) -> Option<EgressError> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = source {
            if let Some(found) = e.downcast_ref::<EgressError>() {
                return Some(found.clone());
            }
            source = e.source();
        }
        None
    }
}

/// Host names refused outright (compared after lower-casing and dropping trailing dots).
const FORBIDDEN_NAMES: &[&str] = &[
    "localhost",
    "localhost4",
    "localhost6",
    "ip6-localhost",
    "ip6-loopback",
];

/// Host name suffixes refused outright: `.internal` covers `metadata.google.internal`.
const FORBIDDEN_SUFFIXES: &[&str] = &[".localhost", ".local", ".internal", ".localdomain"];

/// IPv4 ranges that are never a webhook destination.
const FORBIDDEN_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),          // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),         // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),      // carrier-grade NAT
    (Ipv4Addr::new(127, 0, 0, 0), 8),        // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),     // link-local, cloud metadata
    (Ipv4Addr::new(172, 16, 0, 0), 12),      // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),       // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),       // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24),     // 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),     // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),      // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24),    // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),     // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),        // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),        // reserved
    (Ipv4Addr::new(255, 255, 255, 255), 32), // broadcast
];

/// IPv6 ranges that are never a webhook destination, whatever they embed. Ranges that
/// embed an IPv4 address are handled separately in [`v6_forbidden`].
const FORBIDDEN_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 128), // unspecified
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1), 128), // loopback
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64), // discard-only
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32), // Teredo
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation (RFC 9637)
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local, incl. fd00:ec2::254
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8), // multicast
];

/// /96 prefixes whose last 32 bits are an IPv4 address, judged by that address.
const EMBEDDING_V4_IN_LAST_32_BITS: &[Ipv6Addr] = &[
    Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), // IPv4-mapped
    Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),      // IPv4-compatible (incl. :: and ::1)
    Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), // NAT64 well-known prefix
];

/// Cloud metadata endpoints (AWS, GCP, Azure, OpenStack: 169.254.169.254; AWS IPv6
/// fd00:ec2::254; Alibaba 100.100.100.200), refused even inside an allowlisted subnet.
fn is_metadata(ip: IpAddr) -> bool {
    const V6_AWS: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    match ip {
        IpAddr::V4(v4) => {
            v4 == std::net::Ipv4Addr::new(169, 254, 169, 254)
                || v4 == std::net::Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(v6) => v6 == V6_AWS,
    }
}

/// Whether an address is never a valid webhook destination (before the allowlist).
///
/// IPv6 addresses that embed an IPv4 address (IPv4-mapped `::ffff:0:0/96`,
/// IPv4-compatible `::/96`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4 `2002::/16`)
/// are judged by the embedded IPv4 address.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_forbidden(v4),
        IpAddr::V6(v6) => v6_forbidden(v6),
    }
}

fn v4_forbidden(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    FORBIDDEN_V4.iter().any(|&(net, len)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        bits & mask == u32::from(net) & mask
    })
}

fn in_v6_prefix(bits: u128, net: Ipv6Addr, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    bits & mask == u128::from(net) & mask
}

fn v6_forbidden(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    if FORBIDDEN_V6
        .iter()
        .any(|&(net, len)| in_v6_prefix(bits, net, len))
    {
        return true;
    }
    let o = ip.octets();
    let last_v4 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    let nat64_local = Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0);
    if EMBEDDING_V4_IN_LAST_32_BITS
        .iter()
        .any(|&net| in_v6_prefix(bits, net, 96))
    {
        return v4_forbidden(last_v4);
    }
    if in_v6_prefix(bits, nat64_local, 48) {
        // Local-use NAT64 (RFC 8215). Operators may carve any RFC 6052 prefix length out of
        // it; only the /96 layout (bits 48..96 zero) tells us unambiguously where the IPv4
        // address sits, so anything else is refused.
        return !in_v6_prefix(bits, nat64_local, 96) || v4_forbidden(last_v4);
    }
    if in_v6_prefix(bits, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        // 6to4: the IPv4 address is in bits 16..48.
        return v4_forbidden(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    false
}

/// Whether a (lower-case, WHATWG-normalised) host name is refused by name alone.
fn is_forbidden_name(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    FORBIDDEN_NAMES.contains(&host)
        || FORBIDDEN_SUFFIXES
            .iter()
            .any(|suffix| host.ends_with(suffix) || host == &suffix[1..])
}

impl EgressPolicy {
    /// From `PUSHDIAL_WEBHOOK_ALLOW_SUBNETS`: comma-separated CIDRs (or bare IPs), empty = none.
    ///
    /// The error names the entry that is neither a CIDR nor an IP address.
    pub fn parse(list: &str) -> Result<EgressPolicy, String> {
        let mut allow = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = match IpNet::from_str(entry) {
                Ok(net) => net.trunc(),
                Err(_) => IpAddr::from_str(entry).map(IpNet::from).map_err(|_| {
                    format!(
                        "invalid entry \"{entry}\" in PUSHDIAL_WEBHOOK_ALLOW_SUBNETS: \
                         expected a CIDR such as 10.0.0.0/8 or an IP address"
                    )
                })?,
            };
            allow.push(net);
        }
        Ok(EgressPolicy { allow })
    }

    /// The default policy: no allowlisted subnet, every [forbidden](is_forbidden) address refused.
    pub fn none() -> EgressPolicy {
        EgressPolicy::default()
    }

    /// Allowed: in an allowlisted subnet, or not forbidden. Cloud metadata addresses are
    /// never allowed.
    ///
    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) also matches IPv4 allowlist entries.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        if is_metadata(canonical) {
            return false; // cloud metadata services: never, whatever the allowlist says
        }
        self.allow
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
            || !is_forbidden(ip)
    }

    /// Static check of a URL (at create/update time and before each send): scheme, host
    /// names, and IP literals in every notation. Returns the parsed URL.
    ///
    /// Host names are not resolved here; the resolver of [`EgressPolicy::client`] checks
    /// the addresses they resolve to at connection time.
    pub fn check_url(&self, url: &str) -> Result<url::Url, EgressError> {
        let parsed =
            url::Url::parse(url.trim()).map_err(|e| EgressError::InvalidUrl(format!("{e}")))?;
        match parsed.scheme() {
            "http" | "https" => {}
            other => return Err(EgressError::UnsupportedScheme(other.to_owned())),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(EgressError::InvalidUrl(
                "it must not contain a user name or password".to_owned(),
            ));
        }
        match parsed.host() {
            None => Err(EgressError::InvalidUrl("it has no host".to_owned())),
            Some(url::Host::Domain(name)) => {
                if name.trim_end_matches('.').is_empty() {
                    Err(EgressError::InvalidUrl("it has no host".to_owned()))
                } else if is_forbidden_name(name) {
                    Err(EgressError::ForbiddenHost(name.to_owned()))
                } else {
                    Ok(parsed)
                }
            }
            Some(url::Host::Ipv4(v4)) => self.check_ip(IpAddr::V4(v4)).map(|()| parsed),
            Some(url::Host::Ipv6(v6)) => self.check_ip(IpAddr::V6(v6)).map(|()| parsed),
        }
    }

    /// Static check of a Web Push endpoint, at registration and before each send:
    /// [`EgressPolicy::check_url`], and `https` only — except plain `http` to a loopback
    /// IP literal, which `check_url` lets through only when the operator allowlisted it
    /// (`PUSHDIAL_WEBHOOK_ALLOW_SUBNETS=127.0.0.0/8`, the development gateway of
    /// `pushdial-agent --push-listen`). A push service is always on the public internet
    /// and always speaks TLS; anything else is a device pointing us somewhere.
    pub fn check_push_endpoint(&self, url: &str) -> Result<url::Url, EgressError> {
        let parsed = self.check_url(url)?;
        if parsed.scheme() == "https" {
            return Ok(parsed);
        }
        let loopback_literal = match parsed.host() {
            Some(url::Host::Ipv4(v4)) => v4.is_loopback(),
            Some(url::Host::Ipv6(v6)) => v6.to_canonical().is_loopback(),
            _ => false,
        };
        if loopback_literal {
            Ok(parsed)
        } else {
            Err(EgressError::HttpsRequired)
        }
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), EgressError> {
        if self.allows(ip) {
            Ok(())
        } else {
            Err(EgressError::ForbiddenAddress(ip))
        }
    }

    /// An HTTP client for webhook deliveries: no redirects, the given timeout, and a DNS
    /// resolver that drops every resolved address the policy refuses, failing when none is
    /// left — so the check happens on the very addresses the connection uses (no
    /// re-resolution between check and connect).
    ///
    /// The client also ignores `HTTP(S)_PROXY` settings, since a proxy would resolve the
    /// host itself. URLs with an IP literal as host never reach a resolver, so they must
    /// pass [`EgressPolicy::check_url`] before each send. A refusal by the resolver shows up
    /// as a connect error whose source chain contains an [`EgressError`]
    /// (`ForbiddenAddress` or `Unresolvable`).
    ///
    /// # Panics
    ///
    /// Like [`reqwest::Client::new`], if the TLS backend cannot be initialised.
    pub fn client(&self, timeout: Duration) -> reqwest::Client {
        let resolver = PolicyResolver {
            policy: Arc::new(self.clone()),
        };
        match reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .build()
        {
            Ok(client) => client,
            Err(e) => panic!("cannot build the webhook HTTP client: {e}"),
        }
    }

    /// Resolves `host` and keeps the addresses this policy allows.
    async fn resolve_allowed(&self, host: &str) -> Result<Vec<SocketAddr>, EgressError> {
        let resolved = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|_| EgressError::Unresolvable(host.to_owned()))?;
        let mut allowed = Vec::new();
        let mut first_refused = None;
        for addr in resolved {
            if self.allows(addr.ip()) {
                if !allowed.contains(&addr) {
                    allowed.push(addr);
                }
            } else if first_refused.is_none() {
                first_refused = Some(addr.ip());
            }
        }
        match (allowed.is_empty(), first_refused) {
            (false, _) => Ok(allowed),
            (true, Some(ip)) => Err(EgressError::ForbiddenAddress(ip)),
            (true, None) => Err(EgressError::Unresolvable(host.to_owned())),
        }
    }
}

/// The DNS resolver of [`EgressPolicy::client`]: system resolution, then the policy.
#[derive(Debug, Clone)]
struct PolicyResolver {
    policy: Arc<EgressPolicy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            match policy.resolve_allowed(&host).await {
                Ok(addrs) => {
                    tracing::debug!(%host, ?addrs, "webhook host resolved");
                    Ok(Box::new(addrs.into_iter()) as Addrs)
                }
                Err(e) => {
                    tracing::info!(%host, error = %e, "webhook host refused by egress policy");
                    Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                }
            }
        })
    }
}

/// `Retry-After` as seconds or as an HTTP date (a date already past means now).
pub fn parse_retry_after(value: &str) -> Option<std::time::Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(std::time::Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or_default(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn refuses_internal_urls_in_every_notation() {
        let policy = EgressPolicy::none();
        let refused = [
            // schemes and URL shapes
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "javascript:alert(1)",
            "not a url",
            "http://",
            "http://user:pass@example.com/",
            "https://user@example.com/",
            // names
            "http://localhost/",
            "http://LOCALHOST:8080/",
            "http://localhost./",
            "http://foo.localhost/",
            "http://printer.local/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://db.internal/",
            "http://box.localdomain/",
            "http://ip6-localhost/",
            // IPv4 loopback in every notation
            "http://127.0.0.1/",
            "http://127.0.0.1./",
            "http://127.1/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://017700000001/",
            "http://%31%32%37.0.0.1/",
            // every IPv4 range
            "http://0.0.0.0/",
            "http://0/",
            "http://10.1.2.3/",
            "http://100.64.0.1/",
            "http://100.127.255.254/",
            "http://169.254.169.254/latest/meta-data/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.0.0.8/",
            "http://192.0.2.1/",
            "http://192.88.99.1/",
            "http://192.168.1.1/",
            "http://198.18.0.1/",
            "http://198.19.255.1/",
            "http://198.51.100.7/",
            "http://203.0.113.9/",
            "http://224.0.0.1/",
            "http://239.255.255.250/",
            "http://240.0.0.1/",
            "http://255.255.255.255/",
            // IPv6
            "http://[::]/",
            "http://[::1]/",
            "http://[0:0:0:0:0:0:0:1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::127.0.0.1]/",
            "http://[::10.0.0.1]/",
            "http://[64:ff9b::127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b:1::192.168.0.1]/",
            "http://[64:ff9b:1:1::808:808]/",
            "http://[2002:7f00:1::]/",
            "http://[2002:a00:1::1]/",
            "http://[2001:0:4136:e378::1]/",
            "http://[2001:db8::1]/",
            "http://[100::1]/",
            "http://[fc00::1]/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://[fe80::1%25eth0]/",
            "http://[fec0::1]/",
            "http://[ff02::1]/",
        ];
        for url in refused {
            assert!(
                policy.check_url(url).is_err(),
                "{url} should have been refused"
            );
        }
    }

    #[test]
    fn whatwg_parser_normalises_ipv4_notations() {
        for url in [
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://127.0.0.1./",
            "http://%31%32%37.0.0.1/",
        ] {
            assert_eq!(
                url::Url::parse(url).unwrap().host(),
                Some(url::Host::Ipv4(Ipv4Addr::LOCALHOST)),
                "{url}"
            );
            assert_eq!(
                EgressPolicy::none().check_url(url),
                Err(EgressError::ForbiddenAddress(IpAddr::V4(
                    Ipv4Addr::LOCALHOST
                ))),
                "{url}"
            );
        }
        let mapped = "http://[::ffff:127.0.0.1]/";
        let v6: Ipv6Addr = "::ffff:7f00:1".parse().unwrap();
        assert_eq!(
            url::Url::parse(mapped).unwrap().host(),
            Some(url::Host::Ipv6(v6))
        );
        assert_eq!(
            EgressPolicy::none().check_url(mapped),
            Err(EgressError::ForbiddenAddress(IpAddr::V6(v6)))
        );
    }

    #[test]
    fn error_kinds() {
        let policy = EgressPolicy::none();
        assert_eq!(
            policy.check_url("ftp://example.com/"),
            Err(EgressError::UnsupportedScheme("ftp".into()))
        );
        assert_eq!(
            policy.check_url("http://metadata.google.internal/"),
            Err(EgressError::ForbiddenHost(
                "metadata.google.internal".into()
            ))
        );
        assert!(matches!(
            policy.check_url("https://u:secret@example.com/"),
            Err(EgressError::InvalidUrl(msg)) if !msg.contains("secret")
        ));
        assert!(matches!(
            policy.check_url("::nonsense"),
            Err(EgressError::InvalidUrl(_))
        ));
        assert!(
            EgressError::ForbiddenAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))
                .to_string()
                .contains("127.0.0.1")
        );
    }

    #[test]
    fn accepts_public_urls() {
        let policy = EgressPolicy::none();
        for url in [
            "https://example.com/hook",
            "http://example.com:8080/hook?x=1#frag",
            "http://93.184.216.34/x",
            "https://[2606:4700::1111]/",
            "https://[::ffff:93.184.216.34]/",
            "https://[64:ff9b::93.184.216.34]/",
            "https://[64:ff9b:1::93.184.216.34]/",
            "https://[2002:5db8:d822::1]/",
            "https://localhost.example.com/",
            "https://internal.example.com/",
        ] {
            let parsed = policy.check_url(url);
            assert!(parsed.is_ok(), "{url} should be allowed: {parsed:?}");
        }
    }

    #[test]
    fn forbidden_ranges_boundaries() {
        let ip = |s: &str| IpAddr::from_str(s).unwrap();
        for s in [
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "198.20.0.0",
            "223.255.255.255",
            "fbff::1",
            "2001:1::1",
        ] {
            assert!(!is_forbidden(ip(s)), "{s} should be allowed");
        }
        for s in [
            "198.19.255.255",
            "239.255.255.255",
            "febf::1",
            "feff::1",
            "fdff:ffff::1",
            "2001:0:ffff::1",
        ] {
            assert!(is_forbidden(ip(s)), "{s} should be forbidden");
        }
        assert!(is_forbidden(ip("::ffff:10.0.0.1")));
        assert!(!is_forbidden(ip("::ffff:8.8.8.8")));
        assert!(!is_forbidden(ip("2001:4860:4860::8888")));
    }

    #[test]
    fn allowlist() {
        let policy = EgressPolicy::parse("127.0.0.0/8").unwrap();
        assert!(policy.allows(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))));
        assert!(policy.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!policy.allows(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert!(!policy.allows(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert!(policy.check_url("http://127.0.0.1:8080/").is_ok());
        assert!(policy.check_url("http://10.0.0.1/").is_err());
        // Names stay refused whatever the allowlist.
        assert!(policy.check_url("http://localhost/").is_err());

        let policy = EgressPolicy::parse(" 10.1.0.0/16 , 192.168.1.5,fd00::/8,").unwrap();
        assert!(policy.allows("10.1.200.3".parse().unwrap()));
        assert!(!policy.allows("10.2.0.1".parse().unwrap()));
        assert!(policy.allows("192.168.1.5".parse().unwrap()));
        assert!(!policy.allows("192.168.1.6".parse().unwrap()));
        assert!(policy.allows("fd00:ec2::1".parse().unwrap()));
        assert!(
            !policy.allows("fd00:ec2::254".parse().unwrap()),
            "metadata stays refused"
        );
        assert!(!policy.allows("fe80::1".parse().unwrap()));
        let wide = EgressPolicy::parse("169.254.0.0/16").unwrap();
        assert!(wide.allows("169.254.1.1".parse().unwrap()));
        assert!(
            !wide.allows("169.254.169.254".parse().unwrap()),
            "metadata stays refused"
        );

        assert_eq!(EgressPolicy::parse("").unwrap(), EgressPolicy::none());
        assert_eq!(EgressPolicy::parse(" , ").unwrap(), EgressPolicy::none());
        for bad in [
            "10.0.0.0/33",
            "nonsense",
            "10.0.0/8",
            "127.0.0.0/8,x",
            "::1/129",
        ] {
            assert!(EgressPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn push_endpoints_are_https_or_an_allowlisted_loopback_literal() {
        let none = EgressPolicy::none();
        assert!(none
            .check_push_endpoint("https://fcm.googleapis.com/wp/abc")
            .is_ok());
        for url in [
            "http://fcm.googleapis.com/wp/abc",
            "http://93.184.216.34/wp",
            "http://127.0.0.1:9999/push",
            "https://127.0.0.1:9999/push",
            "http://[::1]:9999/",
            "http://0.0.0.0:9999/",
            "http://[::]:9999/",
            "http://localhost:9999/",
            "http://[::ffff:127.0.0.1]:9999/",
            "http://2130706433:9999/",
            "http://0x7f.1:9999/",
            "https://169.254.169.254/",
        ] {
            assert!(none.check_push_endpoint(url).is_err(), "{url}");
        }
        assert_eq!(
            none.check_push_endpoint("http://push.example.com/x"),
            Err(EgressError::HttpsRequired)
        );
        let dev = EgressPolicy::parse("127.0.0.0/8").unwrap();
        assert!(dev
            .check_push_endpoint("http://127.0.0.1:9999/push")
            .is_ok());
        assert!(dev
            .check_push_endpoint("http://[::ffff:127.0.0.1]:9999/")
            .is_ok());
        for url in [
            "http://[::1]:9999/",
            "http://0.0.0.0:9999/",
            "http://[::]:9999/",
            "http://localhost:9999/",
            "http://push.example.com/x",
        ] {
            assert!(dev.check_push_endpoint(url).is_err(), "{url}");
        }
        // An allowlisted private network: https only there too.
        let lan = EgressPolicy::parse("10.0.0.0/8").unwrap();
        assert!(lan.check_push_endpoint("https://10.1.2.3/wp").is_ok());
        assert_eq!(
            lan.check_push_endpoint("http://10.1.2.3/wp"),
            Err(EgressError::HttpsRequired)
        );
    }

    /// A raw HTTP/1.1 responder on 127.0.0.1: `/redirect` answers 302, anything else 200.
    /// Returns the port and a counter of the requests served.
    async fn serve() -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&served);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let response: &[u8] = if request.starts_with(b"GET /redirect ") {
                    b"HTTP/1.1 302 Found\r\nLocation: /target\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                };
                let _ = socket.write_all(response).await;
                let _ = socket.shutdown().await;
            }
        });
        (port, served)
    }

    fn egress_error(err: &reqwest::Error) -> Option<EgressError> {
        EgressError::of(err)
    }

    #[tokio::test]
    async fn resolver_refuses_loopback_by_default() {
        let (port, served) = serve().await;
        let url = format!("http://localhost:{port}/");
        let policy = EgressPolicy::none();
        assert_eq!(
            policy.check_url(&url),
            Err(EgressError::ForbiddenHost("localhost".into()))
        );
        let err = policy
            .client(Duration::from_secs(5))
            .get(&url)
            .send()
            .await
            .expect_err("the resolver must refuse localhost");
        assert!(err.is_connect(), "{err:?}");
        match egress_error(&err) {
            Some(EgressError::ForbiddenAddress(ip)) => assert!(ip.is_loopback(), "{ip}"),
            other => panic!("expected ForbiddenAddress, got {other:?} from {err:?}"),
        }
        assert_eq!(served.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn resolver_fails_on_unresolvable_names() {
        let err = EgressPolicy::none()
            .client(Duration::from_secs(5))
            .get("http://no-such-host.invalid/")
            .send()
            .await
            .expect_err("an .invalid name cannot resolve");
        assert_eq!(
            egress_error(&err),
            Some(EgressError::Unresolvable("no-such-host.invalid".into()))
        );
    }

    #[tokio::test]
    async fn allowlisted_resolver_connects_and_does_not_follow_redirects() {
        let (port, served) = serve().await;
        let client = EgressPolicy::parse("127.0.0.0/8")
            .unwrap()
            .client(Duration::from_secs(5));

        let response = client
            .get(format!("http://localhost:{port}/hook"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "ok");
        assert_eq!(served.load(Ordering::SeqCst), 1);

        let response = client
            .get(format!("http://localhost:{port}/redirect"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::FOUND);
        assert_eq!(
            response.headers().get(reqwest::header::LOCATION).unwrap(),
            "/target"
        );
        assert_eq!(served.load(Ordering::SeqCst), 2);
    }
}
