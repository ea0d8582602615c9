//! The HTTP API's blocking client, from the `api` package, under the path the
//! scheduler's callers know.

pub use ::api::client::{Client, ClientError};
