//! Issue 17, the http flags users of curl, xh and jq reach for: `-r/--raw-output` and `--output
//! raw` with `--filter`, client certificates (`--cert/--key`), `--insecure`, `--proxy` and the
//! proxy environment, `--no-follow`/`--max-redirects`, and `--max-time` over retries. Through the
//! real binary against servers on 127.0.0.1:0: a plain HTTP fixture, an HTTPS server with a
//! self-signed certificate that requires a client certificate, and a small forwarding proxy
//! (absolute-form requests and CONNECT) that counts what goes through it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use assert_cmd::Command;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------- plain HTTP fixture

/// Hits per path, so each test reads its own counter.
fn hits() -> &'static Mutex<HashMap<String, u32>> {
    static HITS: OnceLock<Mutex<HashMap<String, u32>>> = OnceLock::new();
    HITS.get_or_init(Mutex::default)
}

fn hits_of(path: &str) -> u32 {
    hits().lock().unwrap().get(path).copied().unwrap_or(0)
}

fn handle(uri: &Uri, headers: &HeaderMap) -> Response {
    let path = uri.path().to_owned();
    *hits().lock().unwrap().entry(path.clone()).or_default() += 1;
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["users"] => axum::Json(json!([
            {"name": "Leanne", "city": "Gwenborough", "id": 1},
            {"name": "Ervin \"Jr\"", "city": "Wisokyburgh", "id": 2}
        ]))
        .into_response(),
        // /hop/TAG/N redirects N times (302), then answers
        ["hop", tag, n] => {
            let n: u32 = n.parse().unwrap();
            if n == 0 {
                axum::Json(json!({"arrived": true})).into_response()
            } else {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, format!("/hop/{tag}/{}", n - 1))],
                    format!("moved to hop {}\n", n - 1),
                )
                    .into_response()
            }
        }
        // one page of items, the next page is always busy
        ["pages", tag] => (
            [(header::LINK, format!("</busy/{tag}>; rel=\"next\""))],
            axum::Json(json!([{"id": 1}, {"id": 2}])),
        )
            .into_response(),
        // always busy, and says when to come back
        ["busy", _] => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "busy\n",
        )
            .into_response(),
        // what a proxy in the middle would change: shows the request's Host
        ["where", _] => axum::Json(json!({
            "host": headers.get(header::HOST).and_then(|v| v.to_str().ok()),
        }))
        .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn server() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new()
                    .fallback(|uri: Uri, headers: HeaderMap| async move { handle(&uri, &headers) });
                axum::serve(listener, app).await.unwrap();
            });
        });
        format!("http://{}", rx.recv().unwrap())
    })
}

fn url(path: &str) -> String {
    format!("{}{path}", server())
}

/// A path of its own for one test, so counters do not mix.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}/t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

// ---------------------------------------------------------------- helpers

/// `opskit` with a clean environment: no config file, no profile, no proxy variables.
fn opskit(tmp: &Path) -> Command {
    let mut c = Command::cargo_bin("opskit").expect("binary built");
    c.env_remove("OPSKIT_PROFILE")
        .env("OPSKIT_CONFIG", tmp.join("no-config.toml"))
        .env("XDG_CACHE_HOME", tmp.join("cache"))
        .env("NO_COLOR", "1")
        .current_dir(tmp)
        .timeout(Duration::from_secs(60));
    for v in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ] {
        c.env_remove(v);
    }
    c
}

fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run_ok(cmd: &mut Command) -> (String, String) {
    let (code, out, err) = run(cmd);
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    (out, err)
}

fn write_config(tmp: &Path, text: &str) -> PathBuf {
    let p = tmp.join("config.toml");
    std::fs::write(&p, text).unwrap();
    p
}

// ---------------------------------------------------------------- -r and --output raw

