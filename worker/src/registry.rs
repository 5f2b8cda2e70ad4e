//! Which function runs each kind of job. Every [`JobKind`] the worker runs has a
//! [`Handler`], registered once in [`Registry::standard`]; a claimed job is looked up by
//! its stored kind, its payload read as that kind's type, and handed to the handler. A job
//! of a kind nobody registered fails (and is retried, then buried) as any failed job does.

use std::collections::HashMap;
use std::future::Future;

use futures::future::BoxFuture;
use pushdial_core::queue::jobs::{
    self, CallExpire, CallOffer, JobKind, OfferDeliver, OfferTimeout, WebhookDeliver,
};
use pushdial_core::queue::Job;

use crate::{offer, webhooks, JobError, Ran, Worker};

/// What the worker does with a job of one kind.
pub trait Handler: JobKind {
    /// Runs the job; `payload` is its payload, read as this kind's.
    fn run<'a>(
        worker: &'a Worker,
        job: &'a Job,
        payload: Self::Payload,
    ) -> impl Future<Output = Result<Ran, JobError>> + Send + 'a;
}

impl Handler for CallOffer {
    async fn run(worker: &Worker, _: &Job, p: jobs::CallJob) -> Result<Ran, JobError> {
        offer::offer_call(worker, &p).await.map(|()| Ran::Finished)
    }
}

impl Handler for OfferTimeout {
    async fn run(worker: &Worker, _: &Job, p: jobs::OfferJob) -> Result<Ran, JobError> {
        offer::offer_timeout(worker, &p)
            .await
            .map(|()| Ran::Finished)
    }
}

impl Handler for OfferDeliver {
    async fn run(worker: &Worker, _: &Job, p: jobs::OfferJob) -> Result<Ran, JobError> {
        offer::deliver_offer(worker, &p)
            .await
            .map(|()| Ran::Finished)
    }
}

impl Handler for CallExpire {
    async fn run(worker: &Worker, _: &Job, p: jobs::CallJob) -> Result<Ran, JobError> {
        offer::expire_call(worker, &p).await.map(|()| Ran::Finished)
    }
}

impl Handler for WebhookDeliver {
    async fn run(worker: &Worker, job: &Job, p: jobs::DeliveryJob) -> Result<Ran, JobError> {
        webhooks::deliver(worker, job, &p).await
    }
}

/// A registered handler, with the payload decoding in front of it.
type Run = for<'a> fn(&'a Worker, &'a Job) -> BoxFuture<'a, Result<Ran, JobError>>;

fn run<'a, K: Handler>(worker: &'a Worker, job: &'a Job) -> BoxFuture<'a, Result<Ran, JobError>> {
    Box::pin(async move {
        let payload =
            jobs::payload::<K>(job).map_err(|e| JobError::from(format!("bad payload: {e}")))?;
        K::run(worker, job, payload).await
    })
}

/// The handlers by kind; built once when the worker is made.
pub struct Registry {
    runs: HashMap<&'static str, Run>,
}

impl Registry {
    /// No handler yet.
    pub fn empty() -> Self {
        Registry {
            runs: HashMap::new(),
        }
    }

    /// Every kind pushdial enqueues.
    pub fn standard() -> Self {
        Self::empty()
            .register::<CallOffer>()
            .register::<OfferTimeout>()
            .register::<OfferDeliver>()
            .register::<CallExpire>()
            .register::<WebhookDeliver>()
    }

    /// Runs jobs of kind `K` with its handler.
    pub fn register<K: Handler>(mut self) -> Self {
        self.runs.insert(K::KIND, run::<K>);
        self
    }

    /// The kinds core enqueues that have no handler here (none, unless a kind was added to
    /// core and not to [`Registry::standard`]).
    pub fn missing(&self) -> Vec<&'static str> {
        jobs::KINDS
            .into_iter()
            .filter(|kind| !self.runs.contains_key(kind))
            .collect()
    }

    /// Runs `job` with the handler of its kind.
    pub async fn run(&self, worker: &Worker, job: &Job) -> Result<Ran, JobError> {
        match self.runs.get(job.kind.as_str()) {
            Some(run) => run(worker, job).await,
            None => Err(JobError::from(format!("unknown job kind {}", job.kind))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_core_enqueues_has_a_handler() {
        assert_eq!(Registry::standard().missing(), Vec::<&str>::new());
        assert_eq!(Registry::empty().missing().len(), jobs::KINDS.len());
    }
}
