//! Bulk writes of whole documents: `BatchWrite` requests of at most [`BATCH_SIZE`]
//! documents and about [`BATCH_BYTES`] encoded bytes, a bounded number in flight.
//!
//! Every write is a full-document update, so sending one twice is harmless: a transient
//! failure of the call, or of single writes within it, is retried with backoff (only the
//! writes that failed are sent again), within the caller's [`RetryPolicy`].

use futures::{StreamExt, TryStreamExt};
use gcloud_sdk::google::firestore::v1::{write, BatchWriteRequest, Document, Write};
use gcloud_sdk::prost::Message;
use std::time::Duration;

use super::FirestoreConnection;
use crate::error::{is_retryable_code, Error, Result};
use crate::retry::RetryPolicy;

/// Writes per `BatchWrite` request (the API's maximum).
pub const BATCH_SIZE: usize = 500;
/// Encoded bytes per request, well under the API's 10 MiB request limit.
pub const BATCH_BYTES: usize = 8 << 20;
/// Deadline of one `BatchWrite` request (sent to the server as `grpc-timeout`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Writes `docs` (full documents; their names say where) into `database`
/// (`projects/P/databases/D`), at most `concurrency` requests in flight. Returns the
/// number of documents written. `docs` is consumed lazily: memory stays bounded by
/// `concurrency` batches whatever the input size.
pub async fn write_documents(
    conn: &FirestoreConnection,
    database: &str,
    docs: impl Iterator<Item = Document>,
    concurrency: usize,
    retry: RetryPolicy,
) -> Result<usize> {
    futures::stream::iter(Batches {
        docs,
        pending: None,
    })
    .map(|batch| write_batch(conn, database, batch, retry))
    .buffer_unordered(concurrency.max(1))
    .try_fold(0usize, |total, n| async move { Ok(total + n) })
    .await
}

/// Groups documents into `Write`s of at most [`BATCH_SIZE`] documents and about
/// [`BATCH_BYTES`] encoded bytes.
struct Batches<I> {
    docs: I,
    pending: Option<(Write, usize)>,
}

impl<I: Iterator<Item = Document>> Iterator for Batches<I> {
    type Item = Vec<Write>;

    fn next(&mut self) -> Option<Vec<Write>> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        loop {
            let (w, len) = match self.pending.take() {
                Some(p) => p,
                None => match self.docs.next() {
                    Some(doc) => {
                        let w = Write {
                            operation: Some(write::Operation::Update(doc)),
                            ..Default::default()
                        };
                        let len = w.encoded_len();
                        (w, len)
                    }
                    None => break,
                },
            };
            if !batch.is_empty() && bytes + len > BATCH_BYTES {
                self.pending = Some((w, len));
                break;
            }
            bytes += len;
            batch.push(w);
            if batch.len() == BATCH_SIZE {
                break;
            }
        }
        (!batch.is_empty()).then_some(batch)
    }
}

fn write_name(w: &Write) -> &str {
    match &w.operation {
        Some(write::Operation::Update(d)) => &d.name,
        _ => "",
    }
}

async fn write_batch(
    conn: &FirestoreConnection,
    database: &str,
    writes: Vec<Write>,
    retry: RetryPolicy,
) -> Result<usize> {
    let total = writes.len();
    let mut pending = writes;
    let mut backoff = retry.backoff();
    loop {
        let what = format!(
            "BatchWrite of {} documents (first: {})",
            pending.len(),
            write_name(&pending[0])
        );
        let mut request = tonic::Request::new(BatchWriteRequest {
            database: database.to_string(),
            writes: pending.clone(),
            ..Default::default()
        });
        request.set_timeout(REQUEST_TIMEOUT);
        let response = match conn
            .answer("BatchWrite", conn.client().batch_write(request))
            .await
        {
            Ok(response) => response.into_inner(),
            Err(e) => {
                backoff.wait(e, &what).await?;
                continue;
            }
        };
        if response.status.len() != pending.len() {
            return Err(Error::Firestore {
                operation: "BatchWrite",
                endpoint: conn.endpoint().to_string(),
                code: tonic::Code::Internal,
                message: format!(
                    "{} statuses for {} writes (first: {})",
                    response.status.len(),
                    pending.len(),
                    write_name(&pending[0])
                ),
            });
        }
        let mut again = Vec::new();
        let mut last = None;
        for (w, status) in pending.into_iter().zip(response.status) {
            let code = tonic::Code::from_i32(status.code);
            if code == tonic::Code::Ok {
                continue;
            }
            let e = Error::Firestore {
                operation: "BatchWrite",
                endpoint: conn.endpoint().to_string(),
                code,
                message: format!("document {}: {}", write_name(&w), status.message),
            };
            if !is_retryable_code(code) {
                return Err(e);
            }
            again.push(w);
            last = Some(e);
        }
        match last {
            None => return Ok(total),
            Some(e) => {
                pending = again;
                backoff.wait(e, &what).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(i: usize, bytes: usize) -> Document {
        let mut fields = std::collections::HashMap::new();
        fields.insert(
            "blob".to_string(),
            gcloud_sdk::google::firestore::v1::Value {
                value_type: Some(
                    gcloud_sdk::google::firestore::v1::value::ValueType::BytesValue(vec![0; bytes]),
                ),
            },
        );
        Document {
            name: format!("projects/p/databases/(default)/documents/c/{i}"),
            fields,
            ..Default::default()
        }
    }

    #[test]
    fn batches_respect_the_count_and_byte_limits_and_keep_every_document() {
        let small: Vec<Vec<Write>> = Batches {
            docs: (0..1234).map(|i| doc(i, 10)),
            pending: None,
        }
        .collect();
        assert_eq!(
            small.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![500, 500, 234]
        );
        assert_eq!(
            write_name(&small[0][0]),
            "projects/p/databases/(default)/documents/c/0"
        );
        // 1 MiB documents: about 8 to a batch, none lost at the boundaries.
        let big: Vec<Vec<Write>> = Batches {
            docs: (0..20).map(|i| doc(i, 1 << 20)),
            pending: None,
        }
        .collect();
        assert!(big
            .iter()
            .all(|b| b.iter().map(Message::encoded_len).sum::<usize>() <= BATCH_BYTES));
        assert_eq!(big.iter().map(Vec::len).sum::<usize>(), 20);
    }
}
