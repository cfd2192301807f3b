//! The HTTP listener: accepts connections and serves the API on each, bounded against clients
//! that open connections and never finish a request.
//!
//! - **Header timeout**: a request head must arrive within `header_read_timeout`, counted from
//!   the connection's start or from the end of the previous answer, so idle and half-sent
//!   connections close by themselves. (Bodies have their own timeout where they are read, in
//!   the ingest handler.)
//! - **Connection cap**: at most `max_connections` are open. At the cap, a new connection
//!   closes the oldest one that has no request in progress (idle, or still sending its head),
//!   so a flood of half-sent connections can neither exhaust file descriptors nor lock out
//!   `/healthz` and real clients. When every open connection has a request in progress,
//!   accepting waits for one to end; new connections wait in the kernel's backlog meanwhile,
//!   holding no descriptor of ours.
//! - **Shutdown**: accepting stops; connections with no request in progress close at once,
//!   the others finish their request and close. The drain ends at a deadline, after which the
//!   rest are closed, so a client holding a half-sent request cannot keep the process alive.
//! - **Accept errors**: a failed connection is skipped; running out of descriptors or memory
//!   is retried after a pause; anything else means the listener is broken and ends `serve`
//!   with the error (a process that can no longer accept must stop, not idle on).
//!
//! - **TLS** (when configured): the handshake runs in the connection's own task, bounded by
//!   `header_read_timeout` like a request head, so a client that never finishes it holds only
//!   its own connection (and is closed first at the cap, having no request in progress).
//!
//! This drives hyper's HTTP/1 connection directly instead of `axum::serve`, which has none of
//! the bounds above (no header timer, no cap, and a graceful shutdown that waits forever for a
//! connection that never sent a request).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// How long accepting pauses after the process ran out of file descriptors or memory.
const EXHAUSTED_PAUSE: Duration = Duration::from_millis(100);

/// The bounds of the HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Longest wait for a request head.
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl HttpLimits {
    /// Default `header_read_timeout`: longer than the agent's 10 s push interval, so its
    /// kept-alive connection is reused rather than closed as it sends.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default `max_connections`: well under a common 1024 open-file limit.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until `stop` resolves to the
/// deadline of the drain.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    tls: Option<TlsAcceptor>,
    stop: impl Future<Output = Instant>,
) -> std::io::Result<()> {
    let open = Arc::new(Open::default());
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut tasks = JoinSet::new();
    tokio::pin!(stop);
    let deadline = loop {
        let accepted = tokio::select! {
            deadline = &mut stop => break deadline,
            Some(ended) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(error) = ended {
                    // A request handler panicked: a bug, and only that connection is lost.
                    tracing::error!(%error, "an HTTP connection task failed");
                }
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => match classify(&error) {
                AcceptFailure::Connection => continue,
                AcceptFailure::Exhausted => {
                    tracing::warn!(%error, "cannot accept a connection; pausing (lower --max-connections or raise the open-file limit)");
                    tokio::select! {
                        deadline = &mut stop => break deadline,
                        () = tokio::time::sleep(EXHAUSTED_PAUSE) => continue,
                    }
                }
                AcceptFailure::Fatal => return Err(error),
            },
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !open.close_oldest_idle() {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "every connection has a request in progress; new ones wait"
                    );
                }
                tokio::select! {
                    deadline = &mut stop => break deadline,
                    permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                }
            }
        };
        let connection = Open::register(&open);
        tasks.spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            limits,
            tls.clone(),
            connection,
            permit,
        ));
    };
    drop(listener);
    open.close_all();
    let drained = tokio::time::timeout_at(deadline, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = tasks.len(),
            "shutdown deadline passed with requests in progress; closing their connections"
        );
        tasks.shutdown().await;
    }
    Ok(())
}

/// What an accept error means for the listener.
enum AcceptFailure {
    /// One connection failed before we got it: skip it.
    Connection,
    /// Out of file descriptors or memory: retry after a pause.
    Exhausted,
    /// The listener itself is broken.
    Fatal,
}

fn classify(error: &std::io::Error) -> AcceptFailure {
    #[cfg(unix)]
    match error.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            AcceptFailure::Exhausted
        }
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EFAULT) => AcceptFailure::Fatal,
        // Linux reports a pending network error of the new connection from accept (ECONNABORTED,
        // EPROTO, ENETDOWN, EHOSTUNREACH, ...): each concerns that connection only.
        _ => AcceptFailure::Connection,
    }
    #[cfg(not(unix))]
    match error.kind() {
        std::io::ErrorKind::InvalidInput => AcceptFailure::Fatal,
        std::io::ErrorKind::OutOfMemory => AcceptFailure::Exhausted,
        _ => AcceptFailure::Connection,
    }
}

/// Serves one connection (after its TLS handshake, with `tls`) until it ends, or until it is
/// told to close.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: HttpLimits,
    tls: Option<TlsAcceptor>,
    connection: Registered,
    _permit: OwnedSemaphorePermit,
) {
    let Some(acceptor) = tls else {
        return drive(stream, peer, router, limits, connection).await;
    };
    let handshake = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
    let stream = tokio::select! {
        outcome = handshake => match outcome {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%error, %peer, "TLS handshake failed");
                return;
            }
            Err(_) => return,
        },
        // Told to close before the handshake ended: nothing was asked yet.
        () = connection.close.notified() => return,
    };
    drive(stream, peer, router, limits, connection).await;
}

