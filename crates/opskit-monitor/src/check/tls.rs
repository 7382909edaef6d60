//! `kind = "tls"`: the certificate of any TLS port: expiry, names, and whether the chain is
//! trusted (system roots plus an optional CA bundle). The handshake completes even when the
//! chain is not trusted, so an untrusted or expired certificate is still described.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde_json::{Value, json};

use super::Raw;
use crate::config::TlsCheck;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn native_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut store = RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        store.add_parsable_certificates(found.certs);
        store
    })
}

/// The chain the server presented, and whether it verified.
type Seen = (Vec<CertificateDer<'static>>, Result<(), String>);

#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Option<Seen>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map(|_| ())
            .map_err(|e| e.to_string());
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        if let Ok(mut s) = self.seen.lock() {
            *s = Some((chain, verdict));
        }
        // Accept, so that the certificate can be described; `chain_valid` says the truth.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn describe(der: &[u8], now_s: i64) -> Value {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => {
            let not_after = cert.validity().not_after.timestamp();
            let not_before = cert.validity().not_before.timestamp();
            let mut names = Vec::new();
            if let Ok(Some(san)) = cert.subject_alternative_name() {
                for n in &san.value.general_names {
                    if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                        names.push(d.to_string());
                    }
                }
            }
            let iso = |t: i64| {
                time::OffsetDateTime::from_unix_timestamp(t)
                    .ok()
                    .and_then(|d| {
                        d.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
            };
            let days = (not_after - now_s) as f64 / 86400.0;
            json!({
                "subject": cert.subject().to_string(),
                "issuer": cert.issuer().to_string(),
                "not_before": iso(not_before),
                "not_after": iso(not_after),
                "expires_in_days": (days * 100.0).floor() / 100.0,
                "dns_names": names,
            })
        }
        Err(e) => json!({ "error": format!("cannot parse the certificate: {e}") }),
    }
}

pub(crate) async fn check(c: &TlsCheck, timeout: Duration, now_ms: i64) -> Raw {
    match run(c, timeout, now_ms).await {
        Ok(r) => r,
        Err(e) => Raw::err(json!({}), e),
    }
}

async fn run(c: &TlsCheck, timeout: Duration, now_ms: i64) -> Result<Raw, String> {
    let endpoint = opskit_net::target::Endpoint::parse(&c.target).map_err(|e| e.to_string())?;
    let mut roots = native_roots().clone();
    if let Some(bundle) = &c.ca_bundle {
        let certs = CertificateDer::pem_file_iter(bundle)
            .map_err(|e| format!("ca_bundle {}: {e}", bundle.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ca_bundle {}: {e}", bundle.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "ca_bundle {}: no certificate in it",
                bundle.display()
            ));
        }
    }
    let provider = provider();
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
    let recorder = Arc::new(Recorder {
        inner,
        seen: Mutex::new(None),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let name = c
        .server_name
        .clone()
        .unwrap_or_else(|| endpoint.host.clone());
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| format!("{name:?} is not a valid TLS server name"))?;
    let started = Instant::now();
    let work = async {
        let addrs = opskit_net::target::resolve(&endpoint, timeout)
            .await
            .map_err(|e| e.to_string())?;
        let addr = addrs
            .first()
            .copied()
            .ok_or_else(|| format!("{} has no address", endpoint.host))?;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tls = connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {addr} failed: {e}"))?;
        let version = tls.get_ref().1.protocol_version().map(|v| format!("{v:?}"));
        Ok::<_, String>(version)
    };
    let version = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no TLS handshake within {timeout:?}"))??;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    let seen = recorder.seen.lock().ok().and_then(|mut s| s.take());
    let Some((chain, verdict)) = seen else {
        return Err("the server presented no certificate".into());
    };
    let cert = chain
        .first()
        .map(|c| describe(c.as_ref(), now_ms / 1000))
        .unwrap_or(Value::Null);
    Ok(Raw::ok(json!({
        "cert": cert,
        "chain_valid": verdict.is_ok(),
        "chain_error": verdict.err(),
        "chain_length": chain.len(),
        "server_name": name,
        "tls_version": version,
        "response_time_ms": (elapsed * 10.0).round() / 10.0,
    })))
}
