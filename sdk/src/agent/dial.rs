//! Placing the call: the built-in dialer or the dial command, run in its own
//! process group so that an interrupted call stops everything it started.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use super::offer::OfferCtx;

impl OfferCtx {
    /// Places the call. `Err` describes why it failed. `cancel` interrupts
    /// it (the dial command's whole process group is terminated).
    pub(super) async fn dial(
        &self,
        number: &str,
        call_id: &str,
        cancel: &CancellationToken,
    ) -> std::result::Result<(), String> {
        let Some(cmd) = &self.dial_command else {
            println!("Dialing {number}");
            if !self.call_duration.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(self.call_duration) => {}
                    () = cancel.cancelled() => return Err("interrupted".to_owned()),
                }
            }
            return Ok(());
        };
        info!("running the dial command");
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(cmd)
            .arg("pushdial-dial")
            .arg(number)
            .env("PUSHDIAL_NUMBER", number)
            .env("PUSHDIAL_CALL_ID", call_id)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        // Own process group: an interrupted dial stops everything it started.
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start the dial command: {e}"))?;
        let mut group = ProcessGroup::of(child.id());
        tokio::select! {
            status = child.wait() => {
                group.disarm();
                let status = status.map_err(|e| format!("waiting for the dial command: {e}"))?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("dial command {status}"))
                }
            }
            () = cancel.cancelled() => {
                group.terminate();
                if tokio::time::timeout(Duration::from_secs(2), child.wait()).await.is_ok() {
                    group.disarm();
                }
                // An armed guard SIGKILLs the group when dropped.
                Err("interrupted".to_owned())
            }
        }
    }
}

/// The dial command's process group; SIGKILLed on drop unless disarmed, so
/// that grandchildren (`sh -c 'a; b'`) never outlive an interrupted call.
struct ProcessGroup {
    #[cfg(unix)]
    pgid: Option<nix::unistd::Pid>,
}

impl ProcessGroup {
    #[cfg(unix)]
    fn of(pid: Option<u32>) -> Self {
        let pgid = pid
            .and_then(|p| i32::try_from(p).ok())
            .map(nix::unistd::Pid::from_raw);
        ProcessGroup { pgid }
    }

    #[cfg(not(unix))]
    fn of(_pid: Option<u32>) -> Self {
        ProcessGroup {}
    }

    /// Asks the whole group to stop (SIGTERM).
    fn terminate(&self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
        }
    }

    /// The command finished on its own: leave the group alone.
    fn disarm(&mut self) {
        #[cfg(unix)]
        {
            self.pgid = None;
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid.take() {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::agent::prompt::TerminalPrompt;
    use crate::client::AgentClient;
    use rand::Rng;
    use tokio::time::Instant;

    #[tokio::test]
    async fn dial_command_gets_number_and_reports_exit_status() {
        let client = AgentClient::new("http://127.0.0.1:9", "pd_dev_x").unwrap();
        let mut ctx = OfferCtx {
            client,
            auto: true,
            dial_command: Some(
                r#"test "$1" = "$PUSHDIAL_NUMBER" && test "$1" = "+15551234567""#.into(),
            ),
            call_duration: Duration::ZERO,
            confirm: None,
            prompt: TerminalPrompt::default(),
        };
        let cancel = CancellationToken::new();
        assert_eq!(ctx.dial("+15551234567", "call_1", &cancel).await, Ok(()));
        ctx.dial_command = Some("exit 3".into());
        assert!(ctx.dial("+15551234567", "call_1", &cancel).await.is_err());
        ctx.dial_command = None;
        assert_eq!(ctx.dial("+15551234567", "call_1", &cancel).await, Ok(()));
    }

    #[tokio::test]
    async fn interrupted_dial_stops_the_whole_command() {
        let client = AgentClient::new("http://127.0.0.1:9", "pd_dev_x").unwrap();
        let marker = std::env::temp_dir().join(format!(
            "pushdial-dial-{}-{}",
            std::process::id(),
            rand::thread_rng().gen::<u64>()
        ));
        let ctx = OfferCtx {
            client,
            auto: true,
            // The grandchild `sleep` must die with the group, so the marker never appears.
            dial_command: Some(format!("sleep 2; touch '{}'", marker.display())),
            call_duration: Duration::ZERO,
            confirm: None,
            prompt: TerminalPrompt::default(),
        };
        let cancel = CancellationToken::new();
        let canceler = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            canceler.cancel();
        });
        let started = Instant::now();
        let r = ctx.dial("+15551234567", "call_1", &cancel).await;
        assert_eq!(r, Err("interrupted".to_owned()));
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "the dial command kept running");
    }
}
