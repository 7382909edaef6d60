//! `opskit-notify`: see the crate README.
