//! TLS set-up of the transport: which certificates are trusted (system roots, an extra CA
//! bundle, or only the bundle), the client identity for mutual TLS, the minimum version.
//!
//! A CA bundle is trusted the way `curl --cacert` trusts it: a chain to one of its CAs, and also
//! a server certificate that *is* one of the bundle's certificates (a self-signed certificate
//! handed out as "the CA"). rustls' webpki alone refuses the latter (`CaUsedAsEndEntity` when
//! the certificate says it is a CA, as `openssl req -x509` makes it); [`BundleVerifier`]
//! accepts such an exact match after checking its host name and dates, and otherwise gives
//! the verdict of the usual verifier.

use std::sync::Arc;
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, SignatureScheme};

use crate::config::{TlsConfig, TlsVersion};
use crate::error::Error;

/// Applies `tls` to the reqwest builder. With `mark` (`--timing`), the rustls configuration is
/// built here even without a CA bundle — the same verifier, identity, versions and ALPN reqwest
/// would choose — so that its session store can mark when each TLS handshake starts
/// ([`HandshakeMark`]).
pub(crate) fn configure(
    mut b: reqwest::ClientBuilder,
    tls: &TlsConfig,
    mark: Option<Arc<HandshakeMark>>,
) -> Result<reqwest::ClientBuilder, Error> {
    // checked first: the same message whichever way the rest is set up
    if tls.client_cert.is_none() && tls.client_key.is_some() {
        return Err(Error::config(
            "a client key was given without a client certificate; set both",
        ));
    }
    let bundle = match &tls.ca_bundle {
        Some(path) if !tls.danger_accept_invalid_certs => Some(read_bundle(path)?),
        _ => None,
    };
    if bundle.is_some() || mark.is_some() {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match bundle {
            Some(bundle) => bundle_verifier(tls, bundle, provider.clone())?,
            // what reqwest does with tls_danger_accept_invalid_certs(true)
            None if tls.danger_accept_invalid_certs => Arc::new(AcceptAnyCertificate),
            // what reqwest does by default: the platform verifier
            None => Arc::new(
                rustls_platform_verifier::Verifier::new(provider.clone())
                    .map_err(|e| Error::config(format!("cannot use the system's roots: {e}")))?,
            ),
        };
        let mut config = rustls_config(tls, verifier, provider)?;
        if let Some(mark) = mark {
            config.resumption = rustls::client::Resumption::store(Arc::new(TimingStore {
                inner: rustls::client::ClientSessionMemoryCache::new(256),
                mark,
            }));
        }
        return Ok(b.tls_backend_preconfigured(config));
    }
    if let Some(cert) = &tls.client_cert {
        let mut pem = std::fs::read(cert).map_err(|e| {
            Error::config(format!(
                "cannot read client certificate {}: {e}",
                cert.display()
            ))
        })?;
        if let Some(key) = &tls.client_key {
            let k = std::fs::read(key).map_err(|e| {
                Error::config(format!("cannot read client key {}: {e}", key.display()))
            })?;
            pem.push(b'\n');
            pem.extend_from_slice(&k);
        }
        let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
            Error::config(format!(
                "client certificate {} and key are not valid PEM (need the certificate and an unencrypted PKCS#8, PKCS#1 or SEC1 key): {e}",
                cert.display()
            ))
        })?;
        b = b.identity(id);
    }
    if tls.danger_accept_invalid_certs {
        // nothing verified, but a client certificate is still presented (mutual TLS against a
        // test server with a self-signed certificate)
        b = b.tls_danger_accept_invalid_certs(true);
    }
    Ok(b.tls_version_min(reqwest_version(tls.min_version)))
}

fn reqwest_version(v: TlsVersion) -> reqwest::tls::Version {
    match v {
        TlsVersion::Tls12 => reqwest::tls::Version::TLS_1_2,
        TlsVersion::Tls13 => reqwest::tls::Version::TLS_1_3,
    }
}

