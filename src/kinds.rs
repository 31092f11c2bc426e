//! The closed vocabularies that YORI writes into audit rows, metric labels, JSON bodies and the
//! policy input. Each enum renders to its stored string in one place (`as_str`) and is parsed
//! back from it by `parse`, so no stored literal is spelled twice.

use std::fmt;

/// Defines a closed vocabulary: the enum, its stored strings, `as_str`, `parse`, `ALL` and
/// `Display`. Each string appears once, here.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored string.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value whose stored string is `s`.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The stored strings, for messages (`observe, advisory or enforce`).
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.as_str()).collect()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// What YORI does with a policy verdict: only record it, alert on it, or block.
    Mode {
        Observe => "observe",
        Advisory => "advisory",
        Enforce => "enforce",
    }
}

vocabulary! {
    /// A policy's verdict (`policy_result`). Ordered by severity: the most severe wins.
    Action {
        Allow => "allow",
        Alert => "alert",
        Block => "block",
    }
}

impl PartialOrd for Action {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Action {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

vocabulary! {
    /// What an audit row records (`event_type`).
    EventType {
        /// A vendor exchange that was forwarded, or refused by YORI for a reason other than policy.
        Request => "request",
        /// A vendor request blocked by policy: the vendor received nothing.
        Block => "block",
        /// A change made from the dashboard (who, from where, what).
        Admin => "admin",
        /// A parent's temporary approval, given or used.
        Approval => "approval",
        /// A connection to a consumer AI service passed through without decryption.
        Connection => "connection",
    }
}

vocabulary! {
    /// Why an exchange did not end normally (`error_kind`, JSON `code`, metric `kind`).
    ErrorKind {
        NotFound => "not_found",
        Misdirected => "misdirected_request",
        RequestTooLarge => "request_too_large",
        BadRequest => "bad_request",
        /// The device did not send its body in time (`limits.body_timeout_ms`).
        RequestTimeout => "request_timeout",
        /// YORI holds as many request bytes as it may (`limits.max_buffered_body_bytes`).
        GatewayBusy => "gateway_busy",
        /// The device asked to switch protocols (WebSocket, extended CONNECT): refused, as what
        /// flows after the switch could not be audited.
        UpgradeRefused => "upgrade_refused",
        /// Enforce mode: a compressed request body that cannot be inflated within the bound
        /// cannot be decided on, so it is refused.
        UnreadableBody => "unreadable_body",
        UpstreamUnreachable => "upstream_unreachable",
        UpstreamTimeout => "upstream_timeout",
        UpstreamBroken => "upstream_broken",
        ClientClosed => "client_closed",
        /// The exchange was cut before it could finish: the gateway was shutting down.
        Interrupted => "interrupted",
    }
}

impl ErrorKind {
    /// The vendor side failed (as opposed to the device, or YORI refusing the request).
    pub fn is_upstream(self) -> bool {
        matches!(
            self,
            ErrorKind::UpstreamUnreachable | ErrorKind::UpstreamTimeout | ErrorKind::UpstreamBroken
        )
    }
}

/// How one vendor exchange ended. Set once per exchange; the audit row's `event_type` and
/// `error_kind`, and the metrics' `outcome` label, are read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The vendor's answer reached the device whole.
    Forwarded,
    /// Policy blocked the request; the vendor received nothing.
    Blocked,
    /// YORI refused the request itself (too large, unreadable).
    Refused(ErrorKind),
    /// The vendor could not be reached, timed out, or broke the exchange.
    Failed(ErrorKind),
    /// The device went away before the answer was complete.
    ClientClosed,
}

impl Outcome {
    /// The exchange ended with this error: upstream kinds are failures, the device leaving is
    /// `ClientClosed`, anything else is YORI's refusal.
    pub fn from_error(kind: ErrorKind) -> Outcome {
        match kind {
            ErrorKind::ClientClosed => Outcome::ClientClosed,
            k if k.is_upstream() || k == ErrorKind::Interrupted => Outcome::Failed(k),
            k => Outcome::Refused(k),
        }
    }

    /// The metric label (`yori_requests_total{outcome}`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Blocked => "blocked",
            Outcome::Refused(_) => "refused",
            Outcome::Failed(_) => "failed",
            Outcome::ClientClosed => "client_closed",
        }
    }

    /// The row's `error_kind`.
    pub fn error_kind(self) -> Option<ErrorKind> {
        match self {
            Outcome::Forwarded | Outcome::Blocked => None,
            Outcome::Refused(k) | Outcome::Failed(k) => Some(k),
            Outcome::ClientClosed => Some(ErrorKind::ClientClosed),
        }
    }

    /// The row's `event_type`.
    pub fn event_type(self) -> EventType {
        match self {
            Outcome::Blocked => EventType::Block,
            _ => EventType::Request,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_string_parses_back() {
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.as_str()), Some(*m));
        }
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(*a));
        }
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(*e));
        }
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(Mode::parse("strict"), None);
    }

    #[test]
    fn actions_order_by_severity() {
        assert!(Action::Block > Action::Alert && Action::Alert > Action::Allow);
        assert_eq!(Action::ALL.iter().max(), Some(&Action::Block));
    }

    #[test]
    fn outcomes_map_errors_to_failed_refused_or_closed() {
        assert_eq!(
            Outcome::from_error(ErrorKind::UpstreamTimeout),
            Outcome::Failed(ErrorKind::UpstreamTimeout)
        );
        assert_eq!(
            Outcome::from_error(ErrorKind::RequestTooLarge),
            Outcome::Refused(ErrorKind::RequestTooLarge)
        );
        assert_eq!(
            Outcome::from_error(ErrorKind::ClientClosed),
            Outcome::ClientClosed
        );
        assert_eq!(
            Outcome::ClientClosed.error_kind(),
            Some(ErrorKind::ClientClosed)
        );
        assert_eq!(Outcome::Blocked.event_type(), EventType::Block);
        assert_eq!(Outcome::Forwarded.error_kind(), None);
    }
}
