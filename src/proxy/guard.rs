//! The device side of every connection, in front of the proxy: how many connections there may be
//! (in all and per client), how long a device may take to send its first bytes and each
//! request's header, how long a kept-alive connection may idle, and how many requests it may
//! carry. Pingora sets none of these by itself (no header-read timeout, infinite keep-alive after
//! the first request), so a device that opens sockets and sends nothing, or a byte a minute,
//! would otherwise hold them until the router runs out of file descriptors.
//!
//! Three layers: `Handshakes` sees a TLS connection before its handshake (the caps, and the
//! ClientHello within the header timeout: Pingora itself waits 60 s for a handshake); `Edge` sees
//! each connection once it is ready (the caps, the first-bytes deadline) and hands it to
//! `Requests`, which sees each request on it (the header deadline, the keep-alive timeout) and
//! hands it to Pingora's proxy. A TLS connection's slot is taken by `Handshakes` and handed to
//! `Edge`, so it counts once from accept to close.

use super::Gateway;
use crate::config::Limits;
use crate::metrics;
use async_trait::async_trait;
use pingora_core::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora_core::listeners::PreTlsProcess;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::{SslDigest, TlsRef};
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora_core::server::ShutdownWatch;
use pingora_proxy::HttpProxy;
use std::cell::Cell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

tokio::task_local! {
    /// Set once the current request's header has been read (by `mark_header_read`).
    static HEADER_READ: Cell<bool>;
}

/// Called by the proxy as soon as a request's header is read: its header deadline is met.
pub(crate) fn mark_header_read() {
    let _ = HEADER_READ.try_with(|h| h.set(true));
}

/// A log line at most once a minute per kind of event, with how many happened since.
pub(crate) struct Sparse {
    last: Mutex<Option<Instant>>,
    since: AtomicUsize,
}

impl Sparse {
    pub(crate) const fn new() -> Sparse {
        Sparse {
            last: Mutex::new(None),
            since: AtomicUsize::new(0),
        }
    }

    /// Counts one event; returns how many to report when a line is due.
    pub(crate) fn due(&self) -> Option<usize> {
        let n = self.since.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last.lock().ok()?;
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
            return None;
        }
        *last = Some(Instant::now());
        self.since.store(0, Ordering::Relaxed);
        Some(n)
    }
}

static REFUSED_LOG: Sparse = Sparse::new();
static TIMEOUT_LOG: Sparse = Sparse::new();

/// Open connections, in all and per client.
#[derive(Default)]
struct Slots {
    total: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in `Slots`, given back when it closes.
struct Slot {
    slots: Arc<Slots>,
    client: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.total.fetch_sub(1, Ordering::AcqRel);
        metrics::CONNECTIONS_OPEN.dec();
        if let Some(ip) = self.client {
            if let Ok(mut m) = self.slots.per_client.lock() {
                if let Some(n) = m.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        m.remove(&ip);
                    }
                }
            }
        }
    }
}

impl Slots {
    /// A slot for a connection from `client`, or the cap it would pass.
    fn take(
        self: &Arc<Self>,
        client: Option<IpAddr>,
        limits: &Limits,
    ) -> Result<Slot, &'static str> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err("max_connections");
        }
        if let Some(ip) = client {
            let mut m = self
                .per_client
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let n = m.entry(ip).or_default();
            if *n >= limits.max_connections_per_client {
                drop(m);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err("max_connections_per_client");
            }
            *n += 1;
        }
        metrics::CONNECTIONS_OPEN.inc();
        Ok(Slot {
            slots: self.clone(),
            client,
        })
    }
}

/// The client's address, with IPv4-mapped IPv6 addresses as plain IPv4.
pub(crate) fn client_ip(digest: Option<&SocketDigest>) -> Option<IpAddr> {
    digest
        .and_then(|d| d.peer_addr())
        .and_then(|a| a.as_inet())
        .map(|a| crate::config::types::canonical_ip(a.ip()))
}

/// Each connection: the caps, then the first bytes within the header timeout.
pub(crate) struct Edge {
    requests: Arc<Requests>,
    slots: Arc<Slots>,
    handshakes: Arc<Handshakes>,
}

