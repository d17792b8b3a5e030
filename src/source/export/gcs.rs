//! A small Cloud Storage client for export files at `gs://`, over the JSON API: list the
//! objects under a prefix (paged), read an object whole, and stream it from an offset
//! with ranged requests that resume where a broken transfer stopped.
//!
//! Real Cloud Storage is reached over HTTPS with Application Default Credentials
//! (read-only scope); the emulator (`STORAGE_EMULATOR_HOST`) over plain HTTP with none,
//! as Google's client libraries do. Tokens only ever travel in request headers: none is
//! logged or put in an error.

use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gcloud_sdk::google_cloud_auth::credentials::{Builder, CacheableResource, Credentials};
use http::Extensions;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

/// Read-only access to objects: all an export reader needs.
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_only";
const PUBLIC_ENDPOINT: &str = "https://storage.googleapis.com";
/// How long the first token may take (a metadata server or token endpoint that hangs).
const FIRST_TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A client for one bucket.
#[derive(Clone)]
pub(super) struct Gcs {
    http: reqwest::Client,
    /// `https://storage.googleapis.com`, or the emulator's `http://host:port`.
    base: String,
    bucket: String,
    /// `None` for the emulator.
    credentials: Option<Credentials>,
    /// Where the credentials came from, for messages (never a secret).
    credentials_source: String,
    /// How long a response's head, or the next piece of its body, may keep us waiting
    /// before the transfer counts as stalled (and is retried).
    answer_timeout: Duration,
    page_size: u32,
}

impl Gcs {
    /// A client for `bucket`: on the emulator at `emulator_host` when given, else on
    /// Cloud Storage with Application Default Credentials, checked by getting a first
    /// token so that missing or refused credentials stop the command before any work.
    pub(super) async fn connect(
        bucket: &str,
        emulator_host: Option<&str>,
        answer_timeout: Duration,
        page_size: u32,
    ) -> Result<Self> {
        // reqwest builds its TLS config eagerly, even for a plain-HTTP client.
        crate::tls::install_crypto_provider();
        let mut http = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
        let (base, credentials, credentials_source) = match emulator_host {
            Some(host) => {
                // A proxy from the environment must not catch loopback traffic.
                http = http.no_proxy();
                let host = host.trim().trim_end_matches('/');
                let base = if host.contains("://") {
                    host.to_string()
                } else {
                    format!("http://{host}")
                };
                (base, None, "no credentials (the emulator)".to_string())
            }
            None => {
                let (credentials, source) = application_default(bucket).await?;
                (PUBLIC_ENDPOINT.to_string(), Some(credentials), source)
            }
        };
        let http = http.build().map_err(|e| Error::Storage {
            operation: "client setup",
            object: format!("gs://{bucket}"),
            message: chain(&e),
            retryable: false,
        })?;
        Ok(Self {
            http,
            base,
            bucket: bucket.to_string(),
            credentials,
            credentials_source,
            answer_timeout,
            page_size,
        })
    }

    /// Where requests go and with which credentials, for messages.
    pub(super) fn endpoint(&self) -> String {
        match self.credentials {
            None => format!("the Cloud Storage emulator at {}", self.base),
            Some(_) => format!("with {}", self.credentials_source),
        }
    }

    pub(super) fn bucket(&self) -> &str {
        &self.bucket
    }

    fn address(&self, name: &str) -> String {
        format!("gs://{}/{name}", self.bucket)
    }

