//! `opskit-http`: see the crate README.
