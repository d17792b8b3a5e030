//! The export store on `gs://`, against the real Cloud Storage emulator (fake-gcs-server,
//! started by `scripts/services up`, addressed by `STORAGE_EMULATOR_HOST`): listing with
//! paging, whole reads, streams from an offset, missing objects and buckets, and
//! streams that survive a connection cut or stalled mid-body.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::gcs::{emulator, Bucket};
use fireshift::retry::RetryPolicy;
use fireshift::source::export::storage::{ExportStore, StoreOptions};
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BLOCK: usize = 32 * 1024;

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        deadline: Duration::from_secs(20),
    }
}

fn options(host: &str) -> StoreOptions {
    StoreOptions {
        emulator_host: Some(host.to_string()),
        ..StoreOptions::default()
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut data = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut data);
    data
}

async fn collect(
    mut rx: tokio::sync::mpsc::Receiver<fireshift::error::Result<(u64, Bytes)>>,
) -> fireshift::error::Result<Vec<(u64, Bytes)>> {
    let mut out = Vec::new();
    while let Some(item) = rx.recv().await {
        out.push(item?);
    }
    Ok(out)
}

/// Checks that `chunks` are `data[from..]` in consecutive chunks of `chunk` bytes.
fn assert_chunks(chunks: &[(u64, Bytes)], data: &[u8], from: usize, chunk: usize) {
    let mut at = from;
    for (i, (offset, bytes)) in chunks.iter().enumerate() {
        assert_eq!(*offset, at as u64, "chunk {i} starts at the wrong offset");
        let last = i + 1 == chunks.len();
        if !last {
            assert_eq!(
                bytes.len(),
                chunk,
                "chunk {i} at {offset} is not a whole chunk"
            );
        }
        assert!(
            bytes[..] == data[at..at + bytes.len()],
            "chunk {i} at {offset} differs from the upload"
        );
        at += bytes.len();
    }
    assert_eq!(
        at,
        data.len(),
        "the stream stopped at {at} of {} bytes",
        data.len()
    );
}

const OUTPUT: &str = "all_namespaces/all_kinds/output-0";

/// An export under `exp/`: a ~300 KiB output file of random bytes and small files, with
/// neighbours that share the prefix's text but are not under it.
async fn export_bucket(tag: &str) -> (Bucket, Vec<u8>) {
    let bucket = Bucket::new(tag).await;
    let data = random_bytes(300 * 1024 + 123);
    bucket
        .upload("exp/exp.overall_export_metadata", b"overall")
        .await;
    bucket
        .upload(
            "exp/all_namespaces/all_kinds/all_namespaces_all_kinds.export_metadata",
            b"kinds",
        )
        .await;
    bucket.upload(&format!("exp/{OUTPUT}"), &data).await;
    for i in 1..=4 {
        bucket
            .upload(
                &format!("exp/all_namespaces/all_kinds/output-{i}"),
                &vec![b'x'; i],
            )
            .await;
    }
    bucket
        .upload("exp2/exp2.overall_export_metadata", b"not this one")
        .await;
    bucket.upload("expansion", b"nor this").await;
    (bucket, data)
}

#[tokio::test]
async fn lists_exactly_the_files_under_the_prefix_across_pages() {
    let (bucket, data) = export_bucket("list").await;
    let host = emulator();
    let store = ExportStore::open_with(
        &format!("gs://{}/exp/exp.overall_export_metadata", bucket.name),
        quick_retry(),
        StoreOptions {
            // 8 files in pages of 3: three pages.
            list_page_size: 3,
            ..options(&host)
        },
    )
    .await
    .unwrap();
    assert_eq!(store.metadata_file(), Some("exp.overall_export_metadata"));
    let described = store.describe();
    assert!(
        described.contains(&format!("gs://{}/exp/", bucket.name)),
        "{described}"
    );
    assert!(described.contains("emulator"), "{described}");
    let listed = store.list().await.unwrap();
    let expected: Vec<(String, u64)> = vec![
        (
            "all_namespaces/all_kinds/all_namespaces_all_kinds.export_metadata".into(),
            5,
        ),
        (OUTPUT.into(), data.len() as u64),
        ("all_namespaces/all_kinds/output-1".into(), 1),
        ("all_namespaces/all_kinds/output-2".into(), 2),
        ("all_namespaces/all_kinds/output-3".into(), 3),
        ("all_namespaces/all_kinds/output-4".into(), 4),
        ("exp.overall_export_metadata".into(), 7),
    ];
    assert_eq!(listed, expected);

    // The bucket's root: everything, the neighbours included.
    let root = ExportStore::open_with(
        &format!("gs://{}", bucket.name),
        quick_retry(),
        options(&host),
    )
    .await
    .unwrap();
    let names: Vec<String> = root
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names.len(), 9, "{names:?}");
    assert!(names.contains(&"expansion".to_string()) && names.contains(&format!("exp/{OUTPUT}")));
}