    /// Every object whose name starts with `prefix`: (full name, size), in name order.
    /// Each page is retried on its own.
    pub(super) async fn list(
        &self,
        prefix: &str,
        retry: RetryPolicy,
    ) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = self.url(&["storage", "v1", "b", &self.bucket, "o"]);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("prefix", prefix)
                    .append_pair("maxResults", &self.page_size.to_string())
                    .append_pair("fields", "items(name,size),nextPageToken");
                if let Some(t) = &token {
                    q.append_pair("pageToken", t);
                }
            }
            let what = || format!("listing {}", self.address(prefix));
            let page: ListPage = retry
                .run(what, || async {
                    let response = self.get(url.clone(), None, "listing", prefix).await?;
                    let body = self.body(response, "listing", prefix).await?;
                    serde_json::from_slice(&body).map_err(|e| Error::Storage {
                        operation: "listing",
                        object: self.address(prefix),
                        message: format!("unreadable answer: {e}"),
                        retryable: false,
                    })
                })
                .await?;
            for item in page.items {
                // A "folder" placeholder some tools create: not a file.
                if item.name.ends_with('/') {
                    continue;
                }
                let size = item.size.parse::<u64>().ok().or_else(|| {
                    // Some servers send the size as a JSON number.
                    item.size.trim_matches('"').parse().ok()
                });
                let size = size.ok_or_else(|| Error::Storage {
                    operation: "listing",
                    object: self.address(&item.name),
                    message: format!("the object's size {:?} is not a number", item.size),
                    retryable: false,
                })?;
                out.push((item.name, size));
            }
            match page.next_page_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }

    /// The whole object, retried from scratch on a transient fault.
    pub(super) async fn read_all(&self, name: &str, retry: RetryPolicy) -> Result<Vec<u8>> {
        let what = || format!("reading {}", self.address(name));
        retry
            .run(what, || async {
                let response = self
                    .get(self.media_url(name), None, "download", name)
                    .await?;
                Ok(self.body(response, "download", name).await?.to_vec())
            })
            .await
    }

    /// Sends `name` from byte `from` to its end into `tx` as chunks of exactly `chunk`
    /// bytes (the last may be shorter). A transient fault re-requests from the first
    /// byte not yet received, so every byte is sent once; the backoff restarts whenever
    /// bytes arrive. A fatal fault, or one that outlasts the deadline, is sent as the
    /// last item. Returns when done or when the receiver is gone.
    pub(super) async fn stream(
        &self,
        name: &str,
        from: u64,
        chunk: usize,
        retry: RetryPolicy,
        tx: mpsc::Sender<Result<(u64, Bytes)>>,
    ) {
        let mut state = Transfer {
            next: from,
            buf: BytesMut::with_capacity(chunk),
            buf_start: from,
            total: None,
        };
        let mut backoff = retry.backoff();
        loop {
            match self
                .transfer(name, chunk, &mut state, &tx, &mut backoff)
                .await
            {
                Ok(()) => return,
                Err(e) => {
                    let what = format!(
                        "downloading {} from byte {}",
                        self.address(name),
                        state.next
                    );
                    if let Err(e) = backoff.wait(e, &what).await {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        }
    }

    /// One request of a stream, from `state.next` to the end. `Ok` when the object is
    /// delivered or the receiver is gone.
    async fn transfer(
        &self,
        name: &str,
        chunk: usize,
        state: &mut Transfer,
        tx: &mpsc::Sender<Result<(u64, Bytes)>>,
        backoff: &mut crate::retry::Backoff,
    ) -> Result<()> {
        let response = self
            .get(self.media_url(name), Some(state.next), "download", name)
            .await?;
        let status = response.status();
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            // Nothing from `next` on: the end of the object, if that is where it ends.
            let size = match state.total {
                Some(t) => t,
                None => self.size(name).await?,
            };
            if state.next == size {
                return flush(state, tx).await;
            }
            return Err(self.fatal(
                "download",
                name,
                format!(
                    "byte {} is past the end of the object ({size} bytes)",
                    state.next
                ),
            ));
        }
        // A server that ignores Range answers 200 with the whole object: skip what
        // was already received.
        let mut skip = 0u64;
        if status == StatusCode::PARTIAL_CONTENT {
            let (start, total) = content_range(&response).ok_or_else(|| {
                self.fatal(
                    "download",
                    name,
                    "a partial answer without a valid Content-Range".into(),
                )
            })?;
            if start != state.next {
                return Err(self.fatal(
                    "download",
                    name,
                    format!("asked for bytes from {}, got from {start}", state.next),
                ));
            }
            state.total = total;
        } else {
            skip = state.next;
            state.total = response.content_length();
        }
        let mut response = response;
        loop {
            let piece = self.next_piece(&mut response, "download", name).await?;
            let Some(mut piece) = piece else { break };
            if skip > 0 {
                let n = (skip as usize).min(piece.len());
                let _ = piece.split_to(n);
                skip -= n as u64;
            }
            if piece.is_empty() {
                continue;
            }
            state.next += piece.len() as u64;
            state.buf.extend_from_slice(&piece);
            backoff.reset();
            while state.buf.len() >= chunk {
                let out = state.buf.split_to(chunk).freeze();
                let at = state.buf_start;
                state.buf_start += chunk as u64;
                if tx.send(Ok((at, out))).await.is_err() {
                    return Ok(());
                }
            }
        }
        if let Some(total) = state.total.filter(|t| state.next < *t) {
            // The body ended early without an error (a proxy closing the connection).
            return Err(self.transient(
                "download",
                name,
                format!("the answer ended at byte {} of {total}", state.next),
            ));
        }
        flush(state, tx).await
    }

    /// The object's size from its metadata.
    async fn size(&self, name: &str) -> Result<u64> {
        let mut url = self.url(&["storage", "v1", "b", &self.bucket, "o", name]);
        url.query_pairs_mut().append_pair("fields", "size");
        let response = self.get(url, None, "metadata read", name).await?;
        let body = self.body(response, "metadata read", name).await?;
        serde_json::from_slice::<SizeOnly>(&body)
            .ok()
            .and_then(|s| s.size.parse().ok())
            .ok_or_else(|| self.fatal("metadata read", name, "no size in the answer".into()))
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = Url::parse(&self.base).expect("the endpoint was checked at connect");
        url.path_segments_mut()
            .expect("an http(s) URL has a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    fn media_url(&self, name: &str) -> Url {
        let mut url = self.url(&["download", "storage", "v1", "b", &self.bucket, "o", name]);
        url.query_pairs_mut().append_pair("alt", "media");
        url
    }

    /// Sends a GET (from byte `range_from` when given) and classifies the answer: a
    /// success or a 416 comes back, anything else is an error naming the object.
    async fn get(
        &self,
        url: Url,
        range_from: Option<u64>,
        operation: &'static str,
        name: &str,
    ) -> Result<reqwest::Response> {
        let mut request = self.http.get(url);
        if let Some(from) = range_from {
            request = request.header(http::header::RANGE, format!("bytes={from}-"));
        }
        if let Some(credentials) = &self.credentials {
            request = request.headers(self.auth_headers(credentials, operation, name).await?);
        }
        let response = tokio::time::timeout(self.answer_timeout, request.send())
            .await
            .map_err(|_| self.stalled(operation, name))?
            .map_err(|e| self.transport(operation, name, e))?;
        let status = response.status();
        if status.is_success() || status == StatusCode::RANGE_NOT_SATISFIABLE {
            return Ok(response);
        }
        let detail = self.error_detail(response).await;
        let object = if operation == "listing" {
            format!("gs://{}/{name}*", self.bucket)
        } else {
            self.address(name)
        };
        let (message, retryable) = match status.as_u16() {
            404 if operation == "listing" => (
                format!("no such bucket `{}` (HTTP 404: {detail})", self.bucket),
                false,
            ),
            404 => (
                format!("no such object (HTTP 404: {detail}); is the export path right?"),
                false,
            ),
            401 | 403 => (
                format!(
                    "access denied (HTTP {}: {detail}) with {}; reading an export needs \
                     storage.objects.list and storage.objects.get on bucket `{}` \
                     (e.g. roles/storage.objectViewer)",
                    status.as_u16(),
                    self.credentials_source,
                    self.bucket
                ),
                false,
            ),
            408 | 429 | 500..=599 => (format!("HTTP {}: {detail}", status.as_u16()), true),
            other => (format!("HTTP {other}: {detail}"), false),
        };
        Err(Error::Storage {
            operation,
            object,
            message,
            retryable,
        })
    }

    async fn auth_headers(
        &self,
        credentials: &Credentials,
        operation: &'static str,
        name: &str,
    ) -> Result<http::HeaderMap> {
        match credentials.headers(Extensions::new()).await {
            Ok(CacheableResource::New { data, .. }) => Ok(data),
            // Only returned when asked with an entity tag, which we never send.
            Ok(CacheableResource::NotModified) => Err(Error::Internal(
                "the auth library answered NotModified to a request without a tag".into(),
            )),
            Err(e) => Err(Error::Storage {
                operation,
                object: self.address(name),
                message: format!("{} could not produce a token: {e}", self.credentials_source),
                retryable: e.is_transient(),
            }),
        }
    }

    /// The next piece of a response's body; a body that sends nothing for the answer
    /// timeout is stalled (transient).
    async fn next_piece(
        &self,
        response: &mut reqwest::Response,
        operation: &'static str,
        name: &str,
    ) -> Result<Option<Bytes>> {
        tokio::time::timeout(self.answer_timeout, response.chunk())
            .await
            .map_err(|_| self.stalled(operation, name))?
            .map_err(|e| self.transport(operation, name, e))
    }

    /// A (small) body whole.
    async fn body(
        &self,
        mut response: reqwest::Response,
        operation: &'static str,
        name: &str,
    ) -> Result<Bytes> {
        let mut out = BytesMut::new();
        while let Some(piece) = self.next_piece(&mut response, operation, name).await? {
            out.extend_from_slice(&piece);
        }
        Ok(out.freeze())
    }

    /// What the server said about a failure: the JSON API's `error.message`, else the
    /// start of the body.
    async fn error_detail(&self, response: reqwest::Response) -> String {
        let body = tokio::time::timeout(self.answer_timeout, response.bytes())
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        if let Ok(e) = serde_json::from_slice::<ErrorBody>(&body) {
            return e.error.message;
        }
        let text = String::from_utf8_lossy(&body);
        let text = text.trim();
        match text.char_indices().nth(200) {
            Some((i, _)) => format!("{}…", &text[..i]),
            None if text.is_empty() => "no details".into(),
            None => text.to_string(),
        }
    }

    fn transport(&self, operation: &'static str, name: &str, e: reqwest::Error) -> Error {
        if let Some(tls) = find_tls(&e, &self.base) {
            return Error::Storage {
                operation,
                object: self.address(name),
                message: tls.message,
                retryable: tls.retryable,
            };
        }
        Error::Storage {
            operation,
            object: self.address(name),
            message: format!("{} ({})", chain(&e), self.endpoint()),
            retryable: !e.is_builder(),
        }
    }

    fn stalled(&self, operation: &'static str, name: &str) -> Error {
        self.transient(
            operation,
            name,
            format!(
                "no answer for {}s ({})",
                self.answer_timeout.as_secs_f32(),
                self.endpoint()
            ),
        )
    }

    fn transient(&self, operation: &'static str, name: &str, message: String) -> Error {
        Error::Storage {
            operation,
            object: self.address(name),
            message,
            retryable: true,
        }
    }

    fn fatal(&self, operation: &'static str, name: &str, message: String) -> Error {
        Error::Storage {
            operation,
            object: self.address(name),
            message,
            retryable: false,
        }
    }
}

/// Where a stream stands: `next` is the first byte not yet received; `buf` holds the
/// received bytes from `buf_start` not yet sent (less than one chunk).
struct Transfer {
    next: u64,
    buf: BytesMut,
    buf_start: u64,
    total: Option<u64>,
}

/// Sends the last, short chunk.
async fn flush(state: &mut Transfer, tx: &mpsc::Sender<Result<(u64, Bytes)>>) -> Result<()> {
    if !state.buf.is_empty() {
        let out = state.buf.split().freeze();
        let _ = tx.send(Ok((state.buf_start, out))).await;
    }
    Ok(())
}

/// A TLS failure anywhere in `e`'s causes. The HTTP client reports one as an
/// `io::Error` inside an `io::Error`, whose `source()` skips the rustls error, so each
/// wrapped `io::Error` is opened here before asking [`crate::tls::explain`].
fn find_tls(
    e: &(dyn std::error::Error + 'static),
    endpoint: &str,
) -> Option<crate::tls::TlsFailure> {
    let mut next = Some(e);
    while let Some(x) = next {
        if let Some(found) = crate::tls::explain(x, endpoint) {
            return Some(found);
        }
        if let Some(inner) = x
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(found) = find_tls(inner, endpoint) {
                return Some(found);
            }
        }
        next = x.source();
    }
    None
}

/// `Content-Range: bytes START-END/TOTAL` → (START, TOTAL when known).
fn content_range(response: &reqwest::Response) -> Option<(u64, Option<u64>)> {
    let value = response
        .headers()
        .get(http::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// An error and its causes on one line (reqwest's own text is only the outermost).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}

#[derive(Deserialize)]
struct ListPage {
    #[serde(default)]
    items: Vec<ListItem>,
    #[serde(rename = "nextPageToken")]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct ListItem {
    name: String,
    #[serde(deserialize_with = "string_or_number")]
    size: String,
}

#[derive(Deserialize)]
struct SizeOnly {
    #[serde(deserialize_with = "string_or_number")]
    size: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorMessage,
}

#[derive(Deserialize)]
struct ErrorMessage {
    message: String,
}

/// The JSON API sends 64-bit numbers as strings; accept a plain number too.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a size, got {other}"
        ))),
    }
}

