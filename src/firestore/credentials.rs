//! Which credentials a Firestore connection uses.
//!
//! Real endpoints use Application Default Credentials, resolved in the order Google's
//! client libraries use (and by Google's own Rust auth library, which mints the
//! tokens): the file `GOOGLE_APPLICATION_CREDENTIALS` names (a service account key, or
//! any other credentials file), then the file `gcloud auth application-default login`
//! writes, then the metadata server (Cloud Run, GKE with Workload Identity, GCE). The
//! library would fall back to the metadata server silently and fail at the first call
//! on a laptop; here the server is probed first, so "no credentials" is one clear
//! message that says what was tried and how to fix it.
//!
//! The emulator gets the stub token the Firebase tools send it (`Bearer owner`), and no
//! lookup.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gcloud_sdk::google_cloud_auth::credentials::{
    Builder, CacheableResource, Credentials, CredentialsProvider, EntityTag,
};
use gcloud_sdk::google_cloud_auth::errors::CredentialsError;
use gcloud_sdk::GoogleAuthHeaders;
use http::{Extensions, HeaderMap, HeaderValue};
use tonic::Code;

use crate::error::{Error, Result};

/// The OAuth scope of every Google Cloud API; Firestore accepts it.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// How long the metadata-server probe may take. Google's libraries wait about as long;
/// on a laptop the name does not resolve and the probe ends at once.
const METADATA_PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the first token may take (a metadata server or token endpoint that hangs).
const FIRST_TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a connection's credentials came from: printed in messages, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsSource {
    /// The emulator's stub token.
    Emulator,
    /// A credentials file (`kind` is its `type`: `service_account`, `authorized_user`,
    /// `external_account`, …), named by `GOOGLE_APPLICATION_CREDENTIALS` or found where
    /// gcloud writes it.
    File {
        path: PathBuf,
        kind: String,
        from_env: bool,
    },
    /// The metadata server of the machine (Cloud Run, GKE, GCE).
    MetadataServer { host: String },
}

impl fmt::Display for CredentialsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Emulator => write!(f, "the emulator's stub token"),
            Self::File {
                path,
                kind,
                from_env: true,
            } => write!(
                f,
                "{kind} credentials from GOOGLE_APPLICATION_CREDENTIALS={}",
                path.display()
            ),
            Self::File { path, kind, .. } => write!(
                f,
                "{kind} credentials from {} (gcloud auth application-default login)",
                path.display()
            ),
            Self::MetadataServer { host } => write!(f, "the metadata server at {host}"),
        }
    }
}

/// The emulator's stub credentials.
pub(super) fn emulator() -> GoogleAuthHeaders {
    GoogleAuthHeaders::from(Credentials::from(EmulatorToken {
        tag: EntityTag::new(),
    }))
}

/// Serves `Authorization: Bearer owner`, the token the emulator treats as an admin
/// (security rules bypassed), as the Firebase tools do.
#[derive(Debug)]
struct EmulatorToken {
    /// The tag of the one header ever served, so the middleware keeps it cached.
    tag: EntityTag,
}

