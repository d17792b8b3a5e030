//! A burst of dual writes, for the crash test (tests/dual.rs): `writers` tasks each set
//! documents `burst/<writer>-<n>` in `dual_read_firestore` mode until killed or `count`
//! writes are done, printing `ACK <path>` once each call has returned. The test kills
//! this process with SIGKILL mid-burst and checks that every acknowledged write (and
//! every committed one) reaches MongoDB after a restart drains the outbox.
//!
//! Usage: dual_burst PROJECT MONGODB_URI DATABASE COUNT WRITERS

use std::io::Write;

use fireshift::dual::{DualConfig, DualStore, Mode};
use gcloud_sdk::google::firestore::v1::{value::ValueType, Value};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One TLS crypto provider, chosen before any client is built (fireshift::tls).
    fireshift::tls::install_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 6,
        "usage: dual_burst PROJECT MONGODB_URI DATABASE COUNT WRITERS"
    );
    let count: usize = args[4].parse()?;
    let writers: usize = args[5].parse()?;
    let mut config = DualConfig::new(&args[1], &args[2], &args[3]);
    config.default_mode = Mode::DualReadFirestore;
    config.settings_poll = None;
    config.secondary_timeout = std::time::Duration::from_secs(30);
    let store = DualStore::connect(config).await?;
    let background = store.spawn_background();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..count / writers {
                let path = format!("burst/w{w}-{n:05}");
                let fields = [
                    ("writer", ValueType::IntegerValue(w as i64)),
                    ("n", ValueType::IntegerValue(n as i64)),
                    ("payload", ValueType::StringValue(format!("{w}:{n}"))),
                ]
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        Value {
                            value_type: Some(v),
                        },
                    )
                })
                .collect();
                store.set_doc(&path, fields).await?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "ACK {path}")?;
                out.flush()?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    background.shutdown().await;
    store.shutdown().await;
    println!("DONE");
    Ok(())
}