/// Serves HTTP/1 on one (plain or TLS) stream; see [`serve_connection`].
async fn drive<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    limits: HttpLimits,
    connection: Registered,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = connection.activity.clone();
    let api = TowerToHyperService::new(router);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        // What axum's `ConnectInfo<SocketAddr>` extractor reads (the OTLP receiver's fallback
        // instance name is the peer address).
        request.extensions_mut().insert(ConnectInfo(peer));
        let guard = Activity::enter(&activity);
        let answer = hyper::service::Service::call(&api, request);
        async move {
            let answer = answer.await;
            drop(guard);
            answer
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            outcome = conn.as_mut() => {
                if let Err(error) = outcome {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = connection.close.notified(), if !closing => {
                // Not one request reached the API yet: there is nothing to answer, so close
                // now (hyper's graceful shutdown would wait for a head that may never come).
                if !connection.activity.dispatched.load(Ordering::Acquire) {
                    return;
                }
                // Otherwise hyper closes an idle connection at once, and a busy one once its
                // answer is written.
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// What a connection is doing, as the API sees it.
#[derive(Debug, Default)]
struct Activity {
    /// A request head arrived and was handed to the API at least once.
    dispatched: AtomicBool,
    /// Requests handed to the API and not yet answered.
    in_flight: AtomicUsize,
}

/// Counts a request in progress while alive.
struct InFlight(Arc<Activity>);

impl Activity {
    fn enter(activity: &Arc<Activity>) -> InFlight {
        activity.dispatched.store(true, Ordering::Release);
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One open connection, as the listener tracks it.
struct Entry {
    activity: Arc<Activity>,
    close: Arc<Notify>,
    /// Already told to close (so it is not picked twice).
    closing: bool,
}

/// The open connections.
#[derive(Default)]
struct Open {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// The id of the next connection: ids grow with time, so the map is oldest first.
    next_id: u64,
    entries: BTreeMap<u64, Entry>,
}

/// A connection's registration; removes it from [`Open`] when dropped.
struct Registered {
    id: u64,
    open: Arc<Open>,
    activity: Arc<Activity>,
    close: Arc<Notify>,
}

impl Open {
    fn register(open: &Arc<Open>) -> Registered {
        let activity = Arc::new(Activity::default());
        let close = Arc::new(Notify::new());
        let mut table = open.table.lock().unwrap_or_else(PoisonError::into_inner);
        let id = table.next_id;
        table.next_id += 1;
        table.entries.insert(
            id,
            Entry {
                activity: activity.clone(),
                close: close.clone(),
                closing: false,
            },
        );
        Registered {
            id,
            open: open.clone(),
            activity,
            close,
        }
    }

    /// Tells the oldest connection without a request in progress to close; false when every
    /// connection has one.
    fn close_oldest_idle(&self) -> bool {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let idle = table
            .entries
            .values_mut()
            .find(|e| !e.closing && e.activity.in_flight.load(Ordering::Acquire) == 0);
        let Some(entry) = idle else {
            return false;
        };
        entry.closing = true;
        // `notify_one` keeps the wake-up if the task is not waiting yet.
        entry.close.notify_one();
        tracing::debug!("connection cap reached: closing the oldest idle connection");
        true
    }

    /// Tells every connection to close (see [`serve_connection`] for how each does).
    fn close_all(&self) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        for entry in table.entries.values_mut().filter(|e| !e.closing) {
            entry.closing = true;
            entry.close.notify_one();
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut table = self
            .open
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        table.entries.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_connection_without_a_request_is_closed() {
        let open = Arc::new(Open::default());
        let busy = Open::register(&open);
        let _in_flight = Activity::enter(&busy.activity);
        let idle_old = Open::register(&open);
        let idle_new = Open::register(&open);
        assert!(open.close_oldest_idle());
        // The busy connection is skipped; the older idle one is told, and only once.
        let told = |c: &Registered| {
            let close = c.close.notified();
            tokio::pin!(close);
            close.as_mut().enable()
        };
        assert!(!told(&busy));
        assert!(told(&idle_old));
        assert!(!told(&idle_new));
        assert!(open.close_oldest_idle());
        assert!(told(&idle_new));
        assert!(!open.close_oldest_idle(), "only a busy connection is left");
        drop((idle_old, idle_new));
        assert_eq!(open.table.lock().unwrap().entries.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn accept_errors_are_told_apart() {
        let kind = |errno| match classify(&std::io::Error::from_raw_os_error(errno)) {
            AcceptFailure::Connection => "connection",
            AcceptFailure::Exhausted => "exhausted",
            AcceptFailure::Fatal => "fatal",
        };
        assert_eq!(kind(libc::ECONNABORTED), "connection");
        assert_eq!(kind(libc::EPROTO), "connection");
        assert_eq!(kind(libc::EMFILE), "exhausted");
        assert_eq!(kind(libc::ENFILE), "exhausted");
        assert_eq!(kind(libc::EINVAL), "fatal");
        assert_eq!(kind(libc::EBADF), "fatal");
    }
}
