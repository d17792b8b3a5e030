//! Connecting to Firestore: which endpoint (Google's, a regional or private one, or the
//! emulator), TLS (the system's roots plus an operator's CA), and which credentials
//! (Application Default Credentials as Google's libraries resolve them). Every part of
//! fireshift that talks to Firestore — the source, plan, verify's rechecks, the
//! dual-write store and the demo writer — connects here, so all of them take the
//! production path the same way.
//!
//! The generated gRPC client (`gcloud-sdk`) is used directly, on a channel built here:
//! that is what lets an operator name the endpoint and add a CA, which the SDK's own
//! channel builder does not offer. The SDK's auth middleware puts the token on every
//! call; Google's auth library (`google-cloud-auth`) mints it and refreshes it before it
//! expires, in the background, so a long job never sees an expired token.

mod call;
mod credentials;
mod write;

use std::path::PathBuf;
use std::time::Duration;

use gcloud_sdk::google::firestore::v1::firestore_client::FirestoreClient;
use gcloud_sdk::{GoogleAuthMiddleware, GoogleAuthMiddlewareLayer};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tower_layer::Layer;

use crate::error::{Error, Result};

pub use call::{count_request, Fetched};
pub use credentials::CredentialsSource;
pub use write::{write_documents, BATCH_BYTES, BATCH_SIZE};

/// Google's Firestore endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://firestore.googleapis.com";
/// The variable that selects the emulator, as in every Firestore client library.
pub const EMULATOR_HOST_ENV: &str = "FIRESTORE_EMULATOR_HOST";
/// How long opening the connection (TCP, TLS and the HTTP/2 handshake) may take before
/// it is reported: a first connection that cannot be made fails within seconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call may wait for the server's next answer (a response, or the next
/// message of a stream) by default: past it the call fails as `DeadlineExceeded`
/// (retryable), so a server that accepts and never answers cannot hold a run forever.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Where Firestore is, as an operator gives it.
#[derive(Debug, Clone, Default)]
pub struct FirestoreEndpoint {
    /// An `https://` URL: a regional endpoint, a Private Service Connect address or a
    /// proxy. `None`: the emulator when `FIRESTORE_EMULATOR_HOST` is set, else
    /// [`DEFAULT_ENDPOINT`]. Given explicitly, it wins over `FIRESTORE_EMULATOR_HOST`.
    pub url: Option<String>,
    /// PEM file of CA certificates trusted besides the system's roots (which already
    /// honour `SSL_CERT_FILE` and `SSL_CERT_DIR`).
    pub ca_file: Option<PathBuf>,
}

/// Which server a connection goes to, resolved from a [`FirestoreEndpoint`] and the
/// environment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// Plain HTTP/2 to the emulator, with the stub token it expects.
    Emulator { host: String },
    /// TLS to a real endpoint, with Application Default Credentials.
    Google { url: String },
}

impl FirestoreEndpoint {
    fn target(&self) -> Result<Target> {
        if let Some(url) = &self.url {
            let url = url.trim_end_matches('/').to_string();
            if !url.starts_with("https://") {
                return Err(Error::Config(format!(
                    "--firestore-endpoint {url}: must be an https:// URL (credentials never travel \
                     in clear; the emulator is selected with FIRESTORE_EMULATOR_HOST)"
                )));
            }
            return Ok(Target::Google { url });
        }
        match std::env::var(EMULATOR_HOST_ENV) {
            Ok(host) if !host.trim().is_empty() => Ok(Target::Emulator {
                host: host.trim().to_string(),
            }),
            _ => Ok(Target::Google {
                url: DEFAULT_ENDPOINT.to_string(),
            }),
        }
    }
}

/// An authenticated client of one Firestore database. Cheap to clone: clones share the
/// connection and the token.
#[derive(Clone)]
pub struct FirestoreConnection {
    client: FirestoreClient<GoogleAuthMiddleware>,
    endpoint: String,
    credentials: CredentialsSource,
    answer_timeout: Duration,
}

