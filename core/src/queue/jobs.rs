//! The kinds of job, each a type: its `kind` (the string stored in `jobs.kind`) and the
//! payload it carries. A job is enqueued with its typed payload
//! ([`enqueue_job`](super::enqueue_job), [`NewJob::of`]) and the worker registers one
//! handler per kind, so a kind and its payload are written down once.
//!
//! The kinds and payloads are what the `jobs` table holds: jobs already queued must still
//! run after an upgrade, so a kind's string never changes and a payload only gains optional
//! fields (a test below decodes the payloads as they were written before these types).

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A kind of job: the string it is stored under and the payload it carries.
pub trait JobKind {
    /// The value of `jobs.kind`. A `call.` prefix puts the job in the call lane (see
    /// [`Lane`](super::Lane)).
    const KIND: &'static str;
    /// What the job is about. Fields the payload does not name (the `traceparent` the
    /// queue adds) are ignored when it is read.
    type Payload: Serialize + DeserializeOwned + Send + Sync + 'static;
}

/// Offer a new call to the first reachable device (`call.offer`).
#[derive(Debug, Clone, Copy)]
pub struct CallOffer;

/// The offer to one device was not acknowledged in time: try the next one
/// (`call.offer_timeout`).
#[derive(Debug, Clone, Copy)]
pub struct OfferTimeout;

/// Send a recorded offer to its device (`call.deliver`): the outbox of one offer, retried
/// on transient push or Redis failures, and the crash-safety net of the inline send.
#[derive(Debug, Clone, Copy)]
pub struct OfferDeliver;

/// The call reached its `expires_at` (`call.expire`).
#[derive(Debug, Clone, Copy)]
pub struct CallExpire;

/// Deliver one webhook message, one event to one endpoint (`webhook.deliver`).
#[derive(Debug, Clone, Copy)]
pub struct WebhookDeliver;

impl JobKind for CallOffer {
    const KIND: &'static str = "call.offer";
    type Payload = CallJob;
}

impl JobKind for OfferTimeout {
    const KIND: &'static str = "call.offer_timeout";
    type Payload = OfferJob;
}

impl JobKind for OfferDeliver {
    const KIND: &'static str = "call.deliver";
    type Payload = OfferJob;
}

impl JobKind for CallExpire {
    const KIND: &'static str = "call.expire";
    type Payload = CallJob;
}

impl JobKind for WebhookDeliver {
    const KIND: &'static str = "webhook.deliver";
    type Payload = DeliveryJob;
}

/// Every kind this version enqueues; the worker checks at start that it runs each one.
pub const KINDS: [&str; 5] = [
    CallOffer::KIND,
    OfferTimeout::KIND,
    OfferDeliver::KIND,
    CallExpire::KIND,
    WebhookDeliver::KIND,
];

/// A job about a call (`call.offer`, `call.expire`). `org_id` is also what the call lane's
/// claims take turns by (`jobs.org_id` is generated from it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallJob {
    pub call_id: String,
    pub org_id: String,
}

/// A job about the offer of a call to one device (`call.offer_timeout`, `call.deliver`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferJob {
    pub call_id: String,
    pub org_id: String,
    pub device_id: String,
}

/// A webhook message to deliver (`webhook.deliver`). Written by one statement per batch
/// ([`enqueue_deliveries`](super::enqueue_deliveries) builds it in SQL); the organization
/// and endpoint are the keys the bulk lane's claims take turns by. Deliveries queued before
/// those keys existed and whose message was gone by then carry only `message_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub message_id: i64,
    #[serde(default)]
    pub org_id: String,
    #[serde(default)]
    pub endpoint_id: String,
}

/// A job to enqueue with others in one statement ([`enqueue_all`](super::enqueue_all)).
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: &'static str,
    pub payload: serde_json::Value,
    /// Due at once when `None`.
    pub run_at: Option<DateTime<Utc>>,
}

impl NewJob {
    /// A job of kind `K`.
    pub fn of<K: JobKind>(
        payload: &K::Payload,
        run_at: Option<DateTime<Utc>>,
    ) -> sqlx::Result<Self> {
        Ok(NewJob {
            kind: K::KIND,
            payload: to_value(payload)?,
            run_at,
        })
    }
}

/// A payload as the row stores it.
pub(super) fn to_value(payload: &impl Serialize) -> sqlx::Result<serde_json::Value> {
    serde_json::to_value(payload).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// Reads a claimed job's payload as kind `K`'s.
pub fn payload<K: JobKind>(job: &super::Job) -> Result<K::Payload, serde_json::Error> {
    K::Payload::deserialize(&job.payload)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn job(kind: &str, payload: serde_json::Value) -> super::super::Job {
        super::super::Job {
            id: 1,
            kind: kind.to_owned(),
            payload,
            attempts: 1,
            max_attempts: 10,
            waited_seconds: 0.0,
        }
    }

    /// The kinds as the `jobs` table has always stored them.
    #[test]
    fn kinds_keep_their_stored_names() {
        assert_eq!(
            KINDS,
            [
                "call.offer",
                "call.offer_timeout",
                "call.deliver",
                "call.expire",
                "webhook.deliver"
            ]
        );
    }

    /// Payloads as earlier versions wrote them (`json!` at each enqueue site, the
    /// delivery's built in SQL, with or without a trace context) decode into the types, and
    /// the types write the same JSON back.
    #[test]
    fn payloads_written_before_the_types_still_decode() {
        let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let call = json!({ "call_id": "call_1", "org_id": "org_1" });
        let traced_call = json!({ "call_id": "call_1", "org_id": "org_1", "traceparent": trace });
        let expected = CallJob {
            call_id: "call_1".into(),
            org_id: "org_1".into(),
        };
        for kind in [CallOffer::KIND, CallExpire::KIND] {
            assert_eq!(
                payload::<CallOffer>(&job(kind, call.clone())).unwrap(),
                expected
            );
            assert_eq!(
                payload::<CallExpire>(&job(kind, traced_call.clone())).unwrap(),
                expected
            );
        }
        assert_eq!(to_value(&expected).unwrap(), call);

        let offer = json!({"call_id": "call_1", "org_id": "org_1", "device_id": "dev_1"});
        let expected = OfferJob {
            call_id: "call_1".into(),
            org_id: "org_1".into(),
            device_id: "dev_1".into(),
        };
        assert_eq!(
            payload::<OfferTimeout>(&job(OfferTimeout::KIND, offer.clone())).unwrap(),
            expected
        );
        let mut traced = offer.clone();
        traced["traceparent"] = trace.into();
        assert_eq!(
            payload::<OfferDeliver>(&job(OfferDeliver::KIND, traced)).unwrap(),
            expected
        );
        assert_eq!(to_value(&expected).unwrap(), offer);

        let delivery = json!({ "message_id": 42, "org_id": "org_1", "endpoint_id": "ep_1", "traceparent": trace });
        assert_eq!(
            payload::<WebhookDeliver>(&job(WebhookDeliver::KIND, delivery)).unwrap(),
            DeliveryJob {
                message_id: 42,
                org_id: "org_1".into(),
                endpoint_id: "ep_1".into(),
            }
        );
        // Queued before deliveries named their keys, message gone at the migration.
        let bare = json!({ "message_id": 7 });
        assert_eq!(
            payload::<WebhookDeliver>(&job(WebhookDeliver::KIND, bare))
                .unwrap()
                .message_id,
            7
        );
        assert!(payload::<WebhookDeliver>(&job(WebhookDeliver::KIND, json!({}))).is_err());
        assert!(payload::<OfferTimeout>(&job(OfferTimeout::KIND, call)).is_err());
    }
}
