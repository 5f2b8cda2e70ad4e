//! `GET /v1/calls/export`: the organization's call log in a time window, as CSV or JSON
//! Lines, streamed. The rows are read in batches (`store::exports::call_batch`), each a
//! short query on a connection taken from the pool and given back before the batch is
//! written, so that an export of any size holds at most one batch in memory and no
//! connection while its client reads; a client that goes away drops the body, and with it
//! the next batch's query. The window is bounded ([`MAX_WINDOW_DAYS`]) so that one request
//! cannot read years of calls.

use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, Stream};
use poem::Body;
use poem_openapi::param::Query;
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::{ApiResponse, Enum, OpenApi};
use pushdial_core::access::Action;
use pushdial_core::store::calls::CallRow;
use pushdial_core::store::exports::{self as export_store, ExportWindow};
use pushdial_core::{limits, Ctx, Error};

use crate::auth::OrgAuth;

use crate::problems;
use crate::Tags;

pub struct ExportsApi;

/// The longest window one export may cover: a month of calls (31 days, so that any
/// calendar month fits). Longer periods are exported a window at a time.
pub const MAX_WINDOW_DAYS: i64 = 31;

/// Exports an organization may start per minute (a refusal is `429` with `Retry-After`).
pub const EXPORTS_PER_MINUTE: u32 = 6;

/// Rows read per query: the memory an export holds at once, and what a client that goes
/// away can still cost.
const BATCH: i64 = 500;

/// The CSV columns, in order (the header row).
const COLUMNS: [&str; 10] = [
    "id",
    "agent_id",
    "device_id",
    "to",
    "status",
    "reason",
    "created_at",
    "updated_at",
    "duration_s",
    "metadata",
];

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ExportFormat {
    /// RFC 4180 CSV with a header row, `text/csv; charset=utf-8`.
    Csv,
    /// One JSON object per line, `application/x-ndjson`.
    Jsonl,
}

problems!(
    /// Errors of a call export: 400 for a missing, reversed or too long window or an unknown
    /// format.
    ExportError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden }
);

/// The streamed export with its media type and file name.
pub struct Export {
    format: ExportFormat,
    filename: String,
    body: Body,
}

impl ApiResponse for Export {
    fn meta() -> MetaResponses {
        let text = || MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")));
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The calls of the window, oldest first, streamed. CSV: a header \
                    row `id,agent_id,device_id,to,status,reason,created_at,updated_at,\
                    duration_s,metadata`, then one row per call (RFC 4180 quoting; `metadata` \
                    is the call's metadata as a JSON object; a cell that would start with \
                    `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with `'` so \
                    that a spreadsheet does not run it as a formula, except `to`, an E.164 \
                    number). JSON Lines: one object per call with the same fields. A failure \
                    after the first byte aborts the transfer: a download that does not end \
                    cleanly is incomplete.",
                status: Some(200),
                status_range: None,
                content: vec![
                    MetaMediaType {
                        content_type: "text/csv; charset=utf-8",
                        schema: text(),
                    },
                    MetaMediaType {
                        content_type: "application/x-ndjson",
                        schema: text(),
                    },
                ],
                headers: vec![MetaHeader {
                    name: "Content-Disposition".into(),
                    description: Some(
                        "`attachment; filename=\"calls-<from>-<to>.csv\"` (or `.jsonl`)".into(),
                    ),
                    required: true,
                    deprecated: false,
                    schema: text(),
                }],
            }],
        }
    }

    fn register(_registry: &mut Registry) {}
}

impl poem::IntoResponse for Export {
    fn into_response(self) -> poem::Response {
        let content_type = match self.format {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Jsonl => "application/x-ndjson",
        };
        poem::Response::builder()
            .content_type(content_type)
            .header(
                "Content-Disposition",
                format!("attachment; filename=\"{}\"", self.filename),
            )
            // Not a page a browser should guess the type of, nor one to keep.
            .header("X-Content-Type-Options", "nosniff")
            .header("Cache-Control", "no-store")
            .body(self.body)
    }
}

