//! Issue 18 through the binary: hostile servers on loopback try to steal secrets, loop, flood
//! memory, drip bytes and drive the terminal. Terminal cases run under a pseudo-terminal
//! (python3's `pty`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assert_cmd::Command;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use predicates::prelude::*;

fn opskit() -> Command {
    let mut c = Command::cargo_bin("opskit").expect("binary built");
    c.timeout(Duration::from_secs(60))
        .env_remove("OPSKIT_PROFILE")
        .env("OPSKIT_CONFIG", "/nonexistent/opskit-test-config.toml");
    c
}

type Seen = Arc<Mutex<Vec<(String, HashMap<String, String>)>>>;
type Route = Arc<dyn Fn(&str, &str) -> Response + Send + Sync>;

/// A server on 127.0.0.1:0 in its own thread that records every request.
fn hostile(route: impl Fn(&str, &str) -> Response + Send + Sync + 'static) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let route: Route = Arc::new(route);
    let (tx, rx) = std::sync::mpsc::channel();
    let rec = seen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            tx.send(base.clone()).unwrap();
            let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
                let rec = rec.clone();
                let route = route.clone();
                let base = base.clone();
                async move {
                    let pq = uri
                        .path_and_query()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_default();
                    let h = headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_string(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect();
                    rec.lock().unwrap().push((pq.clone(), h));
                    route(&base, &pq)
                }
            });
            axum::serve(listener, app).await.unwrap();
        });
    });
    (rx.recv().unwrap(), seen)
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [("location", to.to_string())]).into_response()
}

fn json(body: &'static str) -> Response {
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}

/// Runs `opskit ARGS` under a pseudo-terminal; returns (exit code, everything it wrote).
fn in_pty(args: &[&str]) -> (i32, Vec<u8>) {
    let bin = assert_cmd::cargo::cargo_bin("opskit");
    let script = r#"
import os, pty, sys
out = bytearray()
def read(fd):
    data = os.read(fd, 65536)
    out.extend(data)
    return data
status = pty.spawn(sys.argv[1:], read)
sys.stdout.buffer.write(bytes(out))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(bin)
        .args(args)
        .env("OPSKIT_CONFIG", "/nonexistent/opskit-test-config.toml")
        .env("NO_COLOR", "1")
        .output()
        .expect("python3 runs");
    (out.status.code().unwrap_or(-1), out.stdout)
}

#[test]
fn an_api_key_header_never_reaches_another_origin() {
    let (b, b_seen) = hostile(|_, _| json("{}"));
    let to = format!("{b}/stolen");
    let (a, _) = hostile(move |_, _| redirect(&to));
    opskit()
        .args([
            "get",
            &format!("{a}/redir"),
            "--api-key",
            "X-API-Key=env:HOSTILE_KEY",
        ])
        .env("HOSTILE_KEY", "k-123")
        .assert()
        .success();
    let hits = b_seen.lock().unwrap().clone();
    assert_eq!(hits.len(), 1, "the redirect is followed");
    let (path, h) = &hits[0];
    assert_eq!(path, "/stolen");
    assert!(!h.contains_key("x-api-key"), "{h:?}");
    assert!(!h.contains_key("referer"), "{h:?}");
    assert!(!format!("{h:?}").contains("k-123"));
}

#[test]
fn a_query_key_leaks_neither_in_the_url_nor_by_referer() {
    let (b, b_seen) = hostile(|_, _| json("{}"));
    let to = format!("{b}/stolen");
    let (a, a_seen) = hostile(move |_, _| redirect(&to));
    opskit()
        .args([
            "get",
            &format!("{a}/redir"),
            "--api-key",
            "api_key=env:HOSTILE_KEY",
            "--api-key-in",
            "query",
        ])
        .env("HOSTILE_KEY", "q-123")
        .assert()
        .success();
    assert!(a_seen.lock().unwrap()[0].0.contains("api_key=q-123"));
    let (path, h) = b_seen.lock().unwrap()[0].clone();
    assert!(!path.contains("q-123"), "{path}");
    assert!(!h.contains_key("referer"), "{h:?}");
}