#[test]
fn raw_output_prints_filtered_strings_unquoted_like_jq_r() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, _) =
        run_ok(opskit(tmp.path()).args(["get", &url("/users"), "--filter", ".[].name", "-r"]));
    assert_eq!(out, "Leanne\nErvin \"Jr\"\n");
    // without -r the strings stay JSON
    let (out, _) = run_ok(opskit(tmp.path()).args(["get", &url("/users"), "--filter", ".[].name"]));
    assert_eq!(out, "\"Leanne\"\n\"Ervin \\\"Jr\\\"\"\n");
    // values that are not strings are still JSON: indented by default, compact with ndjson
    let (out, _) = run_ok(opskit(tmp.path()).args([
        "get",
        &url("/users"),
        "--raw-output",
        "--filter",
        ".[0] | .name, {id}",
    ]));
    assert_eq!(out, "Leanne\n{\n  \"id\": 1\n}\n");
    let (out, _) = run_ok(opskit(tmp.path()).args([
        "get",
        &url("/users"),
        "-r",
        "--output",
        "ndjson",
        "--filter",
        ".[] | .city, {id}",
    ]));
    assert_eq!(out, "Gwenborough\n{\"id\":1}\nWisokyburgh\n{\"id\":2}\n");
    // with --paginate, item by item (no JSON array around them)
    let (out, _) = run_ok(opskit(tmp.path()).args([
        "get",
        &url("/users"),
        "--paginate",
        "--filter",
        ".name",
        "-r",
    ]));
    assert_eq!(out, "Leanne\nErvin \"Jr\"\n");
    // -r makes no sense for csv and table: a usage error
    let (code, _, err) =
        run(opskit(tmp.path()).args(["get", &url("/users"), "-r", "--output", "csv"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("-r") && err.contains("csv"), "{err}");
}

#[test]
fn output_raw_applies_the_filter_instead_of_ignoring_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, _) = run_ok(opskit(tmp.path()).args([
        "get",
        &url("/users"),
        "--output",
        "raw",
        "--filter",
        ".[] | .name, {id}",
    ]));
    // as jq -rc: strings bare, other values compact, one per line
    assert_eq!(out, "Leanne\n{\"id\":1}\nErvin \"Jr\"\n{\"id\":2}\n");
    // without a filter the body is still exactly as sent
    let (out, _) = run_ok(opskit(tmp.path()).args(["get", &url("/users"), "--output", "raw"]));
    assert!(out.starts_with("[{\"name\":\"Leanne\""), "{out}");
}

// ---------------------------------------------------------------- TLS: client certificates

/// A self-signed server certificate for localhost and 127.0.0.1 (marked as a CA, as `openssl
/// req -x509` makes it), and a client certificate issued by a client CA the server trusts.
struct Pki {
    server_cert: String,
    server_key: String,
    client_ca: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let server_key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let server_cert = params.self_signed(&server_key).unwrap();

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "opskit test client CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "opskit-test-client");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
    Pki {
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_ca: ca_cert.pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

/// An HTTPS server on 127.0.0.1:0 that refuses a client without a certificate from the client
/// CA; every path answers `{"tls": true, "client_cert": true}`.
fn mtls_server(pki: &Pki) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pki.server_cert.as_bytes())
            .map(|c| c.unwrap())
            .collect();
    let key = PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pki.client_ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let client_cert = tls.get_ref().1.peer_certificates().is_some();
                    let app = axum::Router::new().fallback(move || async move {
                        axum::Json(json!({"tls": true, "client_cert": client_cert}))
                    });
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
    });
    port
}

/// The PEM files of `pki` in `dir`: (server CA bundle, client cert, client key, cert+key in one).
fn pem_files(dir: &Path, pki: &Pki) -> (String, String, String, String) {
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    (
        w("server-ca.pem", &pki.server_cert),
        w("client.pem", &pki.client_cert),
        w("client.key", &pki.client_key),
        w(
            "client-both.pem",
            &format!("{}{}", pki.client_cert, pki.client_key),
        ),
    )
}

