//! Integration tests of the `opskit` binary.

mod basics;
mod serve;
