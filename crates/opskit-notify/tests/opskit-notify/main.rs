//! Tests of opskit-notify.

mod signing;
