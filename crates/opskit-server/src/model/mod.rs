//! The data types: the inventory's servers ([`servers`]) and the accounts that use it
//! ([`accounts`]).

pub mod accounts;
pub mod monitors;
pub mod servers;

pub use accounts::*;
pub use servers::*;
