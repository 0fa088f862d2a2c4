//! Server functions: the typed RPC between browser and server, one module per resource.
//! Every endpoint lives under `/api/`, takes form-encoded input and answers JSON.

pub mod auth;
pub mod groups;
pub mod messages;
