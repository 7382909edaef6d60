//! Integration tests of the inventory API. Every scenario runs twice: against SQLite and against
//! the PostgreSQL named by `OPSKIT_TEST_POSTGRES_URL` (each test gets its own fresh database).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod support;

mod auth;
mod cache_coherence;
mod connections;
mod docs;
mod events;
mod hardening;
mod inventory;
mod monitors;
mod protection;
mod status_page;

/// Generates `<name>::sqlite` and `<name>::postgres` tests from one async scenario.
#[macro_export]
macro_rules! both {
    ($module:ident :: $name:ident) => {
        $crate::both!($module::$name, $crate::support::Options::default());
    };
    ($module:ident :: $name:ident, $opts:expr) => {
        pub mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app =
                    $crate::support::TestApp::start($crate::support::Backend::Sqlite, $opts).await;
                $crate::$module::$name(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(app) = $crate::support::TestApp::start_pg($opts).await else {
                    return;
                };
                $crate::$module::$name(app).await;
            }
        }
    };
}
