//! The embeddable widget's rules: checking its settings (origins, business hours, texts,
//! theme, hourly caps), whether it is open, which agent takes a visitor's callback, the
//! widget's hourly caps on callbacks, and what the visitor is told about it.
//!
//! A widget's key is public and its Origin check binds browsers only: any script can ask
//! for callbacks with a forged `Origin`. What bounds such a script is the widget's hourly
//! caps (enforced in Redis, failing closed), the per-address and per-number limits, and
//! that a widget's call is always confirmed by a person on the phone (`confirm:
//! required`).

use chrono::{DateTime, Datelike, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::calls::reachability;
use crate::ratelimit::Limit;
use crate::store::accounts::AuditEntry;
use crate::store::devices as device_store;
use crate::store::widgets::{self as store, CallbackRow, CallbackStatus, Routing, WidgetRow};
use crate::{Ctx, Error, Result};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
/// Text keys the widget shows; the tenant may override any of them per language.
pub const TEXT_KEYS: [&str; 12] = [
    "title",
    "call_now",
    "request_callback",
    "phone_label",
    "name_label",
    "consent",
    "submit",
    "calling",
    "failed",
    "scheduled",
    "completed",
    "invalid_number",
];
/// Languages the widget speaks.
pub const LANGUAGES: [&str; 2] = ["en", "zh"];

/// An exact web origin: `scheme://host[:port]`, http(s) only, no path.
pub fn check_origin(field: &str, origin: &str) -> Result<String> {
    let bad = || {
        Error::invalid(
            field,
            format!("`{origin}` is not an origin like https://shop.example"),
        )
    };
    if origin.contains('*') {
        return Err(bad());
    }
    let url = url::Url::parse(origin).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad());
    }
    let normalized = url.origin().ascii_serialization();
    if normalized != origin.trim_end_matches('/') {
        return Err(bad());
    }
    Ok(normalized)
}

/// A widget's hourly caps may be set from 1 to this many callbacks an hour.
pub const MAX_CAP_PER_HOUR: i32 = 1000;
/// The caps of a widget whose organization did not set them.
pub const DEFAULT_CAP_PER_HOUR: i32 = 30;

/// Checks an hourly cap as given (`None`: the default).
pub fn check_cap(field: &str, value: Option<i64>) -> Result<i32> {
    match value {
        None => Ok(DEFAULT_CAP_PER_HOUR),
        Some(v) => i32::try_from(v)
            .ok()
            .filter(|v| (1..=MAX_CAP_PER_HOUR).contains(v))
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("from 1 to {MAX_CAP_PER_HOUR} callbacks an hour"),
                )
            }),
    }
}

/// Which of a widget's hourly caps a callback counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// Callbacks that ring an agent's phone now.
    Calling,
    /// Callbacks kept for an agent to call back later (`scheduled`): they place no call,
    /// so the organization's call quotas do not bound them.
    Scheduled,
}

impl Cap {
    /// The rate-limit policy (and its Redis key's first part).
    fn policy(self) -> &'static str {
        match self {
            Cap::Calling => "widget_callbacks",
            Cap::Scheduled => "widget_scheduled",
        }
    }

    /// The `reason` label of `pushdial_widget_callbacks_refused_total`.
    fn reason(self) -> &'static str {
        match self {
            Cap::Calling => "callbacks_cap",
            Cap::Scheduled => "scheduled_cap",
        }
    }

    /// The widget's setting that holds the cap.
    fn setting(self) -> &'static str {
        match self {
            Cap::Calling => "max_callbacks_per_hour",
            Cap::Scheduled => "max_scheduled_callbacks_per_hour",
        }
    }

    fn per_hour(self, widget: &WidgetRow) -> i32 {
        match self {
            Cap::Calling => widget.max_callbacks_per_hour,
            Cap::Scheduled => widget.max_scheduled_callbacks_per_hour,
        }
    }
}

