//! The household's local certificate authority: created once in `tls.ca_dir`, installed on each
//! device, and used only to issue short-lived leaf certificates for the enabled vendor names.
//!
//! Files: `ca.crt` (PEM, 0644, what devices install) and `ca.key` (PEM, 0600, never leaves the
//! router). Both are written to a temporary name and renamed, so a crash never leaves half a CA.
//! Keys are ECDSA P-256, which every current OS, browser, curl, Python and Node accept.

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509NameRef, X509};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const CERT_FILE: &str = "ca.crt";
pub const KEY_FILE: &str = "ca.key";
/// Ten years: the CA is installed by hand on every device, so it must outlive the router.
const CA_DAYS: u32 = 3650;
const CA_NAME: &str = "YORI home gateway local CA";

/// A CA problem, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("no CA in {0} (create one with `yori ca init`)")]
    Missing(PathBuf),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("openssl: {0}")]
    Ssl(#[from] openssl::error::ErrorStack),
}

fn file_err(path: &Path, message: impl std::fmt::Display) -> CaError {
    CaError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

pub struct Ca {
    pub cert: X509,
    key: PKey<Private>,
    pub dir: PathBuf,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("dir", &self.dir)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// A leaf certificate and its key, as the TLS listener presents it.
pub struct Leaf {
    pub cert: X509,
    pub key: PKey<Private>,
    /// Unix seconds after which the certificate is no longer valid.
    pub not_after: i64,
}

pub fn new_key() -> Result<PKey<Private>, openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

fn serial() -> Result<Asn1Integer, openssl::error::ErrorStack> {
    let mut bn = BigNum::new()?;
    // 127 random bits, top bit clear: positive and at most 16 bytes (RFC 5280 4.1.2.2)
    bn.rand(127, MsbOption::MAYBE_ZERO, false)?;
    bn.to_asn1_integer()
}

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Unix seconds of an ASN.1 time.
pub fn unix_time(t: &openssl::asn1::Asn1TimeRef) -> i64 {
    Asn1Time::from_unix(0)
        .ok()
        .and_then(|epoch| epoch.diff(t).ok())
        .map_or(0, |d| d.days as i64 * 86_400 + d.secs as i64)
}

impl Ca {
    /// Creates a new CA in memory (not yet written).
    fn generate(dir: &Path) -> Result<Ca, CaError> {
        let key = new_key()?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COMMONNAME, CA_NAME)?;
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "YORI")?;
        let name = name.build();
        let (mut b, _) = builder(&name, &name, &key, CA_DAYS)?;
        b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(Ca {
            cert: b.build(),
            key,
            dir: dir.to_path_buf(),
        })
    }

    pub fn exists(dir: &Path) -> bool {
        dir.join(CERT_FILE).exists() || dir.join(KEY_FILE).exists()
    }

    /// Creates a CA in `dir` and writes it. Refuses to replace an existing one unless `force`.
    pub fn init(dir: &Path, force: bool) -> Result<Ca, CaError> {
        if Ca::exists(dir) && !force {
            return Err(file_err(
                dir,
                "a CA already exists here; devices trust it. `yori ca init --force` replaces it \
                 (every device must then install the new one)",
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, format!("cannot create: {e}")))?;
        let ca = Ca::generate(dir)?;
        write_atomic(
            &dir.join(KEY_FILE),
            &ca.key.private_key_to_pem_pkcs8()?,
            0o600,
        )?;
        write_atomic(&dir.join(CERT_FILE), &ca.cert.to_pem()?, 0o644)?;
        Ok(ca)
    }

    /// Loads the CA from `dir`, checking that the key is private to its owner, matches the
    /// certificate, and that the certificate is a CA that has not expired.
    pub fn load(dir: &Path) -> Result<Ca, CaError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        if !cert_path.exists() && !key_path.exists() {
            return Err(CaError::Missing(dir.to_path_buf()));
        }
        let meta = std::fs::metadata(&key_path).map_err(|e| file_err(&key_path, e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(file_err(
                &key_path,
                format!(
                    "the CA key is readable by others (mode {mode:o}); fix with `chmod 600 {}`",
                    key_path.display()
                ),
            ));
        }
        let key_pem = std::fs::read(&key_path).map_err(|e| file_err(&key_path, e))?;
        let key = PKey::private_key_from_pem(&key_pem)
            .map_err(|e| file_err(&key_path, format!("not a PEM private key: {e}")))?;
        let cert_pem = std::fs::read(&cert_path).map_err(|e| file_err(&cert_path, e))?;
        let cert = X509::from_pem(&cert_pem)
            .map_err(|e| file_err(&cert_path, format!("not a PEM certificate: {e}")))?;
        if !cert.public_key()?.public_eq(&key) {
            return Err(file_err(
                &cert_path,
                format!("does not belong to the key {}", key_path.display()),
            ));
        }
        if unix_time(cert.not_after()) <= now_unix() {
            return Err(file_err(
                &cert_path,
                "the CA certificate has expired; `yori ca init --force` makes a new one",
            ));
        }
        Ok(Ca {
            cert,
            key,
            dir: dir.to_path_buf(),
        })
    }

    /// The CA certificate alone, as devices install it.
    pub fn certificate(dir: &Path) -> Result<X509, CaError> {
        let path = dir.join(CERT_FILE);
        let pem = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CaError::Missing(dir.to_path_buf()),
            _ => file_err(&path, e),
        })?;
        X509::from_pem(&pem).map_err(|e| file_err(&path, format!("not a PEM certificate: {e}")))
    }

    /// SHA-256 fingerprint of the certificate, as devices show it (AA:BB:...).
    pub fn fingerprint(&self) -> String {
        self.cert
            .digest(MessageDigest::sha256())
            .map(|d| {
                d.iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .unwrap_or_default()
    }

    /// Issues a leaf certificate for `domain`, valid for `days` (and one hour back, for clocks
    /// that run a little behind).
    pub fn issue(&self, domain: &str, days: u32) -> Result<Leaf, CaError> {
        let key = new_key()?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COMMONNAME, domain)?;
        let name = name.build();
        let (mut b, not_after) = builder(&name, self.cert.subject_name(), &key, days)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
        b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
        let ctx = b.x509v3_context(Some(&self.cert), None);
        let san = SubjectAlternativeName::new().dns(domain).build(&ctx)?;
        let ski = SubjectKeyIdentifier::new().build(&ctx)?;
        let aki = AuthorityKeyIdentifier::new().keyid(true).build(&ctx)?;
        b.append_extension(san)?;
        b.append_extension(ski)?;
        b.append_extension(aki)?;
        b.sign(&self.key, MessageDigest::sha256())?;
        Ok(Leaf {
            cert: b.build(),
            key,
            not_after,
        })
    }
}