impl CredentialsProvider for EmulatorToken {
    async fn headers(
        &self,
        extensions: Extensions,
    ) -> std::result::Result<CacheableResource<HeaderMap>, CredentialsError> {
        if extensions.get::<EntityTag>() == Some(&self.tag) {
            return Ok(CacheableResource::NotModified);
        }
        let mut data = HeaderMap::new();
        data.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer owner"),
        );
        Ok(CacheableResource::New {
            entity_tag: self.tag.clone(),
            data,
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

/// Resolves the Application Default Credentials for `endpoint` and gets a first token,
/// so that missing, malformed or refused credentials stop the command before any work.
pub(super) async fn application_default(
    endpoint: &str,
) -> Result<(GoogleAuthHeaders, CredentialsSource)> {
    let source = locate(endpoint).await?;
    let credentials = Builder::default()
        .with_scopes([SCOPE])
        .build()
        .map_err(|e| Error::Credentials {
            endpoint: endpoint.to_string(),
            message: format!("{source}: {e}"),
        })?;
    let first =
        tokio::time::timeout(FIRST_TOKEN_TIMEOUT, credentials.headers(Extensions::new())).await;
    match first {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return Err(Error::Credentials {
                endpoint: endpoint.to_string(),
                message: format!("{source} could not produce a token: {e}"),
            })
        }
        Err(_) => {
            return Err(Error::Credentials {
                endpoint: endpoint.to_string(),
                message: format!(
                    "{source} produced no token within {}s",
                    FIRST_TOKEN_TIMEOUT.as_secs()
                ),
            })
        }
    }
    tracing::info!(endpoint, credentials = %source, "using Google credentials");
    Ok((GoogleAuthHeaders::from(credentials), source))
}

/// Finds which credentials the auth library will use, in its order, or says what was
/// tried.
async fn locate(endpoint: &str) -> Result<CredentialsSource> {
    let no_credentials = |tried: Vec<String>| {
        Error::Credentials {
        endpoint: endpoint.to_string(),
        message: format!(
            "no Google credentials found. Tried: {}. Fix: run `gcloud auth application-default login`, \
             or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file; on Cloud Run, GKE \
             (Workload Identity) or GCE, give the workload a service account",
            tried.join("; ")
        ),
    }
    };
    let mut tried = Vec::new();
    match std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            let kind = file_kind(&path).map_err(|why| Error::Credentials {
                endpoint: endpoint.to_string(),
                message: format!("GOOGLE_APPLICATION_CREDENTIALS={}: {why}", path.display()),
            })?;
            return Ok(CredentialsSource::File {
                path,
                kind,
                from_env: true,
            });
        }
        None => tried.push("GOOGLE_APPLICATION_CREDENTIALS (not set)".into()),
    }
    match well_known_file() {
        Some(path) if path.exists() => {
            let kind = file_kind(&path).map_err(|why| Error::Credentials {
                endpoint: endpoint.to_string(),
                message: format!("{}: {why}", path.display()),
            })?;
            return Ok(CredentialsSource::File {
                path,
                kind,
                from_env: false,
            });
        }
        Some(path) => tried.push(format!("{} (no such file)", path.display())),
        None => tried.push("gcloud's credentials file (HOME is not set)".into()),
    }
    let host = metadata_host();
    match probe_metadata_server(&host).await {
        Ok(()) => Ok(CredentialsSource::MetadataServer { host }),
        Err(why) => {
            tried.push(format!("the metadata server at {host} ({why})"));
            Err(no_credentials(tried))
        }
    }
}

/// Where `gcloud auth application-default login` writes its file.
fn well_known_file() -> Option<PathBuf> {
    if cfg!(windows) {
        std::env::var_os("APPDATA")
            .map(|d| PathBuf::from(d).join("gcloud/application_default_credentials.json"))
    } else {
        std::env::var_os("HOME")
            .map(|d| PathBuf::from(d).join(".config/gcloud/application_default_credentials.json"))
    }
}

/// The `type` of a credentials file, or why it cannot be one. Reads only that field:
/// nothing of the secret is kept or printed.
fn file_kind(path: &Path) -> std::result::Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| "not a JSON credentials file".to_string())?;
    json.get("type")
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .ok_or_else(|| "a JSON file without a `type` field: not a Google credentials file".into())
}