/// Counts one callback of `widget` against its hourly `cap` (GCRA in Redis, shared by
/// every api process). Refused: `429 rate_limited` with its wait, the metric, and — at most
/// once per widget and cap an hour, so that a flood cannot flood the audit log too — an
/// audit event `widget.callback_cap_reached`. The caps **fail closed**
/// (`limits::take_fail_closed`): while Redis cannot tell, the callback is refused (`503
/// limits_unavailable`), since a public key with no bound is what they exist to prevent.
pub async fn take_cap(
    ctx: &Ctx,
    widget: &WidgetRow,
    cap: Cap,
    client: (Option<&str>, Option<&str>),
) -> Result<()> {
    let refused = &crate::metrics::METRICS.widget_callbacks_refused;
    let per_hour = u32::try_from(cap.per_hour(widget)).unwrap_or(1);
    let limit = crate::limits::per_hour(per_hour);
    match crate::limits::take_fail_closed(ctx, cap.policy(), &widget.id, limit).await {
        Ok(_) => Ok(()),
        Err(e @ Error::RateLimited { .. }) => {
            refused.with_label_values(&[cap.reason()]).inc();
            audit_cap_reached(ctx, widget, cap, per_hour, client).await;
            Err(e)
        }
        Err(e) => {
            refused.with_label_values(&["limits_unavailable"]).inc();
            Err(e)
        }
    }
}

/// Records that `widget` reached its `cap`, once per widget and cap per hour: the first
/// refusal of the hour takes the single slot of its own limit (1 an hour) and writes the
/// event; later ones find the slot taken and write nothing. Best effort: the refusal
/// stands whatever happens here.
async fn audit_cap_reached(
    ctx: &Ctx,
    widget: &WidgetRow,
    cap: Cap,
    per_hour: u32,
    (ip, user_agent): (Option<&str>, Option<&str>),
) {
    let once = Limit {
        rate: 1,
        period: std::time::Duration::from_secs(3600),
        burst: 1,
    };
    let key = format!("widget_cap_audit:{}:{}", cap.policy(), widget.id);
    match ctx.presence.rate_limit(&key, once).await {
        Ok(d) if d.allowed => {}
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "widget cap audit skipped");
            return;
        }
    }
    let entry = AuditEntry {
        org_id: Some(widget.org_id.clone()),
        action: "widget.callback_cap_reached".into(),
        actor_type: "anonymous".into(),
        actor_id: None,
        target_type: Some("widget".into()),
        target_id: Some(widget.id.clone()),
        ip: ip.map(str::to_owned),
        user_agent: user_agent.map(str::to_owned),
        data: serde_json::json!({
            "cap": cap.setting(),
            "per_hour": per_hour,
        }),
    };
    let written = match ctx.db.acquire().await {
        Ok(mut conn) => crate::accounts::audit(&mut conn, &entry).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = written {
        tracing::warn!(error = %e, "widget cap audit event not written");
    }
}

/// Business hours: a time zone, and per weekday a list of [from, to) ranges.
#[derive(Debug, Clone)]
pub struct Hours {
    tz: Tz,
    days: [Vec<(NaiveTime, NaiveTime)>; 7],
}

/// Checks business hours as given (`null` means always open) and returns them normalised.
pub fn check_hours(value: &serde_json::Value) -> Result<Option<serde_json::Value>> {
    if value.is_null() {
        return Ok(None);
    }
    parse_hours(value)?;
    Ok(Some(value.clone()))
}

pub fn parse_hours(value: &serde_json::Value) -> Result<Hours> {
    let field = "business_hours";
    let tz_name = value["timezone"].as_str().ok_or_else(|| {
        Error::invalid(
            "business_hours.timezone",
            "an IANA time zone, like Europe/London",
        )
    })?;
    let tz: Tz = tz_name.parse().map_err(|_| {
        Error::invalid(
            "business_hours.timezone",
            format!("unknown time zone `{tz_name}`"),
        )
    })?;
    let days_obj = value["days"]
        .as_object()
        .ok_or_else(|| Error::invalid("business_hours.days", "an object with mon … sun"))?;
    let mut days: [Vec<(NaiveTime, NaiveTime)>; 7] = Default::default();
    for (key, ranges) in days_obj {
        let Some(i) = DAYS.iter().position(|d| d == key) else {
            return Err(Error::invalid(
                field,
                format!("unknown day `{key}` (mon … sun)"),
            ));
        };
        let ranges = ranges.as_array().ok_or_else(|| {
            Error::invalid(
                field,
                format!("{key}: a list of [\"09:00\", \"17:00\"] ranges"),
            )
        })?;
        for r in ranges {
            let pair = r.as_array().filter(|p| p.len() == 2);
            let times: Option<Vec<NaiveTime>> = pair.map(|p| {
                p.iter()
                    .filter_map(|t| t.as_str())
                    .filter_map(|t| NaiveTime::parse_from_str(t, "%H:%M").ok())
                    .collect()
            });
            match times.as_deref() {
                Some([from, to]) if from < to => days[i].push((*from, *to)),
                _ => {
                    return Err(Error::invalid(
                        field,
                        format!(
                        "{key}: each range is [\"HH:MM\", \"HH:MM\"], the first before the second"
                    ),
                    ))
                }
            }
        }
    }
    Ok(Hours { tz, days })
}

