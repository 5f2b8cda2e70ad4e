//! `Idempotency-Key` for mutating POSTs: the rule lives in `pushdial_core::idempotency`, so
//! that a use case in `core` (`placing::place_call`) holds the key in its own order.

pub use pushdial_core::idempotency::Idempotency;
