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

/// Runs opskit with its stdout a pipe whose reading end is already closed (`| head` that left).
pub fn with_closed_stdout(cmd: &mut std::process::Command) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(writer)
        .stderr(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Runs opskit with its stdout on `/dev/full` (every write fails with ENOSPC).
pub fn with_full_stdout(cmd: &mut std::process::Command) -> std::process::Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    cmd.stdout(full)
        .stderr(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

pub fn bin() -> std::process::Command {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("opskit"))
}

/// A closed stdout ends the command quietly with success: no panic (101), no "Broken pipe".
pub fn assert_quiet_success(out: &std::process::Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.to_lowercase().contains("broken pipe"), "{err}");
}

/// A full disk is an error on stderr with exit 1, never a panic.
pub fn assert_stdout_failure(out: &std::process::Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains("cannot write to stdout"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn completions_and_man_into_a_closed_pipe_end_quietly() {
    assert_quiet_success(&with_closed_stdout(bin().args(["completions", "bash"])));
    assert_quiet_success(&with_closed_stdout(bin().arg("man")));
    assert_quiet_success(&with_closed_stdout(bin().arg("--help")));
}

#[test]
fn completions_and_man_onto_a_full_disk_fail_clearly() {
    assert_stdout_failure(&with_full_stdout(bin().args(["completions", "zsh"])));
    assert_stdout_failure(&with_full_stdout(bin().arg("man")));
}

#[test]
fn user_and_apikey_list_into_a_closed_pipe_end_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/admin.db", dir.path().display());
    // the admin commands never create a database (issue 12, defect 7)
    opskit()
        .args(["db", "init", "--database", &db])
        .assert()
        .success();
    opskit()
        .args(["user", "--database", &db, "add", "bob", "--password-stdin"])
        .write_stdin("correct-horse-1\n")
        .assert()
        .success();
    assert_quiet_success(&with_closed_stdout(bin().args([
        "user",
        "--database",
        &db,
        "list",
    ])));
    assert_quiet_success(&with_closed_stdout(bin().args([
        "apikey",
        "--database",
        &db,
        "list",
    ])));
    assert_stdout_failure(&with_full_stdout(bin().args([
        "user",
        "--database",
        &db,
        "list",
    ])));
}

/// Issue 12 (defect 19): `opskit man` points only to pages that exist (it writes one page).
#[test]
fn man_page_refers_to_no_missing_pages() {
    let out = opskit().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    for sub in [
        "http",
        "net",
        "ssh",
        "notify",
        "serve",
        "help",
        "completions",
    ] {
        assert!(
            !page.contains(&format!("opskit-{sub}(1)"))
                && !page.contains(&format!("opskit\\-{sub}(1)")),
            "the page refers to opskit-{sub}(1), which is not installed:\n{page}"
        );
    }
    assert!(page.contains("opskit net"), "{page}");
    assert!(page.contains("\\-\\-help"), "{page}");
}