impl Hours {
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.tz);
        let day = local.weekday().num_days_from_monday() as usize;
        let time = local.time();
        self.days[day]
            .iter()
            .any(|(from, to)| *from <= time && time < *to)
    }
}

/// Checks the tenant's text overrides: `{en: {key: text}, zh: {…}}`.
pub fn check_texts(value: &serde_json::Value) -> Result<serde_json::Value> {
    if value.is_null() {
        return Ok(serde_json::json!({}));
    }
    let obj = value.as_object().ok_or_else(|| {
        Error::invalid("texts", "an object by language: {\"en\": {…}, \"zh\": {…}}")
    })?;
    for (lang, texts) in obj {
        if !LANGUAGES.contains(&lang.as_str()) {
            return Err(Error::invalid(
                "texts",
                format!("unknown language `{lang}` (en, zh)"),
            ));
        }
        let texts = texts
            .as_object()
            .ok_or_else(|| Error::invalid("texts", format!("{lang}: an object of texts")))?;
        for (key, text) in texts {
            if !TEXT_KEYS.contains(&key.as_str()) {
                return Err(Error::invalid(
                    "texts",
                    format!("{lang}: unknown text `{key}`"),
                ));
            }
            match text.as_str() {
                Some(t) if !t.trim().is_empty() && t.chars().count() <= 300 => {}
                _ => {
                    return Err(Error::invalid(
                        "texts",
                        format!("{lang}.{key}: 1 to 300 characters"),
                    ))
                }
            }
        }
    }
    Ok(value.clone())
}

/// Checks the theme: `{color: "#rrggbb", position: "bottom-right" | "bottom-left"}`.
pub fn check_theme(value: &serde_json::Value) -> Result<serde_json::Value> {
    if value.is_null() {
        return Ok(serde_json::json!({}));
    }
    let obj = value
        .as_object()
        .ok_or_else(|| Error::invalid("theme", "an object: {\"color\": …, \"position\": …}"))?;
    for (key, v) in obj {
        let ok = match key.as_str() {
            "color" => v.as_str().is_some_and(|c| {
                c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit())
            }),
            "position" => matches!(v.as_str(), Some("bottom-right" | "bottom-left")),
            _ => false,
        };
        if !ok {
            return Err(Error::invalid(
                "theme",
                format!("`{key}`: color is #rrggbb, position is bottom-right or bottom-left"),
            ));
        }
    }
    Ok(value.clone())
}

/// Whether the widget is within its business hours now.
pub fn open_now(widget: &WidgetRow, now: DateTime<Utc>) -> bool {
    match &widget.business_hours {
        None => true,
        Some(h) => parse_hours(h).map(|h| h.is_open(now)).unwrap_or(false),
    }
}

/// The agent a visitor's call goes to, among `available` (from `available_agents`): the
/// one idle longest, or for round robin the next after the last, with the turn taken —
/// the widget's last agent moves to the one picked only if no other request moved it
/// since it was read (compare and set), so that callbacks arriving together go to
/// different agents. Called once the request can no longer be refused for its input; the
/// turn is taken even if that agent's phone then goes away.
pub async fn take_turn(
    ctx: &Ctx,
    widget: &WidgetRow,
    available: &[String],
) -> Result<Option<String>> {
    if widget.routing != Routing::RoundRobin {
        return Ok(choose(widget, available, None));
    }
    let mut conn = ctx.db.acquire().await?;
    let mut last = widget.last_agent_id.clone();
    // Each failed claim means another request took a turn; a few rounds settle it.
    for _ in 0..8 {
        let Some(next) = choose(widget, available, last.as_deref()) else {
            return Ok(None);
        };
        if store::claim_turn(
            &mut conn,
            &widget.org_id,
            &widget.id,
            last.as_deref(),
            &next,
        )
        .await?
        {
            return Ok(Some(next));
        }
        last = store::last_agent(&mut conn, &widget.org_id, &widget.id).await?;
    }
    Ok(choose(widget, available, last.as_deref()))
}