#[tokio::test]
async fn reads_whole_files_and_streams_from_any_block() {
    let (bucket, data) = export_bucket("read").await;
    let store = ExportStore::open_with(
        &format!("gs://{}/exp/", bucket.name),
        quick_retry(),
        options(&emulator()),
    )
    .await
    .unwrap();
    assert_eq!(store.metadata_file(), None);
    assert_eq!(
        store.read_all("exp.overall_export_metadata").await.unwrap(),
        b"overall"
    );
    assert_eq!(store.read_all(OUTPUT).await.unwrap(), data);

    let whole = collect(store.stream(OUTPUT, 0, BLOCK, 2)).await.unwrap();
    assert_eq!(whole.len(), data.len().div_ceil(BLOCK));
    assert_chunks(&whole, &data, 0, BLOCK);

    let from = 3 * BLOCK;
    let tail = collect(store.stream(OUTPUT, from as u64, 4 * BLOCK, 1))
        .await
        .unwrap();
    assert_chunks(&tail, &data, from, 4 * BLOCK);

    // At the very end: nothing, and no error. Past it: an error naming the object.
    let end = collect(store.stream("all_namespaces/all_kinds/output-2", 2, BLOCK, 1))
        .await
        .unwrap();
    assert!(end.is_empty(), "{end:?}");
    let past = collect(store.stream("all_namespaces/all_kinds/output-2", BLOCK as u64, BLOCK, 1))
        .await
        .unwrap_err();
    let msg = past.to_string();
    assert!(
        msg.contains("output-2") && msg.contains("past the end"),
        "{msg}"
    );
    assert!(!past.is_retryable());
}

#[tokio::test]
async fn a_missing_object_or_bucket_is_a_fatal_error_naming_it() {
    let (bucket, _) = export_bucket("missing").await;
    let host = emulator();
    let store = ExportStore::open_with(
        &format!("gs://{}/exp", bucket.name),
        quick_retry(),
        options(&host),
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let e = store
        .read_all("all_namespaces/all_kinds/output-9")
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "gs://{}/exp/all_namespaces/all_kinds/output-9",
            bucket.name
        )) && msg.contains("404"),
        "{msg}"
    );
    assert!(!e.is_retryable());
    // Not retried until the deadline.
    assert!(started.elapsed() < Duration::from_secs(5));
    let e = collect(store.stream("nope", 0, BLOCK, 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("gs://{}/exp/nope", bucket.name)), "{e}");

    let gone = format!("{}-gone", bucket.name);
    let store = ExportStore::open_with(&format!("gs://{gone}/exp"), quick_retry(), options(&host))
        .await
        .unwrap();
    let e = store.list().await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&format!("no such bucket `{gone}`")), "{msg}");
    assert!(!e.is_retryable());
}

/// What the relay does to the first connection's answer after `after` bytes.
#[derive(Clone, Copy)]
enum Fault {
    Cut,
    Stall,
}

/// A loopback TCP relay to the emulator that breaks the answer of its first connection
/// after `after` bytes, then relays every later connection untouched.
struct FaultyRelay {
    addr: String,
    connections: Arc<AtomicUsize>,
}

impl FaultyRelay {
    async fn start(upstream: String, after: usize, fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let first = count.fetch_add(1, Ordering::SeqCst) == 0;
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let server = TcpStream::connect(&upstream).await.unwrap();
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    });
                    let limit = if first { after } else { usize::MAX };
                    let mut sent = 0usize;
                    let mut buf = vec![0u8; 8192];
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let n = n.min(limit - sent);
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        sent += n;
                        if sent == limit {
                            if let Fault::Stall = fault {
                                // Keep the connection open and silent for longer than
                                // the store's answer timeout.
                                tokio::time::sleep(Duration::from_secs(30)).await;
                            }
                            break;
                        }
                    }
                    up.abort();
                });
            }
        });
        Self { addr, connections }
    }
}

async fn survives(fault: Fault) {
    let (bucket, data) = export_bucket("fault").await;
    let upstream = emulator();
    let upstream = upstream.trim_start_matches("http://").to_string();
    // Past the answer's head and a few blocks into the body.
    let relay = FaultyRelay::start(upstream, 100_000, fault).await;
    let store = ExportStore::open_with(
        &format!("gs://{}/exp", bucket.name),
        quick_retry(),
        StoreOptions {
            answer_timeout: Duration::from_millis(800),
            ..options(&relay.addr)
        },
    )
    .await
    .unwrap();
    let from = BLOCK;
    let chunks = collect(store.stream(OUTPUT, from as u64, BLOCK, 2))
        .await
        .unwrap();
    assert_chunks(&chunks, &data, from, BLOCK);
    assert!(
        relay.connections.load(Ordering::SeqCst) >= 2,
        "the fault never happened: one connection carried the whole object"
    );
}

#[tokio::test]
async fn a_stream_cut_mid_body_resumes_and_delivers_every_byte_once() {
    survives(Fault::Cut).await;
}

#[tokio::test]
async fn a_stream_stalled_mid_body_resumes_after_the_answer_timeout() {
    survives(Fault::Stall).await;
}
