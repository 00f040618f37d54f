//! report

pub mod policy_text;
