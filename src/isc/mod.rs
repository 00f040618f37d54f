//! Client of the ISC personal access token API.

pub mod client;
pub mod error;
pub mod model;

pub use client::{
    ApiVersion, Client, ClientSettings, DeleteOutcome, ListFilter, Listing, RequestStats,
};
pub use error::IscError;
pub use model::{Owner, Token};
