//! Black-box tests: the real `tillit` binary on an ephemeral port over real TLS, with a fresh
//! data dir per test. One test binary (modules below) to keep link time down.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod helpers;

mod access;
mod admin_cli;
mod audit;
mod auth;
mod backup;
mod crash;
mod demo;
mod edge;
mod external;
mod fhir;
mod keys;
mod rights;
mod stats;
mod tenant_exit;
mod tls;
mod web;
mod web_admin;
mod web_clinician;
mod web_patient;
mod web_security;