/// Application Default Credentials with the read-only storage scope, checked by a first
/// token, and a description of where they came from.
///
/// The description follows the auth library's order (the file named by
/// `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's file, the metadata server); the
/// Firestore connection's fuller check (src/firestore/credentials.rs, with a
/// metadata-server probe) is private to that module.
async fn application_default(bucket: &str) -> Result<(Credentials, String)> {
    let source = describe_adc();
    let fail = |message: String| Error::Storage {
        operation: "authentication",
        object: format!("gs://{bucket}"),
        message,
        retryable: false,
    };
    let credentials = Builder::default()
        .with_scopes([SCOPE])
        .build()
        .map_err(|e| fail(format!("no usable Google credentials ({source}): {e}. Fix: run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file")))?;
    match tokio::time::timeout(FIRST_TOKEN_TIMEOUT, credentials.headers(Extensions::new())).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(fail(format!("{source} could not produce a token: {e}"))),
        Err(_) => {
            return Err(fail(format!(
                "{source} produced no token within {}s",
                FIRST_TOKEN_TIMEOUT.as_secs()
            )))
        }
    }
    tracing::info!(bucket, credentials = %source, "using Google credentials for Cloud Storage");
    Ok((credentials, source))
}

fn describe_adc() -> String {
    if let Some(path) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty())
    {
        return format!(
            "credentials from GOOGLE_APPLICATION_CREDENTIALS={}",
            PathBuf::from(path).display()
        );
    }
    let home = if cfg!(windows) { "APPDATA" } else { "HOME" };
    let gcloud = std::env::var_os(home).map(|d| {
        let rel = if cfg!(windows) {
            "gcloud/application_default_credentials.json"
        } else {
            ".config/gcloud/application_default_credentials.json"
        };
        PathBuf::from(d).join(rel)
    });
    match gcloud {
        Some(path) if path.exists() => format!(
            "credentials from {} (gcloud auth application-default login)",
            path.display()
        ),
        _ => "the metadata server's service account".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback HTTP server that answers its n-th request with `answers[n]` (the
    /// last one again after that) and counts the requests.
    async fn canned(answers: Vec<&'static str>) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).await.unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let answer = answers[n.min(answers.len() - 1)];
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        (addr, count)
    }

    fn quick() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            deadline: Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn a_refused_read_is_fatal_and_names_bucket_object_and_credentials() {
        let (addr, count) = canned(vec![
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 68\r\n\r\n{\"error\":{\"code\":403,\"message\":\"caller lacks storage.objects.get\"}}\n",
        ])
        .await;
        let gcs = Gcs::connect("bk", Some(&addr), Duration::from_secs(5), 1000)
            .await
            .unwrap();
        let e = gcs.read_all("exp/output-0", quick()).await.unwrap_err();
        assert!(!e.is_retryable());
        let msg = e.to_string();
        for part in [
            "gs://bk/exp/output-0",
            "access denied (HTTP 403: caller lacks storage.objects.get)",
            "no credentials (the emulator)",
            "bucket `bk`",
        ] {
            assert!(msg.contains(part), "{part:?} missing from: {msg}");
        }
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "a refusal must not be retried"
        );
    }

    #[tokio::test]
    async fn https_uses_the_process_tls_provider() {
        // A plain-HTTP server behind an https:// address: the TLS handshake fails
        // (rather than the client panicking for want of a crypto provider).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        });
        let gcs = Gcs::connect(
            "bk",
            Some(&format!("https://{addr}")),
            Duration::from_secs(5),
            1000,
        )
        .await
        .unwrap();
        let policy = RetryPolicy {
            deadline: Duration::from_millis(50),
            ..quick()
        };
        let msg = gcs
            .read_all("exp/meta", policy)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("gs://bk/exp/meta") && msg.contains("TLS with https://127.0.0.1"),
            "{msg}"
        );
    }

    #[test]
    fn a_refused_certificate_is_found_inside_nested_io_errors_and_is_fatal() {
        // The shape the HTTP client reports (see `find_tls`).
        let nested = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        let found = find_tls(&nested, "https://storage.example").unwrap();
        assert!(!found.retryable);
        assert!(found.message.contains("SSL_CERT_FILE"), "{}", found.message);
        assert!(find_tls(&std::io::Error::other("reset"), "x").is_none());
    }

    #[tokio::test]
    async fn a_busy_server_is_retried_until_it_answers() {
        let (addr, count) = canned(vec![
            "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy",
            "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Length: 4\r\n\r\nslow",
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
        ])
        .await;
        let gcs = Gcs::connect("bk", Some(&addr), Duration::from_secs(5), 1000)
            .await
            .unwrap();
        assert_eq!(gcs.read_all("exp/meta", quick()).await.unwrap(), b"hello");
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn object_names_are_one_escaped_path_segment() {
        crate::tls::install_crypto_provider();
        let gcs = Gcs {
            http: reqwest::Client::builder().build().unwrap(),
            base: "http://127.0.0.1:4443/".into(),
            bucket: "bk".into(),
            credentials: None,
            credentials_source: String::new(),
            answer_timeout: Duration::from_secs(1),
            page_size: 10,
        };
        assert_eq!(
            gcs.media_url("exp/all_namespaces/kind_a b/output-0").as_str(),
            "http://127.0.0.1:4443/download/storage/v1/b/bk/o/exp%2Fall_namespaces%2Fkind_a%20b%2Foutput-0?alt=media"
        );
    }
}