/// The certificates of a PEM bundle; an unreadable file, bad PEM or no certificate at all is a
/// configuration error naming the file.
fn read_bundle(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::config(format!("cannot read CA bundle {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::config(format!(
                "CA bundle {} is not valid PEM: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "CA bundle {} contains no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The client certificate chain and its key (from the certificate file when no key file).
fn read_identity(
    cert: &std::path::Path,
    key: Option<&std::path::Path>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let cert_pem = std::fs::read(cert).map_err(|e| {
        Error::config(format!(
            "cannot read client certificate {}: {e}",
            cert.display()
        ))
    })?;
    let key_pem = match key {
        Some(k) => std::fs::read(k)
            .map_err(|e| Error::config(format!("cannot read client key {}: {e}", k.display())))?,
        None => cert_pem.clone(),
    };
    let bad = |what: String| {
        Error::config(format!(
            "client certificate {} and key are not valid PEM (need the certificate and an unencrypted PKCS#8, PKCS#1 or SEC1 key): {what}",
            cert.display()
        ))
    };
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate found".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| bad(e.to_string()))?;
    Ok((certs, key))
}

/// A verifier trusting `bundle` as `curl --cacert` does, plus the system roots unless
/// `ca_bundle_only`.
fn bundle_verifier(
    tls: &TlsConfig,
    bundle: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, Error> {
    let inner: Arc<dyn ServerCertVerifier> = if tls.ca_bundle_only {
        let mut roots = rustls::RootCertStore::empty();
        // a certificate webpki cannot take as a root is still pinned below
        let _ = roots.add_parsable_certificates(bundle.iter().cloned());
        if roots.is_empty() {
            return Err(Error::config(
                "the CA bundle holds no certificate usable as a trust anchor",
            ));
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| Error::config(format!("cannot use the CA bundle: {e}")))?
    } else {
        Arc::new(
            rustls_platform_verifier::Verifier::new_with_extra_roots(
                bundle.iter().cloned(),
                provider.clone(),
            )
            .map_err(|e| Error::config(format!("cannot use the CA bundle: {e}")))?,
        )
    };
    Ok(Arc::new(BundleVerifier {
        inner,
        pinned: bundle,
    }))
}

/// A rustls configuration with `verifier`, and the client identity, minimum version and ALPN
/// reqwest would set.
fn rustls_config(
    tls: &TlsConfig,
    verifier: Arc<dyn ServerCertVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<rustls::ClientConfig, Error> {
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| Error::config(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &tls.client_cert {
        Some(cert) => {
            let (certs, key) = read_identity(cert, tls.client_key.as_deref())?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                Error::config(format!(
                    "client certificate {} and key do not match: {e}",
                    cert.display()
                ))
            })?
        }
        None => builder.with_no_client_auth(),
    };
    // what reqwest offers when it builds the configuration itself
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The bundle's own certificates trusted as themselves (an exact match of the server's
/// certificate, still checked for the host name and its dates), else the usual verification
/// (`inner`).
#[derive(Debug)]
pub(crate) struct BundleVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for BundleVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // a bundle certificate presented as itself is judged here, before the usual verifier
        // (which refuses it, and logs an error line on every run while doing so)
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            check_dates(end_entity, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
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

/// `--insecure`: every certificate and signature accepted, as reqwest's own verifier for
/// `tls_danger_accept_invalid_certs(true)` (same schemes offered).
#[derive(Debug)]
struct AcceptAnyCertificate;

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![
            SignatureScheme::RSA_PKCS1_SHA1,
            SignatureScheme::ECDSA_SHA1_Legacy,
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::RSA_PKCS1_SHA512,
            SignatureScheme::ECDSA_NISTP521_SHA512,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::ED25519,
            SignatureScheme::ED448,
        ]
    }
}

/// When the TLS handshake of the connection being opened started, for `--timing`.
///
/// rustls builds the ClientHello when the connection object is created — which the connector
/// does as soon as the TCP connection (or a proxy's tunnel) is up — and while building it reads
/// the session store for the server's name (`kx_hint` for TLS 1.3's key share, then a ticket or
/// TLS 1.2 session to resume). [`TimingStore`] marks the first such read after
/// [`HandshakeMark::reset`]: from there to the connection being ready is the handshake. The
/// connector layer resets it when a connection starts and takes it when it ends; connections
/// are opened one after another by a `--timing` command, so the mark is that connection's.
#[derive(Debug, Default)]
pub(crate) struct HandshakeMark {
    started: std::sync::Mutex<Option<std::time::Instant>>,
}

impl HandshakeMark {
    /// Forgets the last mark: a new connection starts.
    pub(crate) fn reset(&self) {
        if let Ok(mut s) = self.started.lock() {
            *s = None;
        }
    }

    /// When the handshake since the last reset started, if one did.
    pub(crate) fn take(&self) -> Option<std::time::Instant> {
        self.started.lock().ok().and_then(|mut s| s.take())
    }

    fn mark(&self) {
        if let Ok(mut s) = self.started.lock() {
            s.get_or_insert_with(std::time::Instant::now);
        }
    }
}

/// rustls' in-memory session store (as reqwest's default: 256 entries), marking the start of
/// each handshake on the reads rustls does while building the ClientHello.
#[derive(Debug)]
struct TimingStore {
    inner: rustls::client::ClientSessionMemoryCache,
    mark: Arc<HandshakeMark>,
}

impl rustls::client::ClientSessionStore for TimingStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: rustls::NamedGroup) {
        self.inner.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.mark.mark();
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(server_name, value);
    }

    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.mark.mark();
        self.inner.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.inner.insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.mark.mark();
        self.inner.take_tls13_ticket(server_name)
    }
}

/// A pinned certificate must be within its validity period, as any other.
fn check_dates(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let validity = parsed.validity();
    let at = |t: i64| UnixTime::since_unix_epoch(Duration::from_secs(t.max(0).unsigned_abs()));
    let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if secs < validity.not_before.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYetContext {
                time: now,
                not_before: at(validity.not_before.timestamp()),
            },
        ));
    }
    if secs > validity.not_after.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::ExpiredContext {
                time: now,
                not_after: at(validity.not_after.timestamp()),
            },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("opskit-http-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("empty.pem");
        std::fs::write(&p, "# nothing here\n").unwrap();
        let e = read_bundle(&p).unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