impl FirestoreConnection {
    /// Connects to database `database_id` of `project`: resolves the endpoint and the
    /// credentials, opens the connection (TCP, TLS, HTTP/2) and, for real credentials,
    /// obtains a first token, so that a wrong endpoint, an untrusted certificate or
    /// missing or refused credentials are reported here, before any work, with the
    /// endpoint and the cause.
    pub async fn connect(
        project: &str,
        database_id: &str,
        endpoint: &FirestoreEndpoint,
    ) -> Result<Self> {
        crate::tls::install_crypto_provider();
        if project.is_empty() {
            return Err(Error::Config(
                "no Firestore project: pass --project or set GOOGLE_CLOUD_PROJECT".into(),
            ));
        }
        let target = endpoint.target()?;
        let (url, shown) = match &target {
            Target::Emulator { host } => (format!("http://{host}"), format!("emulator {host}")),
            Target::Google { url } => (url.clone(), url.clone()),
        };
        let mut channel = Endpoint::from_shared(url.clone())
            .map_err(|e| Error::Config(format!("Firestore endpoint {shown}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .http2_keep_alive_interval(Duration::from_secs(60))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        if let Target::Google { url } = &target {
            channel = channel
                .tls_config(tls_config(url, endpoint)?)
                .map_err(|e| connect_error(&shown, &e))?;
        } else if endpoint.ca_file.is_some() {
            tracing::warn!("--firestore-ca-file is ignored: the emulator is reached without TLS");
        }
        // Credentials first: "no credentials" is the likelier mistake on a new machine
        // and its message says how to fix it.
        let (headers, credentials) = match &target {
            Target::Emulator { .. } => (credentials::emulator(), CredentialsSource::Emulator),
            Target::Google { .. } => credentials::application_default(&shown).await?,
        };
        // Bounded as a whole: a server that accepts the connection and never completes
        // the HTTP/2 handshake would otherwise hold `connect` forever.
        let channel: Channel = match tokio::time::timeout(CONNECT_TIMEOUT, channel.connect()).await {
            Ok(connected) => connected.map_err(|e| connect_error(&shown, &e))?,
            Err(_) => {
                return Err(Error::FirestoreConnect {
                    endpoint: shown,
                    message: format!(
                        "no answer within {}s (something accepts connections there but does not speak HTTP/2)",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                    retryable: false,
                })
            }
        };
        let database = format!("projects/{project}/databases/{database_id}");
        let mut layer = GoogleAuthMiddlewareLayer::new(headers, Some(database.clone()))
            .map_err(|e| Error::Config(format!("Firestore request headers: {e}")))?;
        let mut extra = gcloud_sdk::HeaderMap::new();
        // Routes the call to the database, as Google's client libraries do.
        let params = format!("project_id={project}&database_id={database_id}");
        extra.insert(
            "x-goog-request-params",
            params
                .parse()
                .map_err(|e| Error::Config(format!("Firestore request headers: {e}")))?,
        );
        layer.set_additional_headers(extra);
        let layer = layer
            .amend_user_agent(format!("fireshift/{}", env!("CARGO_PKG_VERSION")))
            .map_err(|e| Error::Config(format!("Firestore request headers: {e}")))?;
        let service = layer.layer(channel);
        tracing::debug!(endpoint = %shown, credentials = %credentials, "connected to Firestore");
        let conn = Self {
            client: FirestoreClient::new(service)
                // Export-sized documents and large query pages exceed tonic's 4 MiB default.
                .max_decoding_message_size(64 * 1024 * 1024),
            endpoint: shown,
            credentials,
            answer_timeout: DEFAULT_ANSWER_TIMEOUT,
        };
        conn.probe(&database).await?;
        Ok(conn)
    }

    /// One cheap call (the first page of one root collection id) that the server must
    /// answer within [`CONNECT_TIMEOUT`]: opening a plain HTTP/2 connection does not
    /// wait for the server, so without it a server that accepts connections and never
    /// answers would only show at the first real call, after a full answer timeout per
    /// retry. It also surfaces refused credentials and a missing database before any
    /// work.
    async fn probe(&self, database: &str) -> Result<()> {
        let req = gcloud_sdk::google::firestore::v1::ListCollectionIdsRequest {
            parent: format!("{database}/documents"),
            page_size: 1,
            ..Default::default()
        };
        let mut client = self.client();
        match tokio::time::timeout(CONNECT_TIMEOUT, client.list_collection_ids(req)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(self.status_error("ListCollectionIds", status)),
            Err(_) => Err(Error::FirestoreConnect {
                endpoint: self.endpoint.clone(),
                message: format!(
                    "no answer within {}s (something accepts connections there but does not answer)",
                    CONNECT_TIMEOUT.as_secs()
                ),
                retryable: false,
            }),
        }
    }

    /// The same connection, waiting at most `timeout` for each answer of the server.
    pub fn with_answer_timeout(mut self, timeout: Duration) -> Self {
        self.answer_timeout = timeout;
        self
    }

    /// How long a call waits for the server's next answer.
    pub fn answer_timeout(&self) -> Duration {
        self.answer_timeout
    }

    /// Awaits one answer of the server (a response, or a stream's next message) for at
    /// most [`Self::answer_timeout`]; past it, a retryable `DeadlineExceeded` naming the
    /// operation and the endpoint.
    pub async fn answer<T>(
        &self,
        operation: &'static str,
        fut: impl std::future::Future<Output = std::result::Result<T, tonic::Status>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.answer_timeout, fut).await {
            Ok(r) => r.map_err(|s| self.status_error(operation, s)),
            Err(_) => Err(Error::Firestore {
                operation,
                endpoint: self.endpoint.clone(),
                code: tonic::Code::DeadlineExceeded,
                message: format!(
                    "no answer from the server within {}s",
                    self.answer_timeout.as_secs()
                ),
            }),
        }
    }

    /// The gRPC client (a cheap clone of a shared one), for one call.
    pub fn client(&self) -> FirestoreClient<GoogleAuthMiddleware> {
        self.client.clone()
    }

    /// The endpoint, for messages: `emulator HOST:PORT` or the URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Where the credentials came from, for messages (never the secret itself).
    pub fn credentials(&self) -> &CredentialsSource {
        &self.credentials
    }

    /// A failed call to this connection's Firestore, classified retryable or fatal,
    /// naming the endpoint, and for refused credentials where they came from.
    pub fn status_error(&self, operation: &'static str, status: tonic::Status) -> Error {
        credentials::classify(operation, &self.endpoint, &self.credentials, status)
    }
}

fn tls_config(url: &str, endpoint: &FirestoreEndpoint) -> Result<ClientTlsConfig> {
    let host = url
        .strip_prefix("https://")
        .and_then(|rest| rest.split(['/', '?']).next())
        .map(|authority| match authority.rsplit_once(':') {
            // `[::1]:443` or `host:443`: drop the port, keep a bracketed IPv6 literal.
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => authority,
        })
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::Config(format!("--firestore-endpoint {url}: no host name")))?;
    let mut tls = ClientTlsConfig::new().with_native_roots().domain_name(host);
    if let Some(path) = &endpoint.ca_file {
        let pem = crate::tls::read_ca_file(path, "--firestore-ca-file")?;
        tls = tls.ca_certificate(Certificate::from_pem(pem));
    }
    Ok(tls)
}

/// A connection that could not be opened: certificate problems are fatal and say what
/// to do; anything else (refused, unreachable, timed out) may pass.
fn connect_error(endpoint: &str, e: &tonic::transport::Error) -> Error {
    if let Some(tls) = crate::tls::explain(e, endpoint) {
        return Error::FirestoreConnect {
            endpoint: endpoint.to_string(),
            message: tls.message,
            retryable: tls.retryable,
        };
    }
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    Error::FirestoreConnect {
        endpoint: endpoint.to_string(),
        message,
        retryable: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_endpoint_must_use_tls() {
        let e = FirestoreEndpoint {
            url: Some("http://firestore.example".into()),
            ca_file: None,
        };
        let err = e.target().unwrap_err().to_string();
        assert!(
            err.contains("https://") && err.contains("FIRESTORE_EMULATOR_HOST"),
            "{err}"
        );
        let ok = FirestoreEndpoint {
            url: Some("https://eu-firestore.example/".into()),
            ca_file: None,
        };
        assert_eq!(
            ok.target().unwrap(),
            Target::Google {
                url: "https://eu-firestore.example".into()
            }
        );
    }

    #[test]
    fn the_tls_server_name_is_the_url_host() {
        for url in [
            "https://localhost:8443",
            "https://localhost",
            "https://localhost:8443/v1",
        ] {
            assert!(
                tls_config(url, &FirestoreEndpoint::default()).is_ok(),
                "{url}"
            );
        }
        assert!(tls_config("https://", &FirestoreEndpoint::default()).is_err());
    }
}
