//! Renderings of a run: a readable table and the JSON report.
//!
//! Renderers are pure functions of a [`Run`](crate::audit::Run) that write to a writer, so
//! they can be snapshot-tested and never touch the network or the state.

mod explain;
mod json;
pub mod policy_text;
mod reason;
mod table;

pub use explain::render_explanation;
pub use json::{render_json, to_json};
pub use reason::reason;
pub use table::render_table;

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats an instant as RFC 3339 in UTC with `Z`, keeping fraction digits only when set.
pub fn instant(value: DateTime<Utc>) -> String {
    value.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Whole days between two instants, rounded down.
pub fn days_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> i64 {
    (later - earlier).num_days()
}