#[test]
fn a_client_certificate_is_presented_with_cert_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki();
    let port = mtls_server(&pki);
    let (bundle, cert, key, both) = pem_files(tmp.path(), &pki);
    let target = format!("https://127.0.0.1:{port}/hosts");
    // without a client certificate the server ends the handshake: a TLS failure, exit 3, and
    // the hint names --cert
    let (code, out, err) =
        run(opskit(tmp.path()).args(["get", &target, "--ca-bundle", &bundle, "--retries", "0"]));
    assert_eq!(code, Some(3), "stdout: {out}\nstderr: {err}");
    assert!(err.contains("--cert"), "{err}");
    // with it (key apart, or in the same file), verified against --ca-bundle: no warning
    for args in [vec!["--cert", &cert, "--key", &key], vec!["--cert", &both]] {
        let mut cmd = opskit(tmp.path());
        cmd.args(["get", &target, "--ca-bundle", &bundle, "--check-status"])
            .args(&args);
        let (out, err) = run_ok(&mut cmd);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v, json!({"tls": true, "client_cert": true}), "{args:?}");
        // nothing on stderr: no warning, and no error line logged by a verifier on the way
        assert_eq!(err, "", "{args:?}");
    }
    // from a profile
    let cfg = write_config(
        tmp.path(),
        &format!(
            "[profiles.mtls]\nbase_url = \"https://127.0.0.1:{port}\"\nca_bundle = \"{bundle}\"\n\
             client_cert = \"{cert}\"\nclient_key = \"{key}\"\n"
        ),
    );
    let (out, err) = run_ok(opskit(tmp.path()).env("OPSKIT_CONFIG", &cfg).args([
        "get",
        "/hosts",
        "--profile",
        "mtls",
    ]));
    assert!(out.contains("\"client_cert\": true"), "{out}");
    assert!(!err.to_lowercase().contains("warning"), "{err}");
    // a key without a certificate, or a file that is not PEM: usage errors
    let (code, _, err) = run(opskit(tmp.path()).args(["get", &target, "--key", &key]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("certificate"), "{err}");
    let (code, _, err) = run(opskit(tmp.path()).args(["get", &target, "--cert", "no-such.pem"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no-such.pem"), "{err}");
}

#[test]
fn insecure_skips_verification_and_warns_on_every_run() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki();
    let port = mtls_server(&pki);
    let (_, cert, key, _) = pem_files(tmp.path(), &pki);
    let target = format!("https://127.0.0.1:{port}/");
    // the self-signed certificate is not trusted by default
    let (code, _, err) = run(opskit(tmp.path()).args([
        "get",
        &target,
        "--cert",
        &cert,
        "--key",
        &key,
        "--retries",
        "0",
    ]));
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("--ca-bundle"), "{err}");
    // -k/--insecure: it works, the client certificate is still sent, and every run warns
    for flag in ["--insecure", "-k", "--insecure"] {
        let (out, err) =
            run_ok(opskit(tmp.path()).args(["get", &target, flag, "--cert", &cert, "--key", &key]));
        assert!(out.contains("\"client_cert\": true"), "{out}");
        assert!(
            err.contains("WARNING") && err.contains("--insecure") && err.contains("NOT verified"),
            "{flag}: {err}"
        );
    }
    // a profile with insecure = true warns too, and names itself
    let cfg = write_config(
        tmp.path(),
        &format!(
            "[profiles.lab]\nbase_url = \"https://127.0.0.1:{port}\"\ninsecure = true\n\
             client_cert = \"{cert}\"\nclient_key = \"{key}\"\n"
        ),
    );
    for _ in 0..2 {
        let (out, err) = run_ok(opskit(tmp.path()).env("OPSKIT_CONFIG", &cfg).args([
            "get",
            "/",
            "--profile",
            "lab",
        ]));
        assert!(out.contains("\"tls\": true"), "{out}");
        assert!(
            err.contains("WARNING") && err.contains("profile `lab`") && err.contains("insecure"),
            "{err}"
        );
    }
    // --offline sends nothing, so there is nothing to warn about; --help documents the flag
    let (out, _) = run_ok(opskit(tmp.path()).args(["get", "--help"]));
    assert!(
        out.contains("--insecure") && out.contains("--max-redirects"),
        "{out}"
    );
}

// ---------------------------------------------------------------- proxy

/// A forwarding HTTP proxy on 127.0.0.1:0: absolute-form requests are sent on to the origin,
/// CONNECT is tunnelled. Only loopback targets. Counts both, and keeps each
/// `Proxy-Authorization` it saw; with `require`, other credentials get a 407.
struct Proxy {
    port: u16,
    forwarded: Arc<AtomicU32>,
    tunnels: Arc<AtomicU32>,
    auth_seen: Arc<Mutex<Vec<String>>>,
}

fn proxy(require: Option<&str>) -> Proxy {
    let forwarded = Arc::new(AtomicU32::new(0));
    let tunnels = Arc::new(AtomicU32::new(0));
    let auth_seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let require = require.map(|r| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(r)
        )
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (f, t, a) = (forwarded.clone(), tunnels.clone(), auth_seen.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                let (f, t, a, require) = (f.clone(), t.clone(), a.clone(), require.clone());
                tokio::spawn(async move {
                    let _ = proxy_conn(conn, f, t, a, require).await;
                });
            }
        });
    });
    Proxy {
        port,
        forwarded,
        tunnels,
        auth_seen,
    }
}

