//! patrol keeps the personal access tokens (PATs) of SailPoint Identity Security Cloud
//! tenants clean: it lists every token, judges each against a TOML policy, and reports or
//! deletes the stale ones, with dry run by default and several safety rails in between.
//!
//! One audit run flows through the modules in this order:
//!
//! - [`config`]: the policy file, its validation and the secrets it points to;
//! - [`isc`]: the API client (OAuth token cache, list, delete, retries, pacing);
//! - [`policy`]: rules and matchers, the verdict for one token at one instant;
//! - [`safety`]: exemptions, protections, grace periods and dry run, turning verdicts into
//!   outcomes;
//! - [`audit`]: one run of the pipeline for one tenant;
//! - [`report`]: renderings of a run (table, JSON);
//! - [`sim`]: the simulated tenant used by `patrol sim`, `patrol demo`, tests and
//!   benchmarks.
//!
//! The daemon, `patrol run`, adds [`schedule`] (when each tenant's runs start),
//! [`daemon`] (workers, reload, stop, systemd notifications), [`metrics`] and [`http`]
//! (`/metrics`, `/healthz`, `/readyz`), and [`logging`] (stderr or journald).
//!
//! The binary in `main.rs` only parses arguments and wires these together through [`cli`].

#![forbid(unsafe_code)]

pub mod audit;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod http;
pub mod isc;
mod json_text;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod report;
pub mod safety;
pub mod schedule;
pub mod sim;
pub mod state;
