//! The server's integration tests: real servers on free ports, driven over HTTP and WebSocket like
//! a browser, a script or another Pusher peer would. One test binary for all of them: each file
//! alone was a binary of its own that compiled and linked the whole server again (nine times).
//!
//! `cargo test -p server --test integration realtime::` runs one file's tests.

mod common;
mod sockets;

mod cluster;
mod files;
mod hardening;
mod http;
mod messages;
mod operations;
mod pusher;
mod realtime;
mod security;