async fn proxy_conn(
    mut client: tokio::net::TcpStream,
    forwarded: Arc<AtomicU32>,
    tunnels: Arc<AtomicU32>,
    auth_seen: Arc<Mutex<Vec<String>>>,
    require: Option<String>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), client.read(&mut chunk)).await??;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        assert!(buf.len() < 65536, "request head too long");
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let rest = buf[head_end..].to_vec();
    let mut lines = head.split("\r\n");
    let first: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
    let (method, target, version) = (first[0], first[1], first[2]);
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut auth = String::new();
    for l in lines.filter(|l| !l.is_empty()) {
        let (k, v) = l.split_once(':').unwrap();
        if k.eq_ignore_ascii_case("proxy-authorization") {
            auth = v.trim().to_owned();
        } else if !k.eq_ignore_ascii_case("proxy-connection")
            && !k.eq_ignore_ascii_case("connection")
        {
            headers.push((k.to_owned(), v.trim().to_owned()));
        }
    }
    auth_seen.lock().unwrap().push(auth.clone());
    if require.as_ref().is_some_and(|r| *r != auth) {
        client
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                  Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\
                  Connection: close\r\n\r\n",
            )
            .await?;
        return Ok(());
    }
    let loopback = |host: &str| matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    if method == "CONNECT" {
        let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
        assert!(
            loopback(host),
            "the test proxy only reaches loopback, not {target}"
        );
        tunnels.fetch_add(1, Ordering::SeqCst);
        let mut upstream = tokio::net::TcpStream::connect(target).await?;
        client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
        upstream.write_all(&rest).await?;
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return Ok(());
    }
    let u = url::Url::parse(target).expect("an absolute-form request target");
    assert!(loopback(u.host_str().unwrap()), "only loopback, not {u}");
    forwarded.fetch_add(1, Ordering::SeqCst);
    let mut upstream =
        tokio::net::TcpStream::connect((u.host_str().unwrap(), u.port_or_known_default().unwrap()))
            .await?;
    let mut path = u.path().to_owned();
    if let Some(q) = u.query() {
        path.push('?');
        path.push_str(q);
    }
    let mut out = format!("{method} {path} {version}\r\n");
    for (k, v) in &headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    upstream.write_all(out.as_bytes()).await?;
    upstream.write_all(&rest).await?;
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    Ok(())
}

