//! `opskit-ssh`: see the crate README.
