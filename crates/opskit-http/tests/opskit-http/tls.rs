use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use opskit_http::{Client, ClientConfig, Error, RetryPolicy, TlsConfig, TlsVersion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::fixture::{FixtureState, router};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/opskit-http/fixtures")
        .join(name)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// An HTTPS fixture server: TLS 1.2 only when `tls12_only`, client certificates required
/// when `mtls`.
async fn tls_server(tls12_only: bool, mtls: bool) -> SocketAddr {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixture("server.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS12, &rustls::version::TLS13]
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = if mtls {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(fixture("ca.pem")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(certs, key).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(Arc::new(FixtureState::default()));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    addr
}

fn cfg(addr: SocketAddr, tls: TlsConfig) -> ClientConfig {
    ClientConfig::new(format!("https://localhost:{}/", addr.port()))
        .tls(tls)
        .retry(RetryPolicy::none())
}

#[tokio::test]
async fn an_extra_ca_bundle_is_trusted_and_unknown_cas_are_refused() {
    let addr = tls_server(false, false).await;
    let err = Client::new(cfg(addr, TlsConfig::default()))
        .unwrap()
        .get("echo")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    let tls = TlsConfig {
        ca_bundle: Some(fixture("ca.pem")),
        ..TlsConfig::default()
    };
    let resp = Client::new(cfg(addr, tls))
        .unwrap()
        .get("echo")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let tls = TlsConfig {
        ca_bundle: Some(fixture("ca.pem")),
        ca_bundle_only: true,
        ..TlsConfig::default()
    };
    let resp = Client::new(cfg(addr, tls))
        .unwrap()
        .get("echo")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
}

#[tokio::test]
async fn minimum_tls_version_is_enforced() {
    let addr = tls_server(true, false).await;
    let base = TlsConfig {
        ca_bundle: Some(fixture("ca.pem")),
        ..TlsConfig::default()
    };
    let ok = Client::new(cfg(addr, base.clone()))
        .unwrap()
        .get("echo")
        .send()
        .await
        .unwrap();
    assert!(ok.status().is_success());
    let tls13 = TlsConfig {
        min_version: TlsVersion::Tls13,
        ..base
    };
    let err = Client::new(cfg(addr, tls13))
        .unwrap()
        .get("echo")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
}

#[tokio::test]
async fn client_certificates_for_mutual_tls() {
    let addr = tls_server(false, true).await;
    let base = TlsConfig {
        ca_bundle: Some(fixture("ca.pem")),
        ..TlsConfig::default()
    };
    let without = Client::new(cfg(addr, base.clone()))
        .unwrap()
        .get("echo")
        .send()
        .await;
    assert!(
        without.is_err(),
        "a server requiring a client certificate accepted none"
    );
    let with = TlsConfig {
        client_cert: Some(fixture("client.pem")),
        client_key: Some(fixture("client.key")),
        ..base
    };
    let resp = Client::new(cfg(addr, with))
        .unwrap()
        .get("echo")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
}

#[test]
fn a_key_without_a_certificate_is_a_config_error() {
    let tls = TlsConfig {
        client_key: Some(fixture("client.key")),
        ..TlsConfig::default()
    };
    let err = Client::new(ClientConfig::default().tls(tls)).unwrap_err();
    assert!(matches!(err, Error::Config { .. }));
}

/// A self-signed certificate for `names`, marked as a CA as `openssl req -x509` makes it, valid
/// from `from` to `to` (Unix seconds): (certificate PEM, key PEM).
fn self_signed(names: &[&str], from: i64, to: i64) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = time::OffsetDateTime::from_unix_timestamp(from).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(to).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An HTTPS fixture server presenting the certificate `cert_pem`.
async fn pinned_server(cert_pem: &str, key_pem: &str) -> SocketAddr {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(Arc::new(FixtureState::default()));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    addr
}

async fn get_with_bundle(url: String, bundle: &std::path::Path, only: bool) -> Result<(), Error> {
    let tls = TlsConfig {
        ca_bundle: Some(bundle.to_path_buf()),
        ca_bundle_only: only,
        ..TlsConfig::default()
    };
    let client = Client::new(ClientConfig::new(url).tls(tls).retry(RetryPolicy::none()))?;
    let resp = client.get("echo").send().await?;
    assert!(resp.status().is_success());
    Ok(())
}

#[tokio::test]
async fn a_self_signed_certificate_in_the_bundle_is_trusted_like_curl_cacert() {
    let now = now_secs();
    let (cert, key) = self_signed(&["localhost", "127.0.0.1"], now - 3600, now + 86_400);
    let addr = pinned_server(&cert, &key).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("self.pem");
    // the bundle may hold other certificates too (a company CA first)
    let ca = std::fs::read_to_string(fixture("ca.pem")).unwrap();
    std::fs::write(&bundle, format!("{ca}\n{cert}")).unwrap();
    let port = addr.port();
    // without it: refused
    let err = Client::new(cfg(addr, TlsConfig::default()))
        .unwrap()
        .get("echo")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    for only in [false, true] {
        get_with_bundle(format!("https://localhost:{port}/"), &bundle, only)
            .await
            .unwrap();
        get_with_bundle(format!("https://127.0.0.1:{port}/"), &bundle, only)
            .await
            .unwrap();
    }
    // the usual chain to a CA in the bundle still works next to it
    let ca_addr = tls_server(false, false).await;
    get_with_bundle(
        format!("https://localhost:{}/", ca_addr.port()),
        &bundle,
        false,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_pinned_certificate_is_still_checked_for_name_and_dates() {
    let now = now_secs();
    let dir = tempfile::tempdir().unwrap();
    // issued for another name
    let (cert, key) = self_signed(&["other.example"], now - 3600, now + 86_400);
    let addr = pinned_server(&cert, &key).await;
    let bundle = dir.path().join("other.pem");
    std::fs::write(&bundle, &cert).unwrap();
    let err = get_with_bundle(
        format!("https://127.0.0.1:{}/", addr.port()),
        &bundle,
        false,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Tls { message, .. } if message.contains("not valid for")),
        "{err:?}"
    );
    // expired yesterday
    let (cert, key) = self_signed(&["localhost"], now - 10 * 86_400, now - 86_400);
    let addr = pinned_server(&cert, &key).await;
    let bundle = dir.path().join("expired.pem");
    std::fs::write(&bundle, &cert).unwrap();
    let err = get_with_bundle(
        format!("https://localhost:{}/", addr.port()),
        &bundle,
        false,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Tls { message, .. } if message.to_lowercase().contains("expired")),
        "{err:?}"
    );
}