#[test]
fn proxy_flag_and_environment_are_used_and_no_proxy_bypasses_them() {
    let tmp = tempfile::tempdir().unwrap();
    let p = proxy(None);
    let proxy_url = format!("http://127.0.0.1:{}", p.port);
    let target = url(&unique("/where"));
    // --proxy
    let (out, _) = run_ok(opskit(tmp.path()).args(["get", &target, "--proxy", &proxy_url]));
    assert!(out.contains("\"host\""), "{out}");
    assert_eq!(p.forwarded.load(Ordering::SeqCst), 1);
    // a bare host:port is an http:// proxy, as curl takes it
    run_ok(opskit(tmp.path()).args(["get", &target, "--proxy", &format!("127.0.0.1:{}", p.port)]));
    assert_eq!(p.forwarded.load(Ordering::SeqCst), 2);
    // HTTP_PROXY from the environment
    run_ok(
        opskit(tmp.path())
            .env("HTTP_PROXY", &proxy_url)
            .args(["get", &target]),
    );
    assert_eq!(p.forwarded.load(Ordering::SeqCst), 3);
    // NO_PROXY: straight to the server, with the flag as with the environment
    run_ok(
        opskit(tmp.path())
            .env("HTTP_PROXY", &proxy_url)
            .env("NO_PROXY", "127.0.0.1")
            .args(["get", &target]),
    );
    run_ok(
        opskit(tmp.path())
            .env("NO_PROXY", "127.0.0.1")
            .args(["get", &target, "--proxy", &proxy_url]),
    );
    assert_eq!(p.forwarded.load(Ordering::SeqCst), 3);
    assert_eq!(
        hits_of(&target[server().len()..]),
        5,
        "every request reached the server"
    );

    // HTTPS through HTTPS_PROXY: a CONNECT tunnel, TLS end to end
    let pki = pki();
    let port = mtls_server(&pki);
    let (bundle, cert, key, _) = pem_files(tmp.path(), &pki);
    let https = format!("https://127.0.0.1:{port}/");
    let tls_args = ["--ca-bundle", &bundle, "--cert", &cert, "--key", &key];
    let (out, _) = run_ok(
        opskit(tmp.path())
            .env("HTTPS_PROXY", &proxy_url)
            .args(["get", &https])
            .args(tls_args),
    );
    assert!(out.contains("\"client_cert\": true"), "{out}");
    assert_eq!(p.tunnels.load(Ordering::SeqCst), 1);
    run_ok(
        opskit(tmp.path())
            .env("https_proxy", &proxy_url)
            .env("no_proxy", "localhost,127.0.0.1")
            .args(["get", &https])
            .args(tls_args),
    );
    assert_eq!(
        p.tunnels.load(Ordering::SeqCst),
        1,
        "NO_PROXY went around the proxy"
    );
    // without any proxy setting nothing goes through it
    run_ok(opskit(tmp.path()).args(["get", &target]));
    assert_eq!(p.forwarded.load(Ordering::SeqCst), 3);
}

#[test]
fn proxy_credentials_are_sent_and_never_printed() {
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let p = proxy(Some("ops:s3cr3t pw"));
    let b64 = base64::engine::general_purpose::STANDARD.encode("ops:s3cr3t pw");
    let good = format!("http://ops:s3cr3t%20pw@127.0.0.1:{}", p.port);
    let target = url(&unique("/where"));
    let (out, err) =
        run_ok(opskit(tmp.path()).args(["get", &target, "--proxy", &good, "-v", "--check-status"]));
    assert!(out.contains("\"host\""), "{out}");
    assert_eq!(
        p.auth_seen.lock().unwrap().last().unwrap(),
        &format!("Basic {b64}")
    );
    for shown in [&out, &err] {
        assert!(
            !shown.contains("s3cr3t") && !shown.contains(&b64),
            "{shown}"
        );
    }
    // refused by the proxy (407), unreachable, or not a URL: the password is in no message
    let wrong = format!("http://ops:s3cr3t-wrong@127.0.0.1:{}", p.port);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let unreachable = format!("http://ops:s3cr3t@127.0.0.1:{closed}");
    for (proxy_url, want) in [
        (wrong.as_str(), Some(4)),
        (unreachable.as_str(), Some(3)),
        ("http://ops:s3cr3t@[::bad", Some(2)),
    ] {
        let (code, out, err) = run(opskit(tmp.path()).args([
            "get",
            &target,
            "--proxy",
            proxy_url,
            "--retries",
            "0",
            "--check-status",
            "-v",
        ]));
        assert_eq!(code, want, "{proxy_url}\nstdout: {out}\nstderr: {err}");
        assert!(
            !out.contains("s3cr3t") && !err.contains("s3cr3t"),
            "{out}\n{err}"
        );
    }
}