/// Checks the window: in order, at most [`MAX_WINDOW_DAYS`] long.
fn window(gte: DateTime<Utc>, lt: DateTime<Utc>) -> Result<(DateTime<Utc>, DateTime<Utc>), Error> {
    if lt <= gte {
        return Err(Error::invalid("created_lt", "must be after created_gte"));
    }
    if lt - gte > chrono::Duration::days(MAX_WINDOW_DAYS) {
        return Err(Error::invalid(
            "created_lt",
            format!("the window is at most {MAX_WINDOW_DAYS} days: export longer periods a window at a time"),
        ));
    }
    Ok((gte, lt))
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A CSV cell: quoted when it holds a comma, a quote or a line break (quotes doubled), and
/// prefixed with `'` when a spreadsheet would read it as a formula (CSV injection).
fn cell(out: &mut String, value: &str, formula_guard: bool) {
    let guarded = formula_guard
        && value
            .chars()
            .next()
            .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    let quoted = guarded || value.contains([',', '"', '\n', '\r']);
    if quoted {
        out.push('"');
    }
    if guarded {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quoted {
        out.push('"');
    }
}

/// One call as a CSV record (CRLF-terminated, as RFC 4180 has it).
fn csv_row(out: &mut String, c: &CallRow) {
    let duration = c.duration_s.map(|d| d.to_string()).unwrap_or_default();
    let metadata = c.metadata.to_string();
    let cells: [(&str, bool); 10] = [
        (&c.id, true),
        (&c.agent_id, true),
        (c.device_id.as_deref().unwrap_or(""), true),
        // E.164 (`+` and digits), parsed when the call was made: a number, not a formula.
        (&c.to_number, false),
        (c.status.as_str(), true),
        (c.reason.as_deref().unwrap_or(""), true),
        (&time(&c.created_at), true),
        (&time(&c.updated_at), true),
        (&duration, true),
        // A JSON object, so it starts with `{`; guarded like every cell all the same.
        (&metadata, true),
    ];
    for (i, (value, guard)) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        cell(out, value, *guard);
    }
    out.push_str("\r\n");
}

/// One call as a JSON line.
fn json_row(out: &mut String, c: &CallRow) {
    let line = serde_json::json!({
        "id": c.id,
        "agent_id": c.agent_id,
        "device_id": c.device_id,
        "to": c.to_number,
        "status": c.status,
        "reason": c.reason,
        "created_at": time(&c.created_at),
        "updated_at": time(&c.updated_at),
        "duration_s": c.duration_s,
        "metadata": c.metadata,
    });
    out.push_str(&line.to_string());
    out.push('\n');
}

/// Where the reading of an export stands between two chunks.
struct Reading {
    ctx: Ctx,
    org_id: String,
    window: ExportWindow,
    format: ExportFormat,
    /// The last row written, where the next batch resumes.
    after: Option<(DateTime<Utc>, String)>,
    /// The first batch, read before answering so that a failure to read is still a
    /// problem document rather than an aborted download.
    first: Option<Vec<CallRow>>,
    header_due: bool,
    done: bool,
}

/// The next batch, on a connection held only for its query.
async fn batch(
    ctx: &Ctx,
    org_id: &str,
    window: &ExportWindow,
    after: Option<&(DateTime<Utc>, String)>,
) -> sqlx::Result<Vec<CallRow>> {
    let mut conn = ctx.db.acquire().await?;
    export_store::call_batch(&mut conn, org_id, window, after, BATCH).await
}

/// The body: one chunk per batch, until a short batch.
fn chunks(reading: Reading) -> impl Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
    stream::unfold(reading, |mut r| async move {
        if r.done {
            return None;
        }
        let rows = match r.first.take() {
            Some(rows) => Ok(rows),
            None => batch(&r.ctx, &r.org_id, &r.window, r.after.as_ref()).await,
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                // Headers are gone: ending the body with an error aborts the transfer, so
                // the client sees an incomplete download rather than a short file.
                tracing::error!(org_id = %r.org_id, error = %e, "call export failed");
                r.done = true;
                return Some((Err(std::io::Error::other("export failed")), r));
            }
        };
        r.done = (rows.len() as i64) < BATCH;
        let mut out = String::with_capacity(rows.len() * 256 + 128);
        if std::mem::take(&mut r.header_due) && r.format == ExportFormat::Csv {
            out.push_str(&COLUMNS.join(","));
            out.push_str("\r\n");
        }
        for c in &rows {
            match r.format {
                ExportFormat::Csv => csv_row(&mut out, c),
                ExportFormat::Jsonl => json_row(&mut out, c),
            }
        }
        r.after = rows.last().map(|c| (c.created_at, c.id.clone()));
        Some((Ok(out.into_bytes()), r))
    })
}

#[OpenApi(tag = "Tags::Calls")]
impl ExportsApi {
    /// Export calls
    ///
    /// Streams the organization's calls created in `[created_gte, created_lt)` (at most 31
    /// days), oldest first, as CSV or JSON Lines, to download. An agent exports only their
    /// own calls, as `GET /v1/calls` shows them. Counted as one request against the API
    /// limit; the rows are read in batches while the client reads, so an export holds no
    /// more than one batch in memory and stops when the client goes away.
    #[oai(
        path = "/v1/calls/export",
        method = "get",
        operation_id = "export_calls"
    )]
    async fn export(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        /// Calls created at or after this time (RFC 3339).
        created_gte: Query<DateTime<Utc>>,
        /// Calls created before this time (RFC 3339), at most 31 days after `created_gte`.
        created_lt: Query<DateTime<Utc>>,
        /// `csv` (the default) or `jsonl`.
        format: Query<Option<ExportFormat>>,
    ) -> Result<Export, ExportError> {
        auth.require(Action::ReadCalls)?;
        let (gte, lt) = window(created_gte.0, created_lt.0)?;
        // One request may read a month of calls: beyond the API limit, an organization
        // starts at most EXPORTS_PER_MINUTE of them (shared by every api through Redis), so
        // that one tenant's exports cannot keep the shared database busy for the others.
        limits::take(
            &ctx,
            "export",
            &auth.org_id,
            limits::per_minute(EXPORTS_PER_MINUTE),
        )
        .await?;
        let format = format.0.unwrap_or(ExportFormat::Csv);
        let stamp = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
        let extension = match format {
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
        };
        let filename = format!("calls-{}-{}.{extension}", stamp(gte), stamp(lt));
        let window = ExportWindow {
            created_gte: gte,
            created_lt: lt,
            // An agent sees only their own calls.
            agent_id: auth.own_agent().map(str::to_owned),
        };
        let first = batch(&ctx, &auth.org_id, &window, None).await?;
        let reading = Reading {
            ctx: ctx.0.clone(),
            org_id: auth.org_id.clone(),
            window,
            format,
            after: None,
            first: Some(first),
            header_due: true,
            done: false,
        };
        Ok(Export {
            format,
            filename,
            body: Body::from_bytes_stream(chunks(reading)),
        })
    }
}