/// A slot held for a handshake that has not reached `Edge` (it failed, or is still going) is
/// given back after this, or the header timeout if shorter: the ClientHello is in by then and a
/// real handshake needs one more round trip. A handshake that finishes later still takes a fresh
/// slot in `Edge` (Pingora itself gives up after 60 s, `services/listening.rs`).
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(5);

/// TLS connections between accept and the end of their handshake, with the slot each holds.
pub(crate) struct Handshakes {
    slots: Arc<Slots>,
    limits: Limits,
    /// By peer address: a generation (so a late watchdog never frees a newer connection's
    /// slot) and the slot.
    pending: Arc<Mutex<HashMap<SocketAddr, (u64, Slot)>>>,
    generation: std::sync::atomic::AtomicU64,
}

type Pending = Mutex<HashMap<SocketAddr, (u64, Slot)>>;

impl Handshakes {
    /// The slot taken for this peer before its handshake, if any.
    fn claim(&self, peer: Option<SocketAddr>) -> Option<Slot> {
        let peer = peer?;
        let mut pending = self.pending.lock().ok()?;
        pending.remove(&peer).map(|(_, slot)| slot)
    }
}

/// Refuses a connection past a cap: counted, and logged at most once a minute.
fn refuse(cap: &'static str, client: Option<IpAddr>) {
    metrics::CONNECTIONS_REFUSED.with_label_values(&[cap]).inc();
    if let Some(n) = REFUSED_LOG.due() {
        log::warn!(
            "connections refused cap={cap} client={} refused_since_last_line={n} (limits.{cap})",
            client.map_or_else(|| "-".into(), |ip| ip.to_string())
        );
    }
}

#[async_trait]
impl PreTlsProcess for Handshakes {
    async fn process(&self, stream: &mut L4Stream) -> pingora_core::Result<()> {
        use pingora_core::{Error, ErrorType};
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied());
        let client = peer.map(|a| crate::config::types::canonical_ip(a.ip()));
        let slot = match self.slots.take(client, &self.limits) {
            Ok(slot) => slot,
            Err(cap) => {
                refuse(cap, client);
                return Error::e_explain(ErrorType::AcceptError, "connection cap");
            }
        };
        // the ClientHello's first byte, within the header timeout (peeked: TLS reads it)
        let mut first = [0u8; 1];
        match tokio::time::timeout(self.limits.header_timeout, stream.try_peek(&mut first)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Error::e_because(ErrorType::ReadError, "before TLS", e),
            Err(_) => {
                timed_out("first_bytes");
                return Error::e_explain(ErrorType::ReadTimedout, "no ClientHello in time");
            }
        }
        let Some(peer) = peer else {
            // no address to hand the slot over by: it is given back now, and `Edge` takes one
            return Ok(());
        };
        let id = self.generation.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(peer, (id, slot));
        }
        // a handshake that fails never reaches `Edge`: give its slot back when Pingora has
        // given up on it
        let pending: std::sync::Weak<Pending> = Arc::downgrade(&self.pending);
        let wait = self.limits.header_timeout.min(HANDSHAKE_LIMIT);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Some(pending) = pending.upgrade() {
                if let Ok(mut pending) = pending.lock() {
                    if pending.get(&peer).is_some_and(|(g, _)| *g == id) {
                        pending.remove(&peer);
                    }
                }
            }
        });
        Ok(())
    }
}

/// Each request on a connection: the header deadline and the keep-alive timeout.
pub(crate) struct Requests {
    proxy: Arc<HttpProxy<Gateway>>,
    limits: Limits,
}