// ---------------------------------------------------------------- redirects

#[test]
fn no_follow_prints_the_redirect_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let tag = unique("nf");
    let tag = tag.trim_start_matches('/').replace('/', "-");
    let (out, err) = run_ok(opskit(tmp.path()).args([
        "get",
        &url(&format!("/hop/{tag}/3")),
        "--no-follow",
        "--check-status",
    ]));
    assert_eq!(out, "moved to hop 2\n");
    assert!(
        err.contains("302")
            && err.contains(&format!("/hop/{tag}/2"))
            && err.contains("--no-follow"),
        "{err}"
    );
    assert_eq!(
        hits_of(&format!("/hop/{tag}/2")),
        0,
        "the redirect was not followed"
    );
    // with the response head asked for, the 302 and its Location are in it
    let (out, _) = run_ok(opskit(tmp.path()).args([
        "get",
        &url(&format!("/hop/{tag}/3")),
        "--no-follow",
        "--print",
        "h",
    ]));
    assert!(
        out.contains("302 Found") && out.contains(&format!("location: /hop/{tag}/2")),
        "{out}"
    );
    // followed by default
    let (out, _) = run_ok(opskit(tmp.path()).args(["get", &url(&format!("/hop/{tag}/3"))]));
    assert!(out.contains("\"arrived\": true"), "{out}");
}

#[test]
fn max_redirects_stops_a_longer_chain_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let tag = unique("mr");
    let tag = tag.trim_start_matches('/').replace('/', "-");
    // a chain of 3 with a limit of 2: exit 1, the limit named, the last hop never requested
    let (code, out, err) = run(opskit(tmp.path()).args([
        "get",
        &url(&format!("/hop/{tag}/3")),
        "--max-redirects",
        "2",
    ]));
    assert_eq!(code, Some(1), "stdout: {out}\nstderr: {err}");
    assert!(err.contains("more than 2 redirects"), "{err}");
    assert!(err.contains("--max-redirects"), "{err}");
    assert_eq!(hits_of(&format!("/hop/{tag}/0")), 0);
    assert_eq!(
        hits_of(&format!("/hop/{tag}/3")),
        1,
        "a redirect error is not retried"
    );
    // a chain of 2 fits
    let (out, _) = run_ok(opskit(tmp.path()).args([
        "get",
        &url(&format!("/hop/{tag}/2")),
        "--max-redirects",
        "2",
    ]));
    assert!(out.contains("\"arrived\": true"), "{out}");
    // --no-follow and --max-redirects together make no sense
    let (code, _, err) = run(opskit(tmp.path()).args([
        "get",
        &url("/users"),
        "--no-follow",
        "--max-redirects",
        "3",
    ]));
    assert_eq!(code, Some(2), "{err}");
}

// ---------------------------------------------------------------- --max-time

