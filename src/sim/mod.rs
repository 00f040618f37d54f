//! The simulated ISC tenant.
