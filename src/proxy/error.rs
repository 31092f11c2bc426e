//! Failures YORI answers itself on the request path: each knows its HTTP status, its stable
//! snake_case code (JSON bodies, the audit `error_kind` column, metric labels) and its log level.

use crate::kinds::ErrorKind;
use pingora_core::{Error, ErrorType};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProxyError {
    /// No route: YORI is not an open proxy.
    NotFound,
    /// The Host names a vendor that is disabled here.
    Misdirected,
    /// On the TLS listener, the Host is not the connection's SNI (domain fronting).
    HostMismatch,
    /// The request body is above `limits.max_body_bytes`.
    BodyTooLarge { limit: usize },
    /// The client sent something we could not read (broken framing, early close).
    BadRequest(String),
    /// The client did not send its body within `limits.body_timeout_ms`.
    BodyTimeout,
    /// The bodies held at once would pass `limits.max_buffered_body_bytes`.
    Busy,
    /// A protocol switch (WebSocket, extended CONNECT).
    Upgrade,
    /// Enforce mode: a Content-Encoding that cannot be inflated within the bound.
    UnreadableBody,
    /// The vendor could not be reached (DNS, connect, TLS).
    UpstreamUnreachable(String),
    /// The vendor did not answer in time.
    UpstreamTimeout,
    /// The vendor connection broke after the request was sent.
    UpstreamBroken(String),
}

impl ProxyError {
    pub(crate) fn status(&self) -> u16 {
        match self {
            ProxyError::NotFound => 404,
            ProxyError::Misdirected | ProxyError::HostMismatch => 421,
            ProxyError::BodyTooLarge { .. } => 413,
            ProxyError::BadRequest(_) => 400,
            ProxyError::BodyTimeout => 408,
            ProxyError::Busy => 503,
            ProxyError::Upgrade => 501,
            ProxyError::UnreadableBody => 415,
            ProxyError::UpstreamUnreachable(_) | ProxyError::UpstreamBroken(_) => 502,
            ProxyError::UpstreamTimeout => 504,
        }
    }

    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            ProxyError::NotFound => ErrorKind::NotFound,
            ProxyError::Misdirected | ProxyError::HostMismatch => ErrorKind::Misdirected,
            ProxyError::BodyTooLarge { .. } => ErrorKind::RequestTooLarge,
            ProxyError::BadRequest(_) => ErrorKind::BadRequest,
            ProxyError::BodyTimeout => ErrorKind::RequestTimeout,
            ProxyError::Busy => ErrorKind::GatewayBusy,
            ProxyError::Upgrade => ErrorKind::UpgradeRefused,
            ProxyError::UnreadableBody => ErrorKind::UnreadableBody,
            ProxyError::UpstreamUnreachable(_) => ErrorKind::UpstreamUnreachable,
            ProxyError::UpstreamTimeout => ErrorKind::UpstreamTimeout,
            ProxyError::UpstreamBroken(_) => ErrorKind::UpstreamBroken,
        }
    }

    /// The stable code (`kind` as stored).
    pub(crate) fn code(&self) -> &'static str {
        self.kind().as_str()
    }

    /// What the user reads in their SDK's exception.
    pub(crate) fn message(&self) -> String {
        match self {
            ProxyError::NotFound => {
                "yori: no LLM endpoint matches this host and path (yori is not an open proxy)"
                    .into()
            }
            ProxyError::Misdirected => "yori: this vendor is disabled on this gateway".into(),
            ProxyError::HostMismatch => {
                "yori: the Host does not match the name this TLS connection was opened for".into()
            }
            ProxyError::BodyTooLarge { limit } => {
                format!("yori: request body is larger than the gateway's limit of {limit} bytes")
            }
            ProxyError::BadRequest(why) => format!("yori: could not read the request: {why}"),
            ProxyError::BodyTimeout => {
                "yori: the request body did not arrive in time (limits.body_timeout_ms)".into()
            }
            ProxyError::Busy => {
                "yori: the gateway is holding as many requests as it can; try again shortly".into()
            }
            ProxyError::Upgrade => {
                "yori: protocol upgrades (WebSocket, e.g. a Realtime API) are not supported through this gateway, as they could not be audited; use the HTTP API".into()
            }
            ProxyError::UnreadableBody => {
                "yori: the request body's Content-Encoding could not be read within the gateway's limit (one of gzip, deflate, br, zstd, inflating to at most limits.max_body_bytes)".into()
            }
            ProxyError::UpstreamUnreachable(_) => {
                "yori: the vendor could not be reached from the gateway".into()
            }
            ProxyError::UpstreamTimeout => "yori: the vendor did not answer in time".into(),
            ProxyError::UpstreamBroken(_) => "yori: the connection to the vendor broke".into(),
        }
    }

    pub(crate) fn log_level(&self) -> log::Level {
        match self {
            ProxyError::NotFound | ProxyError::Misdirected | ProxyError::HostMismatch => {
                log::Level::Info
            }
            ProxyError::BodyTooLarge { .. }
            | ProxyError::BadRequest(_)
            | ProxyError::BodyTimeout
            | ProxyError::Busy
            | ProxyError::Upgrade
            | ProxyError::UnreadableBody => log::Level::Info,
            ProxyError::UpstreamUnreachable(_)
            | ProxyError::UpstreamTimeout
            | ProxyError::UpstreamBroken(_) => log::Level::Warn,
        }
    }

    /// Classifies a Pingora error met while proxying to the vendor.
    pub(crate) fn from_upstream(e: &Error) -> ProxyError {
        use ErrorType::*;
        match &e.etype {
            ConnectTimedout | ReadTimedout | WriteTimedout => ProxyError::UpstreamTimeout,
            ConnectRefused | ConnectNoRoute | ConnectError | ConnectProxyFailure | BindError
            | TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert | HandshakeError
            | SocketError => ProxyError::UpstreamUnreachable(e.etype.as_str().to_string()),
            _ => ProxyError::UpstreamBroken(e.etype.as_str().to_string()),
        }
    }
}