/// A v3 certificate for `key` with a random serial, valid from one hour back (clocks that run a
/// little behind) for `days`; returns it with its end in unix seconds.
fn builder(
    subject: &X509NameRef,
    issuer: &X509NameRef,
    key: &PKey<Private>,
    days: u32,
) -> Result<(X509Builder, i64), openssl::error::ErrorStack> {
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let sn = serial()?;
    b.set_serial_number(&sn)?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(issuer)?;
    b.set_pubkey(key)?;
    let not_before = Asn1Time::from_unix(now_unix() - 3600)?;
    b.set_not_before(&not_before)?;
    let not_after = Asn1Time::days_from_now(days)?;
    b.set_not_after(&not_after)?;
    Ok((b, unix_time(&not_after)))
}

/// Writes `bytes` to `path` through a temporary file created with `mode`, then renames it.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| file_err(&tmp, format!("cannot create: {e}")))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| file_err(&tmp, format!("cannot write: {e}")))?;
    // the umask may have narrowed the mode; the key must be exactly 0600, the certificate 0644
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(|e| file_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, format!("cannot write: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::{X509StoreContext, X509VerifyResult};

    fn verifies(ca: &X509, leaf: &X509, host: &str) -> X509VerifyResult {
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(ca.clone()).unwrap();
        let mut param = openssl::x509::verify::X509VerifyParam::new().unwrap();
        param.set_host(host).unwrap();
        store.set_param(&param).unwrap();
        let store = store.build();
        let mut ctx = X509StoreContext::new().unwrap();
        ctx.init(&store, leaf, &Stack::new().unwrap(), |c| {
            c.verify_cert()?;
            Ok(c.error())
        })
        .unwrap()
    }

    #[test]
    fn init_writes_a_private_key_and_reloads_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        let made = Ca::init(&ca_dir, false).unwrap();
        let mode = std::fs::metadata(ca_dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = Ca::load(&ca_dir).unwrap();
        assert_eq!(made.fingerprint(), loaded.fingerprint());
        // a second init refuses, and leaves the CA alone
        assert!(Ca::init(&ca_dir, false).is_err());
        assert_eq!(Ca::load(&ca_dir).unwrap().fingerprint(), made.fingerprint());
        let replaced = Ca::init(&ca_dir, true).unwrap();
        assert_ne!(replaced.fingerprint(), made.fingerprint());
    }

    #[test]
    fn a_readable_key_or_a_foreign_cert_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Ca::init(dir.path(), false).unwrap();
        let key = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Ca::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("readable by others"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let other = tempfile::tempdir().unwrap();
        Ca::init(other.path(), false).unwrap();
        std::fs::copy(other.path().join(CERT_FILE), dir.path().join(CERT_FILE)).unwrap();
        let e = Ca::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("does not belong"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(Ca::load(empty.path()), Err(CaError::Missing(_))));
    }

    #[test]
    fn leaves_verify_for_their_name_only_and_carry_server_extensions() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::init(dir.path(), false).unwrap();
        let leaf = ca.issue("api.openai.com", 90).unwrap();
        assert_eq!(
            verifies(&ca.cert, &leaf.cert, "api.openai.com"),
            X509VerifyResult::OK
        );
        assert_ne!(
            verifies(&ca.cert, &leaf.cert, "example.com"),
            X509VerifyResult::OK
        );
        let other = Ca::init(tempfile::tempdir().unwrap().path(), false).unwrap();
        assert_ne!(
            verifies(&other.cert, &leaf.cert, "api.openai.com"),
            X509VerifyResult::OK
        );
        let text = String::from_utf8(leaf.cert.to_text().unwrap()).unwrap();
        assert!(text.contains("TLS Web Server Authentication"), "{text}");
        assert!(text.contains("DNS:api.openai.com"), "{text}");
        assert!(text.contains("CA:FALSE"), "{text}");
        let days = (leaf.not_after - now_unix()) / 86_400;
        assert!((89..=90).contains(&days), "{days}");
    }
}
