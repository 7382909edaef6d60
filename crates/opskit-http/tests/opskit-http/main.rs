//! Integration tests of opskit-http against a local axum fixture server.
