//! A TCP proxy in front of the CQL node that a test can cut, stall and restore: a store outage
//! (or a node that holds every request unanswered) without stopping the node other tests share.
//!
//! The driver learns node addresses from `system.local` but keeps the port it connected to, so
//! every connection of a session opened through the proxy goes through the proxy.
//!
//! The one fault proxy of the repository: the benchmarks include this file too
//! (`benches/support/mod.rs`), so it uses nothing but tokio.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy; dropped, it stops.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    stalled: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Proxies a fresh local port to `upstream`.
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free local port for the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let (up, up_rx) = watch::channel(true);
        let (stalled, stalled_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if !*up_rx.borrow() {
                    drop(client);
                    continue;
                }
                let mut up_rx = up_rx.clone();
                let stalled_rx = stalled_rx.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    // Small CQL frames must not wait for Nagle: the benchmarks time through this.
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::select! {
                        () = pipe(client_read, server_write, stalled_rx.clone()) => {}
                        () = pipe(server_read, client_write, stalled_rx) => {}
                        _ = up_rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self {
            addr,
            up,
            stalled,
            task,
        }
    }

    /// Keeps connections open but forwards nothing (bytes wait) until [`Proxy::restore`].
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Lets connections through again (and ends a stall).
    pub fn restore(&self) {
        self.stalled.send_replace(false);
        self.up.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// Copies `from` to `to` until either side closes; while stalled, what is read waits.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.wait_for(|stalled| !*stalled).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
