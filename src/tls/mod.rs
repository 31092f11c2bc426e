//! HTTPS interception: the TLS listener on `tls.listen` answers only for the enabled endpoint
//! domains, with certificates from the local CA (or the user's own), and tags each connection with
//! its SNI so the proxy routes by it.
//!
//! A handshake for any other name, or without SNI, is refused with an `unrecognized_name` alert:
//! YORI never mints a certificate for an arbitrary name.

pub mod ca;

use crate::config::Config;
use crate::metrics;
use ca::{now_unix, Ca, CaError, Leaf};
use openssl::pkey::{PKey, Private};
use openssl::ssl::{NameType, SniError, SslAlert, SslRef};
use openssl::x509::X509;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::listeners::TlsAccept;
use pingora_core::protocols::tls::TlsRef;
use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The server name a TLS connection was opened for, lowercased; the proxy reads it from the
/// connection's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sni(pub String);

enum Source {
    Local(Ca),
    Supplied {
        chain: Vec<X509>,
        key: PKey<Private>,
    },
}

/// The certificates the TLS listener presents, by name.
pub struct Certs {
    source: Source,
    names: HashSet<String>,
    leaf_days: u32,
    leafs: RwLock<HashMap<String, Arc<Leaf>>>,
}

/// Why the TLS listener cannot start, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls: no endpoint is enabled, so there is no name to serve")]
    NoNames,
    #[error("tls: cannot create the local CA: {0}")]
    CreateCa(CaError),
    #[error("tls: {0}")]
    Ca(CaError),
    #[error("tls: cannot issue a certificate for {name}: {source}")]
    Issue { name: String, source: CaError },
    #[error("tls.cert: {}: {message}", path.display())]
    Cert { path: PathBuf, message: String },
    #[error("tls.key: {}: {message}", path.display())]
    Key { path: PathBuf, message: String },
    #[error("tls.cert: {} has expired", .0.display())]
    Expired(PathBuf),
    #[error("tls.key: {} is not the key of the certificate {}", key.display(), cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error(
        "tls.cert: {} does not cover the enabled endpoint name(s) {} (its names: {}); \
         disable those endpoints or use the local CA",
        cert.display(), uncovered.join(", "), if sans.is_empty() { "none".to_string() } else { sans.join(", ") }
    )]
    Uncovered {
        cert: PathBuf,
        uncovered: Vec<String>,
        sans: Vec<String>,
    },
}

/// What `prepare` found or did, for the start-up log and `yori check`.
pub enum Prepared {
    Ready(Arc<Certs>),
    /// `yori check` only: no CA yet; the service creates one at start.
    WillCreate,
}

fn enabled_names(config: &Config) -> HashSet<String> {
    config
        .endpoints
        .iter()
        .filter(|e| e.enabled)
        .map(|e| e.domain.to_ascii_lowercase())
        .collect()
}

/// The names a new local CA is constrained to: the enabled endpoint domains, unless
/// `tls.name_constraints: false`.
pub fn constraints(config: &Config) -> Option<Vec<String>> {
    config.tls.name_constraints.then(|| {
        let mut names: Vec<String> = enabled_names(config).into_iter().collect();
        names.sort();
        names
    })
}

/// Loads (or, when `create`, makes) the TLS material for an enabled `tls` section, checking
/// everything the listener will need. An error is the operator's message: the TLS listener must
/// not start.
pub fn prepare(config: &Config, create: bool) -> Result<Prepared, TlsError> {
    let tls = &config.tls;
    let names = enabled_names(config);
    if names.is_empty() {
        return Err(TlsError::NoNames);
    }
    let source = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => supplied(cert, key, &names)?,
        _ => match Ca::load(&tls.ca_dir) {
            Ok(ca) => Source::Local(ca),
            Err(CaError::Missing(_)) if !create => return Ok(Prepared::WillCreate),
            Err(CaError::Missing(dir)) => {
                let ca = Ca::init(&dir, false, constraints(config).as_deref())
                    .map_err(TlsError::CreateCa)?;
                log::info!(
                    "local CA created dir={} fingerprint={} (install {}/{} on each device: `yori ca export`)",
                    dir.display(),
                    ca.fingerprint(),
                    dir.display(),
                    ca::CERT_FILE
                );
                Source::Local(ca)
            }
            Err(e) => return Err(TlsError::Ca(e)),
        },
    };
    let certs = Certs {
        source,
        names,
        leaf_days: tls.leaf_days,
        leafs: RwLock::new(HashMap::new()),
    };
    if let Source::Local(ca) = &certs.source {
        // issue every leaf now: a CA that cannot sign fails at start, not at a device's handshake
        let mut names: Vec<_> = certs.names.iter().collect();
        names.sort();
        for name in names {
            let leaf = certs.leaf(ca, name).map_err(|source| TlsError::Issue {
                name: name.clone(),
                source,
            })?;
            if let Err(why) = ca.verify(&leaf.cert, name) {
                // most often: an endpoint added after a constrained CA was made
                log::error!(
                    "devices will refuse the certificate for {name}: {why}; the local CA's name constraints do not cover it. Run `yori ca init --force` and install the new ca.crt on every device (see docs/tls.md)"
                );
            }
        }
    }
    Ok(Prepared::Ready(Arc::new(certs)))
}

