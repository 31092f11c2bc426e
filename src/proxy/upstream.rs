//! Upstream addresses resolved off the worker threads, cached, and turned into Pingora peers.
//!
//! `HttpPeer::new` with a host name resolves synchronously on the proxy's thread (and panics on
//! failure), so names are resolved here with tokio's resolver and peers get a `SocketAddr`.

use crate::config::{Limits, Upstream};
use pingora_core::upstreams::peer::HttpPeer;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(60);
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// A vendor name that cannot be turned into an address.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ResolveError {
    #[error("{0} has no address")]
    NoAddress(String),
    #[error("cannot resolve {host}: {message}")]
    Lookup { host: String, message: String },
    #[error("resolving {0} timed out")]
    Timeout(String),
}

#[derive(Default)]
pub(crate) struct Resolver {
    cache: Mutex<HashMap<(String, u16), (SocketAddr, Instant)>>,
}

impl Resolver {
    /// The address for `host:port`: an IP literal directly, else a cached or fresh lookup. A
    /// failed refresh keeps using the last good address (the vendor rarely moves; DNS blips).
    pub(crate) async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, ResolveError> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(SocketAddr::new(ip, port));
        }
        let key = (host.to_string(), port);
        let cached = self.cache.lock().ok().and_then(|c| c.get(&key).copied());
        if let Some((addr, at)) = cached {
            if at.elapsed() < TTL {
                return Ok(addr);
            }
        }
        let fresh =
            tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port))).await;
        let found = match fresh {
            Ok(Ok(mut addrs)) => addrs
                .next()
                .ok_or_else(|| ResolveError::NoAddress(host.to_string())),
            Ok(Err(e)) => Err(ResolveError::Lookup {
                host: host.to_string(),
                message: e.to_string(),
            }),
            Err(_) => Err(ResolveError::Timeout(host.to_string())),
        };
        match (found, cached) {
            (Ok(addr), _) => {
                if let Ok(mut c) = self.cache.lock() {
                    c.insert(key, (addr, Instant::now()));
                }
                Ok(addr)
            }
            (Err(e), Some((addr, _))) => {
                log::warn!("dns refresh failed, using last address host={host} error={e}");
                Ok(addr)
            }
            (Err(e), None) => Err(e),
        }
    }
}

/// A peer for one request, with the timeouts a long LLM generation needs.
pub(super) fn peer(addr: SocketAddr, upstream: &Upstream, limits: &Limits) -> Box<HttpPeer> {
    let mut peer = HttpPeer::new(addr, upstream.tls, upstream.sni.clone());
    peer.options.connection_timeout = Some(limits.connect_timeout);
    peer.options.total_connection_timeout = Some(limits.connect_timeout);
    peer.options.read_timeout = Some(limits.read_timeout);
    peer.options.write_timeout = Some(limits.read_timeout);
    peer.options.idle_timeout = Some(limits.idle_timeout);
    Box::new(peer)
}

/// Holds back (`true`) or releases (`false`) what is written to an upstream socket, so that the
/// request header and a body already in hand leave in one transmission: Pingora writes and
/// flushes the header before it writes the body. Linux `TCP_CORK`, FreeBSD `TCP_NOPUSH`; a
/// failure only costs the coalescing, so it is ignored.
pub(super) fn cork(fd: std::os::unix::io::RawFd, on: bool) {
    #[cfg(target_os = "linux")]
    let option = libc::TCP_CORK;
    #[cfg(target_os = "freebsd")]
    let option = libc::TCP_NOPUSH;
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    {
        let value: libc::c_int = on.into();
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live local; an fd that is
        // no longer a TCP socket makes it fail with an error, nothing else.
        #[allow(unsafe_code)]
        let _ = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                option,
                (&value as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    let _ = (fd, on);
}
