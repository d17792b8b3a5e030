//! TLS for every client in the process: one rustls crypto provider, chosen here, and the
//! extra certificate authorities an operator can add for a private endpoint.
//!
//! rustls panics when a TLS client is built while its dependency graph enables more than
//! one crypto provider and none was installed. The crate's dependencies are trimmed so
//! that only *ring* is compiled in (the MongoDB driver's own choice; `cargo tree -i
//! aws-lc-rs` finds nothing), and [`install_crypto_provider`] installs it explicitly
//! before any connection is made, so neither a future dependency nor feature
//! unification can make the choice for us.

use std::path::Path;
use std::sync::Once;

use crate::error::{Error, Result};

/// Installs *ring* as the process-wide rustls crypto provider. Idempotent and cheap;
/// every connect path calls it first. An application that embeds the library and has
/// already installed a provider of its own keeps it.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means a provider is already installed (by the embedding application):
        // that one is used, which is what the application asked for.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Reads a PEM file of CA certificates to trust besides the system's roots, checking
/// that it holds at least one certificate, so a wrong path or a key file given by
/// mistake is reported before any connection is tried.
pub fn read_ca_file(path: &Path, flag: &str) -> Result<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let pem = std::fs::read(path).map_err(|e| {
        Error::Config(format!(
            "{flag} {}: cannot read the file: {e}",
            path.display()
        ))
    })?;
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| {
            Error::Config(format!(
                "{flag} {}: not a PEM certificate file: {e}",
                path.display()
            ))
        })?;
        count += 1;
    }
    if count == 0 {
        return Err(Error::Config(format!(
            "{flag} {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file",
            path.display()
        )));
    }
    Ok(pem)
}

/// Explains a TLS failure found anywhere in `error`'s source chain, for an operator:
/// `None` when the chain holds no rustls error (the failure was not about TLS).
pub fn explain(error: &(dyn std::error::Error + 'static), endpoint: &str) -> Option<TlsFailure> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(TlsFailure::from_rustls(r, endpoint));
        }
        // An `io::Error` wrapping another error reports that error's *source* as its
        // own, skipping the wrapped error itself (where rustls puts its own).
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(r) = inner.downcast_ref::<rustls::Error>() {
                return Some(TlsFailure::from_rustls(r, endpoint));
            }
        }
        next = e.source();
    }
    None
}

/// A TLS failure, classified: certificate problems are fatal (retrying cannot make an
/// untrusted certificate trusted), anything else may pass.
#[derive(Debug, Clone)]
pub struct TlsFailure {
    pub message: String,
    pub retryable: bool,
}

impl TlsFailure {
    fn from_rustls(e: &rustls::Error, endpoint: &str) -> Self {
        use rustls::CertificateError as C;
        let (message, retryable) = match e {
            rustls::Error::InvalidCertificate(C::UnknownIssuer) => (
                format!(
                    "the certificate of {endpoint} is signed by an authority this machine does not trust \
                     (add its CA with the endpoint's CA-file flag or SSL_CERT_FILE)"
                ),
                false,
            ),
            rustls::Error::InvalidCertificate(C::NotValidForName)
            | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => (
                format!(
                    "the certificate of {endpoint} is not valid for that host name \
                     (connect with a name the certificate lists)"
                ),
                false,
            ),
            rustls::Error::InvalidCertificate(C::Expired)
            | rustls::Error::InvalidCertificate(C::ExpiredContext { .. }) => {
                (format!("the certificate of {endpoint} has expired"), false)
            }
            rustls::Error::InvalidCertificate(other) => (
                format!("the certificate of {endpoint} was refused: {other:?}"),
                false,
            ),
            other => (format!("TLS with {endpoint} failed: {other}"), true),
        };
        Self { message, retryable }
    }
}

/// Whether a driver message describes a refused server certificate. The MongoDB driver
/// folds the TLS error into its server-selection text, so the text is all there is.
pub fn is_certificate_failure_text(message: &str) -> bool {
    message.contains("invalid peer certificate")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_refused_with_its_path() {
        let dir = std::env::temp_dir().join(format!("fireshift-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not-a-ca.pem");
        std::fs::write(&path, "hello\n").unwrap();
        let err = read_ca_file(&path, "--firestore-ca-file")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not-a-ca.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
        let missing = read_ca_file(&dir.join("missing.pem"), "--mongodb-ca-file")
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("--mongodb-ca-file") && missing.contains("missing.pem"),
            "{missing}"
        );
    }

    #[test]
    fn certificate_errors_are_fatal_and_say_what_to_do() {
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let f = explain(&unknown, "https://fs.example:443").unwrap();
        assert!(!f.retryable);
        assert!(
            f.message.contains("https://fs.example:443") && f.message.contains("SSL_CERT_FILE"),
            "{}",
            f.message
        );
        let name = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        assert!(explain(&name, "x")
            .unwrap()
            .message
            .contains("not valid for that host name"));
        let io = std::io::Error::other("reset");
        assert!(explain(&io, "x").is_none());
        // As tonic reports it: inside an io::Error, whose source() skips it.
        let wrapped = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(!explain(&wrapped, "x").unwrap().retryable);
    }

    #[test]
    fn installing_the_provider_twice_is_harmless() {
        install_crypto_provider();
        install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
