//! Opening a Listen stream: one query target per collection group
//! (`{collectionId: G, allDescendants: true}` under the database root, the shape public
//! clients use; a kindless target is refused in production), each resumed from its
//! token, or from a time, or from nothing (a full resend of the group).

use gcloud_sdk::google::firestore::v1::listen_request::TargetChange as AddOrRemove;
use gcloud_sdk::google::firestore::v1::target::{
    query_target, QueryTarget, ResumeType, TargetType,
};
use gcloud_sdk::google::firestore::v1::{
    structured_query, ListenRequest, ListenResponse, StructuredQuery, Target,
};
use gcloud_sdk::prost_types::Timestamp;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::firestore::FirestoreConnection;

/// Where a target starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// After the state a token stands for (a previous stream's).
    Token(Vec<u8>),
    /// After a time within the version retention (the copy's start).
    Time(Timestamp),
    /// From nothing: the server sends the whole group first (billed as a full read).
    Full,
}

/// One collection group to follow.
#[derive(Debug, Clone)]
pub struct ListenTarget {
    pub id: i32,
    pub group: String,
    pub resume: Resume,
}

/// An open stream. Dropping it closes the stream.
pub struct ListenStream {
    responses: tonic::Streaming<ListenResponse>,
    /// Keeps the request side open: the server ends a stream whose requests ended.
    _requests: mpsc::Sender<ListenRequest>,
}

fn target(root: &str, t: &ListenTarget) -> Target {
    Target {
        target_id: t.id,
        once: false,
        expected_count: None,
        target_type: Some(TargetType::Query(QueryTarget {
            parent: root.to_string(),
            query_type: Some(query_target::QueryType::StructuredQuery(StructuredQuery {
                from: vec![structured_query::CollectionSelector {
                    collection_id: t.group.clone(),
                    all_descendants: true,
                }],
                ..Default::default()
            })),
        })),
        resume_type: match &t.resume {
            Resume::Token(tok) => Some(ResumeType::ResumeToken(tok.clone())),
            Resume::Time(ts) => Some(ResumeType::ReadTime(*ts)),
            Resume::Full => None,
        },
    }
}

/// Opens a stream over `targets` of the database whose documents root is `root`.
pub async fn open(
    conn: &FirestoreConnection,
    root: &str,
    targets: &[ListenTarget],
) -> Result<ListenStream> {
    let database = root.trim_end_matches("/documents").to_string();
    let (tx, rx) = mpsc::channel::<ListenRequest>(targets.len().max(1) + 1);
    for t in targets {
        let req = ListenRequest {
            database: database.clone(),
            target_change: Some(AddOrRemove::AddTarget(target(root, t))),
            ..Default::default()
        };
        // The channel holds every target: this cannot wait.
        let _ = tx.try_send(req);
    }
    // The request side stays open while the sender (kept in the stream) lives.
    let requests =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let mut request = tonic::Request::new(requests);
    // The routing headers Google's clients send; the emulator sends no document
    // without the resource prefix.
    if let Ok(v) = database.parse() {
        request
            .metadata_mut()
            .insert("google-cloud-resource-prefix", v);
    }
    if let Ok(v) = format!("database={database}").parse() {
        request.metadata_mut().insert("x-goog-request-params", v);
    }
    let responses = conn
        .answer("Listen", conn.client().listen(request))
        .await?
        .into_inner();
    Ok(ListenStream {
        responses,
        _requests: tx,
    })
}

impl ListenStream {
    /// The next response; `Ok(None)` when the server ended the stream. No answer
    /// timeout: a quiet database sends nothing for long stretches.
    pub async fn next(&mut self, conn: &FirestoreConnection) -> Result<Option<ListenResponse>> {
        self.responses
            .message()
            .await
            .map_err(|s| conn.status_error("Listen", s))
    }
}
