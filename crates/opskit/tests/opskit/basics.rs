use assert_cmd::Command;
use predicates::prelude::*;

fn opskit() -> Command {
    Command::cargo_bin("opskit").expect("binary built")
}

#[test]
fn version_prints_the_crate_version() {
    opskit()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_lists_exit_codes() {
    opskit()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes:"))
        .stdout(predicate::str::contains("130"));
}

#[test]
fn unknown_flag_is_a_usage_error() {
    opskit()
        .arg("--no-such-flag")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--no-such-flag"));
}

#[test]
fn completions_are_generated_for_bash() {
    opskit()
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("_opskit"));
}

#[test]
fn man_page_is_roff() {
    opskit()
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH opskit"));
}