/// The metadata server's host, as the auth library addresses it.
fn metadata_host() -> String {
    std::env::var("GCE_METADATA_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| "metadata.google.internal".to_string())
}

/// Whether a metadata server answers at `host`: it must send `Metadata-Flavor: Google`
/// back, which tells it apart from anything else that answers HTTP there.
async fn probe_metadata_server(host: &str) -> std::result::Result<(), String> {
    // reqwest builds its TLS config eagerly, even for a plain-HTTP client.
    crate::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(METADATA_PROBE_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!("http://{host}/computeMetadata/v1/"))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {}s", METADATA_PROBE_TIMEOUT.as_secs())
            } else if e.is_connect() {
                "not reachable".to_string()
            } else {
                e.to_string()
            }
        })?;
    match response.headers().get("metadata-flavor") {
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"google") => Ok(()),
        _ => Err(format!(
            "something answered with HTTP {} but it is not a metadata server",
            response.status().as_u16()
        )),
    }
}

/// A failed call, classified. Refused credentials (`UNAUTHENTICATED`,
/// `PERMISSION_DENIED`) and a token the auth library could not renew are fatal and name
/// the credentials' source; a refused certificate is fatal and says what to do;
/// anything else keeps the gRPC code's class.
pub(super) fn classify(
    operation: &'static str,
    endpoint: &str,
    credentials: &CredentialsSource,
    status: tonic::Status,
) -> Error {
    use std::error::Error as _;
    let mut code = status.code();
    let mut message = status.message().to_string();
    if let Some(source) = status.source() {
        if let Some(tls) = crate::tls::explain(source, endpoint) {
            message = tls.message;
            if !tls.retryable {
                code = Code::FailedPrecondition;
            }
        } else if let Some(e) = find::<gcloud_sdk::error::Error>(source) {
            let transient = matches!(
                e.kind(),
                gcloud_sdk::error::ErrorKind::Credentials(c) if c.is_transient()
            );
            message = format!("{credentials} could not produce a token: {e}");
            code = if transient {
                Code::Unavailable
            } else {
                Code::Unauthenticated
            };
        }
    }
    if matches!(code, Code::Unauthenticated | Code::PermissionDenied)
        && *credentials != CredentialsSource::Emulator
        && !message.contains(&credentials.to_string())
    {
        message = format!("{message} (credentials: {credentials})");
    }
    Error::Firestore {
        operation,
        endpoint: endpoint.to_string(),
        code,
        message,
    }
}

fn find<'a, T: std::error::Error + 'static>(
    mut e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    loop {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        e = e.source()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credentials_file_is_described_by_its_type_only() {
        let dir = std::env::temp_dir().join(format!("fireshift-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key.json");
        std::fs::write(
            &key,
            r#"{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nsecret"}"#,
        )
        .unwrap();
        assert_eq!(file_kind(&key).unwrap(), "service_account");
        let shown = CredentialsSource::File {
            path: key.clone(),
            kind: "service_account".into(),
            from_env: true,
        }
        .to_string();
        assert!(shown.contains("GOOGLE_APPLICATION_CREDENTIALS") && !shown.contains("secret"));
        std::fs::write(&key, "{\"private_key\": \"x\"}").unwrap();
        assert!(file_kind(&key).unwrap_err().contains("`type`"));
        std::fs::write(&key, "not json").unwrap();
        assert_eq!(file_kind(&key).unwrap_err(), "not a JSON credentials file");
    }

    #[test]
    fn refused_credentials_are_fatal_and_named() {
        let source = CredentialsSource::MetadataServer {
            host: "127.0.0.1:1".into(),
        };
        let e = classify(
            "RunQuery",
            "https://fs.example",
            &source,
            tonic::Status::unauthenticated("token expired"),
        );
        assert!(!e.is_retryable());
        let msg = e.to_string();
        assert!(
            msg.contains("the metadata server at 127.0.0.1:1") && msg.contains("token expired"),
            "{msg}"
        );
        let busy = classify(
            "RunQuery",
            "https://fs.example",
            &source,
            tonic::Status::unavailable("busy"),
        );
        assert!(busy.is_retryable());
    }

    #[tokio::test]
    async fn a_closed_port_is_no_metadata_server() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let why = probe_metadata_server(&format!("127.0.0.1:{port}"))
            .await
            .unwrap_err();
        assert_eq!(why, "not reachable");
    }
}
