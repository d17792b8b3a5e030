//! One Firestore call and the draining of its response stream, written once: a query's
//! documents, an aggregation count, a batch of documents by name. Each is one attempt;
//! callers wrap it in their retry policy (what to retry depends on what they do).

use std::collections::HashMap;

use gcloud_sdk::google::firestore::v1::{
    batch_get_documents_response, run_aggregation_query_request, run_query_request,
    structured_aggregation_query, value::ValueType, BatchGetDocumentsRequest, Document,
    RunAggregationQueryRequest, RunQueryRequest, StructuredAggregationQuery, StructuredQuery,
    Value,
};
use gcloud_sdk::prost_types::Timestamp;

use super::FirestoreConnection;
use crate::error::Result;

/// Documents by name (`None`: absent) and the latest read time the server reported.
pub type Fetched = (HashMap<String, Option<Document>>, Option<Timestamp>);

impl FirestoreConnection {
    /// Every document `query` returns under `parent` (the database root or a document
    /// name), in order. For bounded queries (with a limit, or over small collections):
    /// the documents are collected in memory.
    pub async fn query_documents(
        &self,
        parent: &str,
        query: StructuredQuery,
    ) -> Result<Vec<Document>> {
        let req = RunQueryRequest {
            parent: parent.to_string(),
            query_type: Some(run_query_request::QueryType::StructuredQuery(query)),
            ..Default::default()
        };
        let mut stream = self
            .answer("RunQuery", self.client().run_query(req))
            .await?
            .into_inner();
        let mut docs = Vec::new();
        while let Some(resp) = self.answer("RunQuery", stream.message()).await? {
            if let Some(d) = resp.document {
                docs.push(d);
            }
        }
        Ok(docs)
    }

    /// How many documents `query` matches under `parent`, with an aggregation: no
    /// document is read (billed one read per 1000 matched).
    pub async fn count(&self, parent: &str, query: StructuredQuery) -> Result<u64> {
        let op = "RunAggregationQuery";
        let mut stream = self
            .answer(
                op,
                self.client()
                    .run_aggregation_query(count_request(parent, query)),
            )
            .await?
            .into_inner();
        let mut n = 0u64;
        while let Some(resp) = self.answer(op, stream.message()).await? {
            if let Some(Value {
                value_type: Some(ValueType::IntegerValue(c)),
            }) = resp
                .result
                .as_ref()
                .and_then(|r| r.aggregate_fields.get("n"))
            {
                n = *c as u64;
            }
        }
        Ok(n)
    }

    /// The documents named (full names) in `database` (`projects/P/databases/D`), with
    /// one `BatchGetDocuments` call.
    pub async fn get_documents(&self, database: &str, names: &[String]) -> Result<Fetched> {
        let mut found = HashMap::with_capacity(names.len());
        let mut read_time: Option<Timestamp> = None;
        if names.is_empty() {
            return Ok((found, read_time));
        }
        let req = BatchGetDocumentsRequest {
            database: database.to_string(),
            documents: names.to_vec(),
            ..Default::default()
        };
        let op = "BatchGetDocuments";
        let mut stream = self
            .answer(op, self.client().batch_get_documents(req))
            .await?
            .into_inner();
        while let Some(resp) = self.answer(op, stream.message()).await? {
            if let Some(t) = resp.read_time {
                if read_time
                    .as_ref()
                    .is_none_or(|r| (t.seconds, t.nanos) > (r.seconds, r.nanos))
                {
                    read_time = Some(t);
                }
            }
            match resp.result {
                Some(batch_get_documents_response::Result::Found(d)) => {
                    found.insert(d.name.clone(), Some(d));
                }
                Some(batch_get_documents_response::Result::Missing(n)) => {
                    found.insert(n, None);
                }
                None => {}
            }
        }
        Ok((found, read_time))
    }
}

/// A `RunAggregationQuery` that counts what `query` matches under `parent`; the count
/// comes back under the alias `n`.
pub fn count_request(parent: &str, query: StructuredQuery) -> RunAggregationQueryRequest {
    RunAggregationQueryRequest {
        parent: parent.to_string(),
        query_type: Some(
            run_aggregation_query_request::QueryType::StructuredAggregationQuery(
                StructuredAggregationQuery {
                    aggregations: vec![structured_aggregation_query::Aggregation {
                        alias: "n".into(),
                        operator: Some(structured_aggregation_query::aggregation::Operator::Count(
                            Default::default(),
                        )),
                    }],
                    query_type: Some(structured_aggregation_query::QueryType::StructuredQuery(
                        query,
                    )),
                },
            ),
        ),
        ..Default::default()
    }
}