#[test]
fn a_redirect_loop_is_not_retried_nor_called_a_connection_problem() {
    let (a, seen) = hostile(|_, _| redirect("/loop"));
    opskit()
        .args(["get", &format!("{a}/loop")])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("redirect loop"))
        .stderr(predicate::str::contains("check the host and port").not());
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn paging_stops_with_an_error_when_the_next_link_repeats() {
    let (a, seen) = hostile(|base, _| {
        let mut r = json("[1,2]");
        r.headers_mut().insert(
            "link",
            format!("<{base}/items>; rel=\"next\"").parse().unwrap(),
        );
        r
    });
    opskit()
        .args(["get", &format!("{a}/items"), "--paginate"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("same next link twice"));
    assert!(seen.lock().unwrap().len() <= 3);
}

#[test]
fn a_json_body_over_max_body_is_a_clear_error_and_raw_streams_it() {
    let (a, _) = hostile(|_, _| {
        let big = format!("[{}1]", "1,".repeat(1_000_000));
        (StatusCode::OK, [("content-type", "application/json")], big).into_response()
    });
    opskit()
        .args(["get", &format!("{a}/big"), "--max-body", "1M"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("1048576-byte cap"))
        .stderr(predicate::str::contains("--max-body"));
    let out = opskit()
        .args([
            "get",
            &format!("{a}/big"),
            "--max-body",
            "1M",
            "--output",
            "raw",
        ])
        .assert()
        .success();
    assert_eq!(out.get_output().stdout.len(), 2_000_003);
}

#[test]
fn csv_and_table_never_turn_an_escaped_esc_into_a_real_one() {
    let (a, _) = hostile(|_, _| json(r#"[{"name":"a\u001b[31mb\u202e","k\u001bx":1}]"#));
    for fmt in ["csv", "table"] {
        let out = opskit()
            .args(["get", &format!("{a}/x"), "--output", fmt])
            .assert()
            .success();
        let stdout = &out.get_output().stdout;
        assert!(!stdout.contains(&0x1b), "{fmt}: {stdout:?}");
        let text = String::from_utf8_lossy(stdout);
        assert!(text.contains("a\\x1b[31mb\\u{202e}"), "{fmt}: {text}");
        assert!(!text.contains('\u{202e}'), "{fmt}: {text}");
    }
}

#[test]
fn on_a_terminal_error_lines_and_bodies_from_the_server_are_escaped() {
    let (a, _) = hostile(|_, pq| match pq {
        "/text" => (StatusCode::OK, "hello\x1b]0;pwned\x07\r\nforged line\n").into_response(),
        _ => (
            StatusCode::IM_A_TEAPOT,
            [("content-type", "text/plain")],
            "\x1b[2J\r\nerror: forged",
        )
            .into_response(),
    });
    let (code, out) = in_pty(&["get", &format!("{a}/text")]);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out));
    assert!(!out.contains(&0x1b) && !out.contains(&0x07), "{out:?}");
    assert!(String::from_utf8_lossy(&out).contains("hello\\x1b]0;pwned\\x07"));

    let (code, out) = in_pty(&["get", &format!("{a}/err"), "--check-status"]);
    assert_eq!(code, 4, "{}", String::from_utf8_lossy(&out));
    assert!(!out.contains(&0x1b), "{out:?}");
}

#[test]
fn a_binary_body_is_not_dumped_on_a_terminal_unless_asked() {
    let (a, _) = hostile(|_, _| {
        (
            StatusCode::OK,
            [("content-type", "application/octet-stream")],
            vec![0u8, 0x1b, b'[', b'2', b'J', 0xff, 0xfe],
        )
            .into_response()
    });
    let (code, out) = in_pty(&["get", &format!("{a}/bin")]);
    assert_eq!(code, 1);
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("binary"), "{text}");
    assert!(!out.contains(&0x1b), "{out:?}");
    // piped, it is data: passed through as is
    let out = opskit()
        .args(["get", &format!("{a}/bin")])
        .assert()
        .success();
    assert_eq!(out.get_output().stdout.len(), 7);
    // on a terminal with --output raw: asked for
    let (code, _) = in_pty(&["get", &format!("{a}/bin"), "--output", "raw"]);
    assert_eq!(code, 0);
}

#[test]
fn a_download_name_loses_its_right_to_left_override() {
    let (a, _) = hostile(|_, _| {
        (
            StatusCode::OK,
            [(
                "content-disposition",
                "attachment; filename*=UTF-8''invoice%E2%80%AEfdp.exe",
            )],
            "data",
        )
            .into_response()
    });
    let dir = tempfile::tempdir().unwrap();
    opskit()
        .current_dir(dir.path())
        .args(["get", &format!("{a}/f"), "--download"])
        .assert()
        .success();
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["invoicefdp.exe".to_string()]);
}

#[test]
fn continue_after_a_bad_206_keeps_the_users_file() {
    let (a, _) = hostile(|_, _| {
        (
            StatusCode::PARTIAL_CONTENT,
            [("content-range", "bytes 0-3/10")],
            "junk",
        )
            .into_response()
    });
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("keep.bin");
    std::fs::write(&f, "hello").unwrap();
    opskit()
        .args(["get", &format!("{a}/f"), "--download", "--continue", "-o"])
        .arg(&f)
        .assert()
        .failure();
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "hello");
    assert!(!dir.path().join("keep.bin.part").exists());
}

#[test]
fn max_time_ends_a_download_that_drips() {
    let (a, _) = hostile(|_, _| {
        let s = futures::stream::unfold(0u32, |n| async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Some((
                Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"x")),
                n + 1,
            ))
        });
        let mut r = Response::new(Body::from_stream(s));
        r.headers_mut()
            .insert("content-length", "1000000".parse().unwrap());
        r
    });
    let dir = tempfile::tempdir().unwrap();
    opskit()
        .args(["get", &format!("{a}/slow"), "--download", "--timeout", "5s"])
        .args(["--max-time", "1s", "-o"])
        .arg(dir.path().join("slow.bin"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("--max-time"));
}

#[test]
fn a_long_rate_limit_pause_is_said_on_stderr_when_piped() {
    let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (a, _) = hostile(move |_, _| {
        if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "").into_response()
        } else {
            json("{}")
        }
    });
    opskit()
        .args(["get", &format!("{a}/x")])
        .assert()
        .success()
        .stderr(predicate::str::contains("waiting"));
}
