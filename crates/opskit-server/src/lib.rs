//! `opskit-server`: see the crate README.
