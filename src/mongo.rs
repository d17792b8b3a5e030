//! Connecting to MongoDB: the one place that turns an operator's connection string (and
//! CA file) into driver options, so the migrate sink, status, verify, indexes and the
//! dual-write store all reach MongoDB, Atlas or a TLS front the same way.
//!
//! Any connection string the driver accepts works (`mongodb+srv://`, `tls=true`,
//! `tlsCAFile=…`); `--mongodb-ca-file` adds a CA without editing the URI (handy when the
//! URI comes from a secret). TLS uses the process's one rustls provider
//! ([`crate::tls`]). A client must be shut down ([`shutdown`]) before the runtime ends:
//! dropping the last handle otherwise races the driver's own clean-up tasks.

use std::path::{Path, PathBuf};

use mongodb::bson::{doc, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, Tls, TlsOptions};
use mongodb::{Client, Database};

use crate::error::{Error, Result};
use crate::redact::redact_uri;

/// Where MongoDB is: a connection string and, optionally, a CA file to trust.
#[derive(Debug, Clone, Default)]
pub struct MongoEndpoint {
    /// Any connection string the driver accepts. Never printed unredacted.
    pub uri: String,
    /// PEM file of CA certificates for TLS (`--mongodb-ca-file`), as `tlsCAFile=`
    /// in the URI would give.
    pub ca_file: Option<PathBuf>,
}

impl MongoEndpoint {
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            ca_file: None,
        }
    }
}

/// Parses `uri` into driver options for `app_name`, with `ca_file` trusted for TLS.
/// Returns the options and the connection string redacted for messages. Errors name
/// `target` (the database the caller is about to use).
pub async fn client_options(
    uri: &str,
    ca_file: Option<&Path>,
    app_name: &str,
    target: &str,
) -> Result<(ClientOptions, String)> {
    crate::tls::install_crypto_provider();
    let redacted = redact_uri(uri);
    let config_error = |message: String| Error::Mongo {
        operation: "parse connection string",
        target: target.to_string(),
        uri: redacted.clone(),
        message,
        retryable: false,
    };
    if uri
        .to_ascii_lowercase()
        .contains("authmechanism=mongodb-aws")
    {
        return Err(config_error(
            "authMechanism=MONGODB-AWS is not supported by this build (it would bring the AWS \
             SDK and a second TLS stack): use SCRAM (user:password in the URI) or X.509 \
             (tlsCertificateKeyFile, with tlsCertificateKeyFilePassword if the key is encrypted)"
                .into(),
        ));
    }
    let mut options = ClientOptions::parse(uri)
        .await
        .map_err(|e| config_error(e.to_string()))?;
    options.app_name.get_or_insert_with(|| app_name.to_string());
    if let Some(path) = ca_file {
        // Read now so that a wrong path is reported before any connection attempt.
        crate::tls::read_ca_file(path, "--mongodb-ca-file")?;
        options.tls = match options.tls.take() {
            Some(Tls::Disabled) => {
                return Err(config_error(
                    "--mongodb-ca-file needs TLS, but the connection string sets tls=false".into(),
                ))
            }
            Some(Tls::Enabled(mut tls)) => {
                tls.ca_file_path = Some(path.to_path_buf());
                Some(Tls::Enabled(tls))
            }
            None => Some(Tls::Enabled(
                TlsOptions::builder()
                    .ca_file_path(path.to_path_buf())
                    .build(),
            )),
        };
    }
    Ok((options, redacted))
}

/// Builds a client from [`client_options`].
pub fn client(options: ClientOptions, redacted: &str, target: &str) -> Result<Client> {
    Client::with_options(options).map_err(|e| Error::Mongo {
        operation: "connect",
        target: target.to_string(),
        uri: redacted.to_string(),
        message: e.to_string(),
        retryable: false,
    })
}

/// How long one command may wait for the server's answer: the driver has no such
/// limit of its own, and a server that took a command and never answers must not hold
/// a run forever.
pub const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Shuts a client down: ends its sessions on the server and stops its background
/// tasks. Call it once the client's work is done and before the runtime ends; clones
/// share the client, so one call covers them all. It does not wait for cursors or
/// sessions still held elsewhere (a task that failed mid-run may hold one).
pub async fn shutdown(client: Client) {
    // Bounded as every wait is: a driver that cannot finish its clean-up (a connection
    // stuck mid-command) must not keep a finished process from exiting.
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, client.shutdown().immediate(true))
        .await
        .is_err()
    {
        tracing::warn!(
            "the MongoDB client did not shut down within {}s; exiting anyway",
            SHUTDOWN_TIMEOUT.as_secs()
        );
    }
}

