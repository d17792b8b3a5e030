//! Loopback stand-ins for what production puts between fireshift and its data, so the
//! production path (TLS, real credentials, token refresh) runs in tests without the
//! internet:
//!
//! * [`Pki`]: a CA of the test's own and server certificates it signs;
//! * [`GoogleFront`]: a TLS gRPC front for the Firestore emulator that, like Google's,
//!   refuses a call without a bearer token it accepts: a JWT signed by a service account
//!   key it knows (checked against the key's public half, expiry included), or an access
//!   token one of its token servers issued and that has not expired;
//! * [`TokenServers`]: a metadata server (`GCE_METADATA_HOST`, as Cloud Run, GKE and GCE
//!   serve it) issuing short-lived access tokens, and an OAuth token endpoint for gcloud
//!   user credentials (`authorized_user` with a refresh token);
//! * [`MongoTlsFront`]: a TLS front for the MongoDB-wire server.
//!
//! Everything binds to 127.0.0.1 and lives as long as the value that started it.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

type Body = BoxBody<Bytes, hyper::Error>;

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A CA of the test's own, and certificates it signs, written under a temp dir.
pub struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    pub fn new() -> Self {
        fireshift::tls::install_crypto_provider();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fireshift test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Self { dir, ca, ca_key }
    }

    /// The CA certificate (PEM) a client is told to trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A directory for the test's other files (keys, credentials).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A TLS server configuration with a certificate for `names` (DNS names or IP
    /// addresses) signed by this CA, offering `alpn`.
    pub fn server_config(&self, names: &[&str], alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// A service account key of the test's own: the JSON file a deployment would hold,
/// and the public half the front checks signatures with.
pub struct ServiceAccount {
    pub email: String,
    pub key_id: String,
    pub public: rsa::RsaPublicKey,
    /// The private key PEM: the secret that must never appear in any output.
    pub private_pem: String,
}

impl ServiceAccount {
    pub fn generate(name: &str) -> Self {
        use rsa::pkcs8::EncodePrivateKey;
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let private_pem = private
            .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
            .to_string();
        Self {
            email: format!("{name}@fireshift-test.iam.gserviceaccount.com"),
            key_id: format!("{name}-key-1"),
            public: private.to_public_key(),
            private_pem,
        }
    }

    /// Writes the key file as `gcloud iam service-accounts keys create` would.
    pub fn write_key_file(&self, path: &Path, project: &str) {
        let json = serde_json::json!({
            "type": "service_account",
            "project_id": project,
            "private_key_id": self.key_id,
            "private_key": self.private_pem,
            "client_email": self.email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
            "universe_domain": "googleapis.com",
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What the front accepts and what it saw.
#[derive(Default)]
pub struct Tokens {
    /// Service accounts whose signed JWTs are accepted.
    accounts: Mutex<Vec<(String, String, rsa::RsaPublicKey)>>,
    /// Opaque access tokens the token servers issued, with their expiry.
    issued: Mutex<HashMap<String, Instant>>,
    /// Distinct tokens the front accepted.
    accepted: Mutex<HashSet<String>>,
    /// Calls refused, with the reason.
    refused: Mutex<Vec<String>>,
    /// Calls let through.
    pub calls: AtomicUsize,
}

impl Tokens {
    pub fn trust(&self, account: &ServiceAccount) {
        self.accounts.lock().unwrap().push((
            account.email.clone(),
            account.key_id.clone(),
            account.public.clone(),
        ));
    }

    fn issue(&self, prefix: &str, lifetime: Duration) -> String {
        let token = format!("{prefix}-{:032x}", rand::random::<u128>());
        self.issued
            .lock()
            .unwrap()
            .insert(token.clone(), Instant::now() + lifetime);
        token
    }

    /// Every distinct token accepted so far.
    pub fn accepted(&self) -> HashSet<String> {
        self.accepted.lock().unwrap().clone()
    }

    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }

    /// `Ok` for a token the front accepts, else why not.
    fn check(&self, authorization: Option<&str>) -> Result<(), String> {
        let token = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .ok_or("no bearer token")?;
        if token.matches('.').count() == 2 {
            self.check_jwt(token)?;
        } else {
            match self.issued.lock().unwrap().get(token) {
                None => return Err("unknown access token".into()),
                Some(expiry) if *expiry <= Instant::now() => {
                    return Err("access token expired".into())
                }
                Some(_) => {}
            }
        }
        self.accepted.lock().unwrap().insert(token.to_string());
        Ok(())
    }

    fn check_jwt(&self, token: &str) -> Result<(), String> {
        use rsa::signature::Verifier;
        let parts: Vec<&str> = token.split('.').collect();
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string());
        let header: serde_json::Value =
            serde_json::from_slice(&decode(parts[0])?).map_err(|e| e.to_string())?;
        let claims: serde_json::Value =
            serde_json::from_slice(&decode(parts[1])?).map_err(|e| e.to_string())?;
        if header["alg"] != "RS256" {
            return Err(format!("JWT algorithm {} is not RS256", header["alg"]));
        }
        let accounts = self.accounts.lock().unwrap();
        let (_, _, public) = accounts
            .iter()
            .find(|(email, kid, _)| {
                header["kid"] == *kid.as_str() && claims["iss"] == *email.as_str()
            })
            .ok_or("JWT from an unknown service account key")?;
        let signature = rsa::pkcs1v15::Signature::try_from(decode(parts[2])?.as_slice())
            .map_err(|e| e.to_string())?;
        rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(public.clone())
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .map_err(|_| "JWT signature does not verify")?;
        let exp = claims["exp"].as_u64().ok_or("JWT without exp")?;
        if exp <= now_secs() {
            return Err("JWT expired".into());
        }
        let scope = claims["scope"].as_str().unwrap_or("");
        if !scope.contains("https://www.googleapis.com/auth/cloud-platform") {
            return Err(format!("JWT scope {scope:?} does not cover Firestore"));
        }
        Ok(())
    }
}

/// A TLS gRPC front for the emulator: checks the bearer token, then relays the call
/// over plain HTTP/2 with the emulator's own admin token, like a cloud front end that
/// authenticates and then routes.
pub struct GoogleFront {
    pub addr: SocketAddr,
    pub tokens: Arc<Tokens>,
    task: JoinHandle<()>,
}

impl GoogleFront {
    /// Serves with a certificate for `names`; `delay` is added to every call (so that a
    /// small job lasts several token lifetimes).
    pub async fn start(pki: &Pki, names: &[&str], upstream: &str, delay: Duration) -> Self {
        let tls = tokio_rustls::TlsAcceptor::from(pki.server_config(names, &[b"h2"]));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tokens = Arc::new(Tokens::default());
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http::<Incoming>();
        let upstream = upstream.to_string();
        let shared = tokens.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (tls, tokens, client, upstream) = (
                    tls.clone(),
                    shared.clone(),
                    client.clone(),
                    upstream.clone(),
                );
                tokio::spawn(async move {
                    // A client that refuses our certificate ends here.
                    let Ok(stream) = tls.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (tokens, client, upstream) =
                            (tokens.clone(), client.clone(), upstream.clone());
                        async move {
                            Ok::<_, Infallible>(
                                relay(req, &tokens, &client, &upstream, delay).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, tokens, task }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for GoogleFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    req: Request<Incoming>,
    tokens: &Tokens,
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Incoming,
    >,
    upstream: &str,
    delay: Duration,
) -> Response<Body> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if let Err(why) = tokens.check(auth) {
        tokens.refused.lock().unwrap().push(why.clone());
        return grpc_error(
            16,
            &format!("Request had invalid authentication credentials: {why}"),
        );
    }
    tokens.calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(delay).await;
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    parts.uri = format!("http://{upstream}{path}").parse().unwrap();
    parts
        .headers
        .insert("authorization", "Bearer owner".parse().unwrap());
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => response.map(|b| b.boxed()),
        Err(e) => grpc_error(14, &format!("upstream: {e}")),
    }
}

/// A trailers-only gRPC error response.
fn grpc_error(code: u32, message: &str) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .header("grpc-status", code.to_string())
        .header("grpc-message", message.replace(['\r', '\n'], " "))
        .body(empty())
        .unwrap()
}

/// How the token servers behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issuing {
    /// Valid tokens that live `lifetime`.
    Valid,
    /// Tokens the front has already forgotten (a token the server rejects as
    /// expired although the issuer claimed an hour).
    AlreadyExpired,
}

/// A metadata server and an OAuth token endpoint on one plain-HTTP port, issuing tokens
/// the front accepts.
pub struct TokenServers {
    pub addr: SocketAddr,
    /// Token requests served, per kind ("metadata", "oauth").
    pub requests: Arc<Mutex<HashMap<&'static str, usize>>>,
    task: JoinHandle<()>,
}

impl TokenServers {
    /// `refresh_token`: the one the OAuth endpoint accepts.
    pub async fn start(
        tokens: Arc<Tokens>,
        lifetime: Duration,
        issuing: Issuing,
        refresh_token: &str,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(HashMap::new()));
        let counts = requests.clone();
        let refresh_token = refresh_token.to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (tokens, counts, refresh_token) =
                    (tokens.clone(), counts.clone(), refresh_token.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (tokens, counts, refresh_token) =
                            (tokens.clone(), counts.clone(), refresh_token.clone());
                        async move {
                            Ok::<_, Infallible>(
                                serve_token(
                                    req,
                                    &tokens,
                                    &counts,
                                    lifetime,
                                    issuing,
                                    &refresh_token,
                                )
                                .await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    pub fn count(&self, kind: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    /// Writes gcloud's user credentials file (`authorized_user`) pointing at this
    /// server's token endpoint, under `home` where the auth library looks for it.
    pub fn write_user_credentials(&self, home: &Path, refresh_token: &str) -> PathBuf {
        let dir = home.join(".config/gcloud");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("application_default_credentials.json");
        let json = serde_json::json!({
            "type": "authorized_user",
            "client_id": "fireshift-test.apps.googleusercontent.com",
            "client_secret": "test-client-secret-d0n0tprint",
            "refresh_token": refresh_token,
            "token_uri": format!("http://{}/token", self.addr),
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
        path
    }
}

impl Drop for TokenServers {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_token(
    req: Request<Incoming>,
    tokens: &Tokens,
    counts: &Mutex<HashMap<&'static str, usize>>,
    lifetime: Duration,
    issuing: Issuing,
    refresh_token: &str,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let flavor_ok = req
        .headers()
        .get("metadata-flavor")
        .is_some_and(|v| v == "Google");
    let issue = |prefix: &str| match issuing {
        Issuing::Valid => tokens.issue(prefix, lifetime),
        Issuing::AlreadyExpired => tokens.issue(prefix, Duration::ZERO),
    };
    let token_json = |token: String| {
        let expires_in = match issuing {
            Issuing::Valid => lifetime.as_secs(),
            Issuing::AlreadyExpired => 3600,
        };
        full(
            serde_json::json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"})
                .to_string(),
        )
    };
    let metadata = |status: u16, body: Body| {
        Response::builder()
            .status(status)
            .header("metadata-flavor", "Google")
            .header("content-type", "application/json")
            .body(body)
            .unwrap()
    };
    if path == "/token" {
        *counts.lock().unwrap().entry("oauth").or_default() += 1;
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if request["refresh_token"] != refresh_token {
            return Response::builder()
                .status(400)
                .header("content-type", "application/json")
                .body(full(
                    r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
                ))
                .unwrap();
        }
        return Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(token_json(issue("user")))
            .unwrap();
    }
    if !path.starts_with("/computeMetadata/v1") {
        return Response::builder().status(404).body(empty()).unwrap();
    }
    if !flavor_ok {
        return metadata(403, full("missing Metadata-Flavor: Google"));
    }
    if path.ends_with("/service-accounts/default/token") {
        *counts.lock().unwrap().entry("metadata").or_default() += 1;
        return metadata(200, token_json(issue("mds")));
    }
    match path.as_str() {
        "/computeMetadata/v1/" | "/computeMetadata/v1" => {
            metadata(200, full("instance/\nproject/\n"))
        }
        "/computeMetadata/v1/universe/universe-domain" => metadata(200, full("googleapis.com")),
        "/computeMetadata/v1/project/project-id" => metadata(200, full("fireshift-test")),
        _ => metadata(404, full("not found")),
    }
}

/// A TLS front for the MongoDB-wire server: terminates TLS and relays the bytes.
pub struct MongoTlsFront {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MongoTlsFront {
    pub async fn start(pki: &Pki, names: &[&str], upstream: SocketAddr) -> Self {
        let tls = tokio_rustls::TlsAcceptor::from(pki.server_config(names, &[]));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let tls = tls.clone();
                tokio::spawn(async move {
                    let Ok(mut client) = tls.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Self { addr, task }
    }

    /// A connection string through this front, trusting `ca_file`.
    pub fn uri(&self, ca_file: &Path) -> String {
        format!(
            "mongodb://{}/?directConnection=true&tls=true&tlsCAFile={}",
            self.addr,
            ca_file.display()
        )
    }
}

impl Drop for MongoTlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The MongoDB-wire server's address from `MONGODB_URI` (host:port of a
/// `mongodb://host:port/…` string).
pub fn mongo_upstream(uri: &str) -> SocketAddr {
    let rest = uri.strip_prefix("mongodb://").expect("a mongodb:// URI");
    let authority = rest.split(['/', '?']).next().unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    use std::net::ToSocketAddrs;
    host_port
        .to_socket_addrs()
        .unwrap()
        .find(|a| a.is_ipv4())
        .unwrap()
}
