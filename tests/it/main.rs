//! End-to-end tests of pushdial: real PostgreSQL (one fresh database per test, cloned from
//! a migrated template), real Redis (a key prefix per test), real HTTP and WebSockets, and
//! the reference agent from pushdial-sdk as the phone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fakes;
mod harness;

mod accounts;
mod architecture;
mod asyncapi;
mod attack_egress;
mod attack_http;
mod attack_keys;
mod attack_metrics;
mod attack_pairing;
mod attack_secrets;
mod attack_tenancy;
mod attack_widgets;
mod bad_input;
mod browser;
mod call_loop;
mod cli;
mod dialing;
mod failover;
mod fairness;
mod faults;
mod fuzz;
mod idempotency;
mod isolation;
mod jobs;
mod lifecycle;
mod limits;
mod lists;
mod observability;
mod openapi;
mod push;
mod redis_down;
mod replicas;
mod sdk_python;
mod sdk_ts;
mod shutdown;
mod webhooks;
mod widgets;