/// How long [`shutdown`] waits for the driver's clean-up.
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Server error codes that describe a passing condition (a failover, a shutdown, a
/// concurrent upsert race on the same `_id`).
pub const RETRYABLE_CODES: &[i32] = &[
    6, 7, 89, 91, 189, 262, 9001, 10107, 11000, 11600, 11602, 13435, 13436, 64,
];

/// The server's code for a write that breaks a unique index.
pub const DUPLICATE_KEY: i32 = 11000;

/// Whether a duplicate-key write error (code 11000, an entry of a reply's
/// `writeErrors`) is on `_id`: two upserts of one new `_id` racing, which a retry
/// settles. On any other unique index it is the document itself that clashes with
/// another one, and retrying changes nothing. The error's `keyPattern` decides when the
/// server sends one; else its message's `index: NAME`, and a message that names no
/// index counts as a race (the retry deadline still ends it).
pub fn duplicate_key_on_id(write_error: &Document) -> bool {
    if let Ok(k) = write_error.get_document("keyPattern") {
        return k.keys().eq(["_id"]);
    }
    let message = write_error.get_str("errmsg").unwrap_or_default();
    match message.split_once(" index: ") {
        Some((_, rest)) => rest.split_whitespace().next() == Some("_id_"),
        None => true,
    }
}

/// Whether a driver error is a duplicate key (an insert of an `_id` that exists: the
/// callers' "someone else was first").
pub fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// A collection's index specifications as `listIndexes` returns them (its first batch:
/// a collection has at most 64 indexes, far under one batch); none when the collection
/// does not exist (NamespaceNotFound).
pub async fn list_indexes(
    db: &Database,
    collection: &str,
) -> std::result::Result<Vec<Document>, mongodb::error::Error> {
    match db.run_command(doc! { "listIndexes": collection }).await {
        Ok(reply) => Ok(reply
            .get_document("cursor")
            .and_then(|c| c.get_array("firstBatch"))
            .map(|a| a.iter().filter_map(|b| b.as_document().cloned()).collect())
            .unwrap_or_default()),
        Err(e) if matches!(e.kind.as_ref(), ErrorKind::Command(c) if c.code == 26) => {
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// Whether a driver error describes a passing condition: network faults, pool resets,
/// no reachable server, or a server error labelled or coded as transient.
pub fn is_retryable(e: &mongodb::error::Error) -> bool {
    // Waiting cannot make a refused certificate trusted.
    if crate::tls::is_certificate_failure_text(&e.to_string()) {
        return false;
    }
    if e.contains_label("RetryableWriteError") || e.contains_label("TransientTransactionError") {
        return true;
    }
    match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. } => true,
        ErrorKind::Command(c) => RETRYABLE_CODES.contains(&c.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => true,
        _ => false,
    }
}

/// A driver error as the library's error, classified, with its context: the operation,
/// the database or `database.collection`, and the (redacted) connection string.
pub fn error(
    operation: &'static str,
    target: impl Into<String>,
    uri: &str,
    e: mongodb::error::Error,
) -> Error {
    Error::Mongo {
        operation,
        target: target.into(),
        uri: uri.to_string(),
        retryable: is_retryable(&e),
        message: describe(&e),
    }
}

/// What an operator should read for a driver error: the driver's text, with a refused
/// server certificate stated first (the driver folds it into its server-selection
/// report).
pub fn describe(e: &mongodb::error::Error) -> String {
    let text = e.to_string();
    if crate::tls::is_certificate_failure_text(&text) {
        format!(
            "the server's TLS certificate was refused (an untrusted CA: add it with tlsCAFile=… \
             in the URI or --mongodb-ca-file; or a host name the certificate does not list): {text}"
        )
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_duplicate_key_is_a_race_only_on_the_id_index() {
        use super::duplicate_key_on_id;
        use mongodb::bson::{doc, Document};
        let on = |index: &str| {
            format!("E11000 duplicate key error collection: app.users index: {index} dup key: {{ x: 1 }}")
        };
        let error = |message: &str| doc! { "index": 0, "code": 11000, "errmsg": message };
        let with_pattern = |pattern: Document, message: &str| {
            let mut e = error(message);
            e.insert("keyPattern", pattern);
            e
        };
        assert!(duplicate_key_on_id(&error(&on("_id_"))));
        assert!(!duplicate_key_on_id(&error(&on("email_1"))));
        assert!(!duplicate_key_on_id(&error(&on("_id_1_tenant_1"))));
        // A server that names no index: a race, bounded by the retry deadline.
        assert!(duplicate_key_on_id(&error("E11000 duplicate key error")));
        assert!(duplicate_key_on_id(&with_pattern(
            doc! { "_id": 1 },
            &on("email_1")
        )));
        assert!(!duplicate_key_on_id(&with_pattern(
            doc! { "email": 1 },
            &on("_id_")
        )));
        assert!(!duplicate_key_on_id(&with_pattern(
            doc! { "_id": 1, "email": 1 },
            ""
        )));
    }

    use super::*;

    #[tokio::test]
    async fn a_ca_file_turns_tls_on_and_conflicts_with_tls_false() {
        let dir = std::env::temp_dir().join(format!("fireshift-mongo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        // Any certificate will do for the option check (no connection is made).
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let (options, _) = client_options("mongodb://u:pw@h:1/", Some(&ca), "t", "db")
            .await
            .unwrap();
        match options.tls {
            Some(Tls::Enabled(t)) => assert_eq!(t.ca_file_path.as_deref(), Some(ca.as_path())),
            other => panic!("TLS not enabled: {other:?}"),
        }
        let err = client_options("mongodb://u:pw@h:1/?tls=false", Some(&ca), "t", "db")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls=false") && !err.contains("pw@"), "{err}");
    }
}