#[test]
fn max_time_bounds_retries_and_their_retry_after_waits() {
    let tmp = tempfile::tempdir().unwrap();
    let busy = unique("/busy");
    // 11 attempts with a Retry-After of 1 s between them need at least 10 s; --max-time 2s
    // ends the command long before
    let (code, out, err) =
        run(opskit(tmp.path()).args(["get", &url(&busy), "--retries", "10", "--max-time", "2s"]));
    assert_eq!(code, Some(3), "stdout: {out}\nstderr: {err}");
    assert!(err.contains("--max-time"), "{err}");
    let attempts = hits_of(&busy);
    assert!((1..10).contains(&attempts), "{attempts} attempts");

    // the same with paging: the first page arrives, the second is retried until --max-time
    let tag = unique("pg");
    let tag = tag.trim_start_matches('/').replace('/', "-");
    let (code, out, err) = run(opskit(tmp.path()).args([
        "get",
        &url(&format!("/pages/{tag}")),
        "--paginate",
        "--output",
        "ndjson",
        "--retries",
        "10",
        "--max-time",
        "2s",
    ]));
    assert_eq!(code, Some(3), "stdout: {out}\nstderr: {err}");
    assert!(err.contains("--max-time"), "{err}");
    assert_eq!(out, "{\"id\":1}\n{\"id\":2}\n");
    let attempts = hits_of(&format!("/busy/{tag}"));
    assert!((1..10).contains(&attempts), "{attempts} attempts");
}

// ---------------------------------------------------------------- --curl

#[test]
fn curl_shows_the_tls_proxy_and_redirect_flags_without_the_proxy_password() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, err) = run_ok(opskit(tmp.path()).args([
        "get",
        "https://api.example/x",
        "--cert",
        "c.pem",
        "--key",
        "k.pem",
        "--insecure",
        "--proxy",
        "http://ops:pr0xy-pw@proxy.example:3128",
        "--max-redirects",
        "3",
        "--curl",
    ]));
    for want in [
        " -L --max-redirs 3 ",
        " --cert c.pem --key k.pem -k ",
        " -x http://proxy.example:3128/ --proxy-user 'ops:<redacted>' ",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    assert!(
        !out.contains("pr0xy-pw") && !err.contains("pr0xy-pw"),
        "{out}{err}"
    );
    assert!(err.contains("redacted"), "{err}");
    // nothing is sent, so nothing to warn about
    assert!(!err.contains("WARNING"), "{err}");
    // --no-follow: no -L
    let (out, _) =
        run_ok(opskit(tmp.path()).args(["get", "https://api.example/x", "--no-follow", "--curl"]));
    assert!(!out.contains(" -L"), "{out}");
}

#[test]
fn timing_keeps_the_client_certificate_and_insecure_as_without_it() {
    // --timing builds the TLS configuration itself (to time the handshake apart): the client
    // certificate is still presented, without it the server still refuses, --insecure still warns
    let tmp = tempfile::tempdir().unwrap();
    let pki = pki();
    let port = mtls_server(&pki);
    let (bundle, cert, key, _) = pem_files(tmp.path(), &pki);
    let target = format!("https://127.0.0.1:{port}/");
    let timing = |err: &str| -> Value {
        serde_json::from_str(err.lines().find(|l| l.starts_with('{')).unwrap()).unwrap()
    };
    let (out, err) = run_ok(opskit(tmp.path()).args([
        "get",
        &target,
        "--ca-bundle",
        &bundle,
        "--cert",
        &cert,
        "--key",
        &key,
        "--timing=json",
    ]));
    assert!(out.contains("\"client_cert\": true"), "{out}");
    assert!(timing(&err)["tls_ms"].as_f64().is_some(), "{err}");
    let (code, _, err) = run(opskit(tmp.path()).args([
        "get",
        &target,
        "--ca-bundle",
        &bundle,
        "--retries",
        "0",
        "--timing=json",
    ]));
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("--cert"), "{err}");
    let (out, err) = run_ok(opskit(tmp.path()).args([
        "get",
        &target,
        "--insecure",
        "--cert",
        &cert,
        "--key",
        &key,
        "--timing=json",
    ]));
    assert!(out.contains("\"client_cert\": true"), "{out}");
    assert!(
        err.contains("WARNING") && err.contains("NOT verified"),
        "{err}"
    );
    assert!(timing(&err)["tls_ms"].as_f64().is_some(), "{err}");
}
