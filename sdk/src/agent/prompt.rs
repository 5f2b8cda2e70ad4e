//! The terminal prompt `Call <number>? [y/N]`, fed by one stdin reader thread.

use std::io::{BufRead, IsTerminal, Write};

use tokio::sync::{mpsc, Mutex};
use tracing::{info, warn};

/// Asks `Call <number>? [y/N]` on the terminal, one question at a time.
///
/// Lines come from a dedicated stdin reader thread (started on first use), not
/// from `spawn_blocking`: an abandoned question (call canceled / expired) must
/// not leave a blocking task that stalls runtime shutdown or swallows the
/// answer to the next question. Lines typed before a question are discarded.
#[derive(Default)]
pub(super) struct TerminalPrompt {
    state: Mutex<PromptState>,
}

#[derive(Default)]
struct PromptState {
    /// `Some(line)` per line read; `None` once stdin hit EOF or failed.
    lines: Option<mpsc::UnboundedReceiver<Option<String>>>,
    eof: bool,
}

impl TerminalPrompt {
    pub(super) async fn ask(&self, number: &str) -> bool {
        if !std::io::stdin().is_terminal() {
            info!("confirmation needed but stdin is not a terminal; declining");
            return false;
        }
        let mut state = self.state.lock().await;
        let PromptState { lines, eof } = &mut *state;
        if *eof {
            info!("confirmation needed but stdin is closed; declining");
            return false;
        }
        if lines.is_none() {
            *lines = spawn_stdin_reader();
        }
        let Some(rx) = lines.as_mut() else {
            return false;
        };
        // Drop anything typed before the question.
        while let Ok(stale) = rx.try_recv() {
            if stale.is_none() {
                *eof = true;
                return false;
            }
        }
        print!("Call {number}? [y/N] ");
        let _ = std::io::stdout().flush();
        match rx.recv().await {
            Some(Some(line)) => matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"),
            Some(None) | None => {
                *eof = true;
                println!();
                false
            }
        }
    }
}

fn spawn_stdin_reader() -> Option<mpsc::UnboundedReceiver<Option<String>>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let spawned = std::thread::Builder::new()
        .name("pushdial-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            loop {
                let mut line = String::new();
                match stdin.lock().read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                    Ok(_) => {
                        if tx.send(Some(line)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    match spawned {
        Ok(_) => Some(rx),
        Err(e) => {
            warn!(error = %e, "cannot start the stdin reader");
            None
        }
    }
}