impl Edge {
    pub(crate) fn new(mut proxy: HttpProxy<Gateway>, limits: &Limits) -> Edge {
        let mut options = HttpServerOptions::default();
        options.h2c = true;
        options.keepalive_request_limit = Some(limits.keepalive_requests);
        options.h2_idle_timeout = Some(limits.h2_idle_timeout);
        proxy.server_options = Some(options);
        let slots: Arc<Slots> = Arc::default();
        Edge {
            requests: Arc::new(Requests {
                proxy: Arc::new(proxy),
                limits: limits.clone(),
            }),
            handshakes: Arc::new(Handshakes {
                slots: slots.clone(),
                limits: limits.clone(),
                pending: Arc::default(),
                generation: std::sync::atomic::AtomicU64::new(0),
            }),
            slots,
        }
    }

    /// What the TLS listener runs before each handshake.
    pub(crate) fn handshakes(&self) -> Arc<Handshakes> {
        self.handshakes.clone()
    }
}

#[async_trait]
impl ServerApp for Edge {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let limits = &self.requests.limits;
        let digest = stream.get_socket_digest();
        let client = client_ip(digest.as_deref());
        let peer = digest
            .as_deref()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied());
        let claimed = self.handshakes.claim(peer);
        let _slot = match claimed.map_or_else(|| self.slots.take(client, limits), Ok) {
            Ok(slot) => slot,
            Err(cap) => {
                refuse(cap, client);
                return None;
            }
        };
        let stream: Stream = Box::new(FirstBytes::new(stream, limits.header_timeout));
        self.requests.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.requests.http_cleanup().await;
    }
}

#[async_trait]
impl HttpServerApp for Requests {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if session.get_keepalive().is_some() {
            // between requests and while a header is read, each read may wait this long
            session.set_keepalive(Some(self.limits.keepalive_timeout.as_secs().max(1)));
        }
        let deadline = tokio::time::Instant::now() + self.limits.header_timeout;
        HEADER_READ
            .scope(Cell::new(false), async {
                let request = self.proxy.process_new_http(session, shutdown);
                tokio::pin!(request);
                match tokio::time::timeout_at(deadline, &mut request).await {
                    Ok(reused) => reused,
                    Err(_) if HEADER_READ.with(Cell::get) => request.await,
                    Err(_) => {
                        timed_out("header");
                        None
                    }
                }
            })
            .await
    }

    fn h2_options(&self) -> Option<pingora_core::protocols::http::v2::server::H2Options> {
        self.proxy.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.proxy.server_options()
    }

    async fn http_cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}

/// Counts (and now and then logs) a device too slow for a deadline.
pub(crate) fn timed_out(phase: &'static str) {
    metrics::DEVICE_TIMEOUTS.with_label_values(&[phase]).inc();
    if let Some(n) = TIMEOUT_LOG.due() {
        log::info!("device too slow, connection closed phase={phase} since_last_line={n}");
    }
}

/// A connection's stream whose first bytes must come within a deadline (a new connection that
/// sends nothing is closed); after them it is the stream itself.
struct FirstBytes {
    inner: Stream,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl std::fmt::Debug for FirstBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstBytes")
            .field("inner", &self.inner)
            .field("waiting", &self.deadline.is_some())
            .finish()
    }
}

impl FirstBytes {
    fn new(inner: Stream, within: Duration) -> FirstBytes {
        FirstBytes {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        match self.deadline.as_mut() {
            Some(d) => d.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }
}

fn too_slow() -> std::io::Error {
    timed_out("first_bytes");
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no request within the header timeout",
    )
}

use std::future::Future;

impl AsyncRead for FirstBytes {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before || r.is_err() {
                    self.deadline = None;
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => {
                self.deadline = None;
                Poll::Ready(Err(too_slow()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for FirstBytes {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for FirstBytes {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for FirstBytes {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for FirstBytes {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for FirstBytes {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for FirstBytes {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for FirstBytes {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

#[async_trait]
impl Peek for FirstBytes {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        let Some(mut deadline) = self.deadline.take() else {
            return self.inner.try_peek(buf).await;
        };
        let peeked = tokio::select! {
            peeked = self.inner.try_peek(buf) => peeked,
            _ = &mut deadline => Err(too_slow()),
        };
        if matches!(peeked, Ok(false)) {
            // this stream cannot peek (TLS): the first read keeps the deadline
            self.deadline = Some(deadline);
        }
        peeked
    }
}