/// The widget's agents with a reachable phone, the one idle longest first (empty: nobody
/// can take a call now).
pub async fn available_agents(ctx: &Ctx, widget: &WidgetRow) -> Result<Vec<String>> {
    let mut conn = ctx.db.acquire().await?;
    let candidates = store::candidates(&mut conn, &widget.org_id, &widget.agent_ids).await?;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = candidates.iter().map(|(id, _)| id.clone()).collect();
    let devices: Vec<_> = device_store::list(&mut conn, &widget.org_id, Some(&ids))
        .await?
        .into_iter()
        .filter(|d| d.revoked_at.is_none())
        .collect();
    drop(conn);
    let reach = reachability(ctx, &devices).await;
    let reachable: std::collections::HashSet<&str> = devices
        .iter()
        .zip(reach.iter())
        .filter(|(_, r)| r.is_reachable())
        .map(|(d, _)| d.agent_id.as_str())
        .collect();
    // Candidates come oldest last call first.
    Ok(candidates
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| reachable.contains(id.as_str()))
        .collect())
}

/// The widget's choice among `available` (idle longest first): the first, or for round
/// robin the next id after `last` (wrapping around).
fn choose(widget: &WidgetRow, available: &[String], last: Option<&str>) -> Option<String> {
    if widget.routing == Routing::RoundRobin {
        let mut sorted: Vec<&String> = available.iter().collect();
        sorted.sort_unstable();
        let next = match last {
            Some(last) => sorted
                .iter()
                .find(|id| id.as_str() > last)
                .or(sorted.first()),
            None => sorted.first(),
        };
        return next.map(|s| (*s).clone());
    }
    available.first().cloned()
}

/// What the visitor sees of their callback: `calling`, `connected`, `completed`, `failed`
/// (nobody could be reached: an agent will call back) or `scheduled`.
pub fn visitor_status(cb: &CallbackRow) -> &'static str {
    match (cb.status, cb.call_status.as_deref()) {
        (CallbackStatus::Scheduled, _) => "scheduled",
        (CallbackStatus::Completed, _) => "completed",
        (CallbackStatus::Canceled, _) => "failed",
        (_, Some("connected")) => "connected",
        (_, Some("completed")) => "completed",
        (_, Some("failed" | "expired" | "declined" | "canceled")) => "failed",
        (_, None) => "scheduled",
        _ => "calling",
    }
}

/// Whether the visitor's status can still change.
pub fn is_final(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "scheduled")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn business_hours_follow_the_time_zone() {
        let h = parse_hours(&serde_json::json!({
            "timezone": "America/New_York",
            "days": {"mon": [["09:00", "17:00"]], "sat": []}
        }))
        .unwrap();
        // Monday 2026-11-30 14:30 UTC is 09:30 in New York: open.
        let open = "2026-11-30T14:30:00Z".parse().unwrap();
        assert!(h.is_open(open));
        // 13:30 UTC is 08:30 there: closed; and Saturday is closed all day.
        assert!(!h.is_open("2026-11-30T13:30:00Z".parse().unwrap()));
        assert!(!h.is_open("2026-12-05T15:00:00Z".parse().unwrap()));
        for bad in [
            serde_json::json!({"timezone": "Mars/Olympus", "days": {}}),
            serde_json::json!({"timezone": "UTC", "days": {"funday": []}}),
            serde_json::json!({"timezone": "UTC", "days": {"mon": [["17:00", "09:00"]]}}),
            serde_json::json!({"timezone": "UTC", "days": {"mon": [["9am", "5pm"]]}}),
        ] {
            assert!(parse_hours(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins_are_exact() {
        assert_eq!(
            check_origin("o", "https://shop.example").unwrap(),
            "https://shop.example"
        );
        assert_eq!(
            check_origin("o", "http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "shop.example",
            "https://shop.example/path",
            "ftp://x.example",
            "*",
            "https://*.example",
        ] {
            assert!(check_origin("o", bad).is_err(), "{bad}");
        }
    }
}
