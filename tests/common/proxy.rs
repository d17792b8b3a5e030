//! A TCP proxy the tests put in front of a real server to make it fail the ways
//! servers fail: down (connections closed and refused) or hanging (requests swallowed).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// Forwards TCP to `upstream`. `cut` closes every connection and refuses new ones (the
/// server looks down); `swallow_requests` drops every byte clients send on open and new
/// connections (the server hangs: it accepted, it never answers).
pub struct TcpProxy {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    blackhole: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl TcpProxy {
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let blackhole = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (d, c, bh) = (down.clone(), conns.clone(), blackhole.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let a = tokio::spawn(pipe(cr, sw, Some(bh.clone())));
                let b = tokio::spawn(pipe(sr, cw, None));
                let mut g = c.lock().unwrap();
                g.push(a.abort_handle());
                g.push(b.abort_handle());
            }
        })
        .abort_handle();
        Self {
            addr,
            down,
            blackhole,
            conns,
            accept,
        }
    }

    /// A proxy to the shared MongoDB server (`MONGODB_URI`).
    pub async fn to_mongodb() -> Self {
        let upstream = super::mongodb_uri()
            .trim_start_matches("mongodb://")
            .split(['/', '?'])
            .next()
            .unwrap()
            .to_string();
        Self::start(upstream).await
    }

    /// A MongoDB connection string through the proxy.
    pub fn mongodb_uri(&self) -> String {
        format!("mongodb://{}/?directConnection=true", self.addr)
    }

    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    pub fn swallow_requests(&self, on: bool) {
        self.blackhole.store(on, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    blackhole: Option<Arc<AtomicBool>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if blackhole.as_ref().is_some_and(|b| b.load(Ordering::SeqCst)) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