/// Reads a user-supplied chain and key and checks they match and cover every enabled name.
fn supplied(cert: &Path, key: &Path, names: &HashSet<String>) -> Result<Source, TlsError> {
    let cert_err = |message: String| TlsError::Cert {
        path: cert.to_path_buf(),
        message,
    };
    let pem = std::fs::read(cert).map_err(|e| cert_err(e.to_string()))?;
    let chain =
        X509::stack_from_pem(&pem).map_err(|e| cert_err(format!("not PEM certificates: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(cert_err("no certificate in it".into()));
    };
    let key_err = |message: String| TlsError::Key {
        path: key.to_path_buf(),
        message,
    };
    let key_pem = std::fs::read(key).map_err(|e| key_err(e.to_string()))?;
    let pkey = PKey::private_key_from_pem(&key_pem)
        .map_err(|e| key_err(format!("not a PEM private key: {e}")))?;
    let matches = leaf
        .public_key()
        .map(|pk| pk.public_eq(&pkey))
        .unwrap_or(false);
    if !matches {
        return Err(TlsError::KeyMismatch {
            key: key.to_path_buf(),
            cert: cert.to_path_buf(),
        });
    }
    if ca::unix_time(leaf.not_after()) <= now_unix() {
        return Err(TlsError::Expired(cert.to_path_buf()));
    }
    let sans: Vec<String> = leaf
        .subject_alt_names()
        .map(|s| {
            s.iter()
                .filter_map(|n| n.dnsname().map(str::to_ascii_lowercase))
                .collect()
        })
        .unwrap_or_default();
    let mut uncovered: Vec<String> = names
        .iter()
        .filter(|n| !sans.iter().any(|san| name_matches(san, n)))
        .cloned()
        .collect();
    uncovered.sort();
    if !uncovered.is_empty() {
        return Err(TlsError::Uncovered {
            cert: cert.to_path_buf(),
            uncovered,
            sans,
        });
    }
    Ok(Source::Supplied { chain, key: pkey })
}

/// RFC 6125 matching: exact, or `*.` standing for exactly one leftmost label.
fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == name,
    }
}

impl Certs {
    /// The cached leaf for `name`, issued (or renewed, once a third of its life is left) on demand.
    fn leaf(&self, ca: &Ca, name: &str) -> Result<Arc<Leaf>, CaError> {
        let renew_margin = i64::from(self.leaf_days) * 86_400 / 3;
        let fresh = |l: &Leaf| l.not_after - now_unix() > renew_margin;
        if let Some(l) = self.leafs.read().ok().and_then(|m| m.get(name).cloned()) {
            if fresh(&l) {
                return Ok(l);
            }
        }
        let mut map = self.leafs.write().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = map.get(name).filter(|l| fresh(l)) {
            return Ok(l.clone());
        }
        let leaf = Arc::new(ca.issue(name, self.leaf_days)?);
        metrics::TLS_ISSUED.inc();
        log::debug!("certificate issued name={name} days={}", self.leaf_days);
        map.insert(name.to_string(), leaf.clone());
        Ok(leaf)
    }

