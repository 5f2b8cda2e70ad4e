//! One offer, from `ack` to the final report: the confirmation asked (hook or
//! terminal), the number checked, `expires_at` and cancellation re-checked before
//! dialing, and each status reported.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::client::AgentClient;
use crate::types::Report;

use super::backoff::with_retry;
use super::options::ConfirmFn;
use super::prompt::TerminalPrompt;

/// What an offer task tells the main loop when it ends.
pub(super) struct OfferDone {
    pub(super) call_id: String,
    /// The ack failed transiently: a new offer of the same call may be handled.
    pub(super) retry_allowed: bool,
}

/// Everything an offer task needs, shared by all of them.
pub(super) struct OfferCtx {
    pub(super) client: AgentClient,
    pub(super) auto: bool,
    pub(super) dial_command: Option<String>,
    pub(super) call_duration: Duration,
    pub(super) confirm: Option<ConfirmFn>,
    pub(super) prompt: TerminalPrompt,
}

/// Whether `to` is an E.164 number (`+` then 2 to 15 digits, no leading 0).
/// The number comes from the network: checked before it reaches the
/// terminal or a shell command.
fn is_e164(to: &str) -> bool {
    let Some(digits) = to.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Time left until `at` (zero if past).
fn until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

pub(super) async fn handle_offer(
    ctx: Arc<OfferCtx>,
    call_id: String,
    offered_expires_at: DateTime<Utc>,
    cancel: CancellationToken,
) -> OfferDone {
    let retry_allowed = offer_flow(&ctx, &call_id, offered_expires_at, &cancel).await;
    OfferDone {
        call_id,
        retry_allowed,
    }
}

/// Sends `report`; true if the server accepted it.
async fn report(ctx: &OfferCtx, call_id: &str, report: Report) -> bool {
    match with_retry(|| ctx.client.report(call_id, &report)).await {
        Ok(call) => {
            info!(reported = %report.status, call_status = %call.status, "status reported");
            true
        }
        Err(e) => {
            warn!(reported = %report.status, error = %e.display_chain(), "status report refused or failed");
            false
        }
    }
}

fn failed(reason: &str) -> Report {
    Report {
        reason: Some(reason.to_owned()),
        ..Report::new("failed")
    }
}

/// The offer state machine. Returns true when the ack failed transiently
/// (a re-offer of this call may be tried).
async fn offer_flow(
    ctx: &OfferCtx,
    call_id: &str,
    offered_expires_at: DateTime<Utc>,
    cancel: &CancellationToken,
) -> bool {
    info!(expires_at = %offered_expires_at, "call offered");
    let ack = match with_retry(|| ctx.client.ack(call_id)).await {
        Ok(ack) => ack,
        Err(e) if e.status() == Some(409) => {
            info!(
                code = e.code().unwrap_or_default(),
                "offer no longer available; dropped"
            );
            return false;
        }
        Err(e) => {
            warn!(error = %e.display_chain(), "ack failed; offer dropped");
            return e.is_transient();
        }
    };
    let expires_at = ack.expires_at;
    debug!(to = %ack.to, confirm = %ack.confirm, "acked");

    if !is_e164(&ack.to) {
        warn!("the number is not E.164; refusing to dial");
        report(ctx, call_id, failed("dial_failed")).await;
        return false;
    }

    // `required` (a widget's call: the number came from a public page) is asked even in
    // auto mode, and so is any value this agent does not know: only what is known to be
    // safe dials without asking.
    let ask = match ack.confirm.as_str() {
        "auto" => false,
        "prompt" => !ctx.auto,
        _ => true,
    };
    if ask {
        let answer = tokio::select! {
            yes = ctx.ask(&ack.to) => yes,
            () = tokio::time::sleep(until(expires_at)) => {
                ctx.withdrawn(&ack.to, "expired");
                info!("offer expired before an answer");
                return false;
            }
            () = cancel.cancelled() => {
                ctx.withdrawn(&ack.to, "canceled");
                info!("offer canceled before an answer");
                return false;
            }
        };
        if !answer {
            info!("declined");
            report(ctx, call_id, Report::new("declined")).await;
            return false;
        }
    }

    if cancel.is_cancelled() {
        info!("offer canceled; not dialing");
        return false;
    }
    if Utc::now() >= expires_at {
        info!("offer expired; not dialing");
        return false;
    }
    if !report(ctx, call_id, Report::new("accepted")).await
        || !report(ctx, call_id, Report::new("dialing")).await
    {
        return false;
    }

    // Last check, right before dialing.
    if cancel.is_cancelled() {
        info!("interrupted before dialing");
        report(ctx, call_id, failed("dial_failed")).await;
        return false;
    }
    if Utc::now() >= expires_at {
        warn!("offer expired before dialing; not dialing");
        report(ctx, call_id, failed("expired")).await;
        return false;
    }

    let started = Instant::now();
    let dialed = ctx.dial(&ack.to, call_id, cancel).await;
    match dialed {
        Ok(()) => {
            let duration_s = (started.elapsed() + Duration::from_millis(500)).as_secs();
            let done = Report {
                duration_s: Some(duration_s),
                ..Report::new("completed")
            };
            report(ctx, call_id, done).await;
        }
        Err(why) => {
            warn!(error = %why, "dialing failed");
            report(ctx, call_id, failed("dial_failed")).await;
        }
    }
    false
}

impl OfferCtx {
    /// Asks whether to call `number`: the hook if any, else the terminal.
    async fn ask(&self, number: &str) -> bool {
        match &self.confirm {
            Some(hook) => {
                let hook = Arc::clone(hook);
                let number = number.to_owned();
                tokio::task::spawn_blocking(move || hook(&number))
                    .await
                    .unwrap_or(false)
            }
            None => self.prompt.ask(number).await,
        }
    }

    /// Tells the person a pending question no longer matters.
    fn withdrawn(&self, number: &str, why: &str) {
        if self.confirm.is_none() && std::io::stdin().is_terminal() {
            println!();
            println!("Call {number} {why}; not dialing.");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn e164_check() {
        assert!(is_e164("+15551234567"));
        assert!(is_e164("+33612345678"));
        assert!(!is_e164("15551234567"));
        assert!(!is_e164("+0123"));
        assert!(!is_e164("+1555; rm -rf /"));
        assert!(!is_e164("+1234567890123456"));
        assert!(!is_e164("+"));
    }

    #[test]
    fn until_past_is_zero() {
        assert_eq!(
            until(Utc::now() - chrono::Duration::seconds(5)),
            Duration::ZERO
        );
        assert!(until(Utc::now() + chrono::Duration::seconds(5)) > Duration::from_secs(3));
    }
}
