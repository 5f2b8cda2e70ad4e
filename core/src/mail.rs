//! Outgoing e-mail (invitations) through the SMTP server of `PUSHDIAL_SMTP_URL`.

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::accounts::Role;
use crate::{Config, Error, Result};

fn mail_failed(e: impl std::fmt::Display) -> Error {
    tracing::warn!(error = %e, "invitation e-mail not sent");
    Error::Unavailable {
        code: "email_unavailable",
        message: "the invitation e-mail could not be sent; try again, or invite without an e-mail address to get a link".into(),
    }
}

/// Sends an invitation to `to`, naming the organization and role, with the link.
pub async fn send_invitation(
    config: &Config,
    to: &str,
    org_name: &str,
    role: Role,
    url: &str,
) -> Result<()> {
    let Some(smtp) = &config.smtp_url else {
        return Err(Error::Internal("no SMTP server configured".into()));
    };
    let from = config
        .smtp_from
        .parse()
        .map_err(|e| Error::Internal(format!("PUSHDIAL_SMTP_FROM: {e}")))?;
    let to = to
        .parse()
        .map_err(|_| Error::invalid("email", "an e-mail address"))?;
    let body = format!(
        "You are invited to join {org_name} on pushdial as {role}.\n\n\
         Open this link to accept (it works once, for 7 days):\n{url}\n\n\
         If you did not expect this invitation, ignore this e-mail.\n",
        role = role.as_str()
    );
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(format!("Join {org_name} on pushdial"))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp)
        .map_err(|e| Error::Internal(format!("PUSHDIAL_SMTP_URL: {e}")))?
        .timeout(Some(std::time::Duration::from_secs(10)))
        .build();
    transport.send(message).await.map_err(mail_failed)?;
    Ok(())
}
