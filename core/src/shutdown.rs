//! A small shutdown signal shared by long-running loops (sockets, subscribers, workers):
//! one `Trigger`, any number of cloned `Stop`s that resolve once it fires.

use tokio::sync::watch;

/// Resolves `wait()` once `Trigger::stop` was called or the trigger dropped.
#[derive(Clone, Debug)]
pub struct Stop(watch::Receiver<bool>);

/// The side that decides when to stop.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

pub fn channel() -> (Trigger, Stop) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Stop(rx))
}

impl Trigger {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl Stop {
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        // `wait_for` returns at once if already stopped; an error means the trigger is gone.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }
}