    /// The SNI callback: presents the certificate for an enabled name, refuses everything else.
    fn select(&self, ssl: &mut SslRef, alert: &mut SslAlert) -> Result<(), SniError> {
        let Some(raw) = ssl.servername(NameType::HOST_NAME) else {
            metrics::TLS_REFUSED.with_label_values(&["no_sni"]).inc();
            log::warn!("tls handshake refused reason=no_sni (clients must connect by vendor name)");
            *alert = SslAlert::UNRECOGNIZED_NAME;
            return Err(SniError::ALERT_FATAL);
        };
        let name = raw.trim_end_matches('.').to_ascii_lowercase();
        if !self.names.contains(&name) {
            metrics::TLS_REFUSED
                .with_label_values(&["unknown_name"])
                .inc();
            log::warn!(
                "tls handshake refused reason=unknown_name sni={:?} (not an enabled endpoint)",
                name.chars().take(80).collect::<String>()
            );
            *alert = SslAlert::UNRECOGNIZED_NAME;
            return Err(SniError::ALERT_FATAL);
        }
        let presented = match &self.source {
            Source::Supplied { chain, key } => chain
                .first()
                .map_or(Ok(()), |c| ssl.set_certificate(c))
                .and_then(|_| ssl.set_private_key(key))
                .and_then(|_| {
                    chain
                        .iter()
                        .skip(1)
                        .try_for_each(|c| ssl.add_chain_cert(c.clone()))
                }),
            Source::Local(ca) => match self.leaf(ca, &name) {
                Ok(leaf) => ssl
                    .set_certificate(&leaf.cert)
                    .and_then(|_| ssl.set_private_key(&leaf.key)),
                Err(e) => {
                    log::error!("tls certificate unavailable name={name} error={e}");
                    *alert = SslAlert::INTERNAL_ERROR;
                    return Err(SniError::ALERT_FATAL);
                }
            },
        };
        presented.map_err(|e| {
            log::error!("tls certificate not set name={name} error={e}");
            SniError::ALERT_FATAL
        })
    }
}

/// Tags each finished handshake with its SNI (see `Sni`).
struct SniTag;

#[async_trait::async_trait]
impl TlsAccept for SniTag {
    async fn handshake_complete_callback(
        &self,
        ssl: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        ssl.servername(NameType::HOST_NAME)
            .map(|n| Arc::new(Sni(n.trim_end_matches('.').to_ascii_lowercase())) as _)
    }
}

/// The listener settings: certificate by SNI, ALPN h2 then http/1.1, Mozilla intermediate.
pub fn settings(certs: Arc<Certs>) -> pingora_core::Result<TlsSettings> {
    let mut s = TlsSettings::with_callbacks(Box::new(SniTag))?;
    s.enable_h2();
    s.set_servername_callback(move |ssl, alert| certs.select(ssl, alert));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certs_in(dir: &Path) -> Arc<Certs> {
        let yaml = format!("tls:\n  listen: 127.0.0.1:1\n  ca_dir: {}\n", dir.display());
        let config = crate::config::parse_str(&yaml, None).unwrap();
        match prepare(&config, true).unwrap() {
            Prepared::Ready(c) => c,
            Prepared::WillCreate => panic!("prepare(create) makes the CA"),
        }
    }

    #[test]
    fn leaves_are_issued_at_start_and_renewed_with_a_third_of_their_life_left() {
        let dir = tempfile::tempdir().unwrap();
        let certs = certs_in(dir.path());
        let names: Vec<String> = {
            let mut n: Vec<_> = certs.leafs.read().unwrap().keys().cloned().collect();
            n.sort();
            n
        };
        assert_eq!(
            names,
            [
                "api.anthropic.com",
                "api.mistral.ai",
                "api.openai.com",
                "generativelanguage.googleapis.com"
            ]
        );
        let Source::Local(ca) = &certs.source else {
            panic!("the local CA is in use")
        };
        let first = certs.leaf(ca, "api.openai.com").unwrap();
        let again = certs.leaf(ca, "api.openai.com").unwrap();
        assert!(Arc::ptr_eq(&first, &again), "a fresh leaf is reused");
        // age it: 20 of 90 days left is under a third
        let aged = Leaf {
            cert: first.cert.clone(),
            key: first.key.clone(),
            not_after: now_unix() + 20 * 86_400,
        };
        certs
            .leafs
            .write()
            .unwrap()
            .insert("api.openai.com".into(), Arc::new(aged));
        let renewed = certs.leaf(ca, "api.openai.com").unwrap();
        assert_ne!(
            renewed.cert.serial_number().to_bn().unwrap(),
            first.cert.serial_number().to_bn().unwrap()
        );
        assert!(renewed.not_after > now_unix() + 89 * 86_400);
    }

    #[test]
    fn wildcards_stand_for_one_label() {
        assert!(name_matches("api.openai.com", "api.openai.com"));
        assert!(name_matches("*.openai.com", "api.openai.com"));
        assert!(!name_matches("*.openai.com", "openai.com"));
        assert!(!name_matches("*.openai.com", "a.b.openai.com"));
        assert!(!name_matches("api.openai.com", "api.openai.com.evil"));
    }
}
