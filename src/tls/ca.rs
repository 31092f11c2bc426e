//! The household's local certificate authority: created once in `tls.ca_dir`, installed on each
//! device, and used only to issue short-lived leaf certificates for the enabled vendor names.
//!
//! Files: `ca.crt` (PEM, 0644, what devices install) and `ca.key` (PEM, 0600, never leaves the
//! router). Both are written to a temporary name and renamed, so a crash never leaves half a CA.
//! Keys are ECDSA P-256, which every current OS, browser, curl, Python and Node accept.
//!
//! A CA made with name constraints (the default, `tls.name_constraints`) may only sign the
//! endpoint domains enabled when it was made, and no IP address: a stolen `ca.key` cannot then
//! impersonate other sites to the devices that trust it. Adding an endpoint later means a new
//! CA (`yori ca init --force`) installed again on each device.

use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509Extension, X509NameBuilder, X509NameRef, X509};
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

/// A DER tag-length-value.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// The X.509 name constraints extension (RFC 5280 section 4.2.1.10), critical: DNS names
/// permitted under each of `domains` only, and every IPv4 and IPv6 address excluded.
fn name_constraints(domains: &[String]) -> Result<X509Extension, openssl::error::ErrorStack> {
    // GeneralSubtree ::= SEQUENCE { base GeneralName }; dNSName is [2], iPAddress [7]
    let subtree = |tag: u8, value: &[u8]| der(0x30, &der(tag, value));
    let permitted: Vec<u8> = domains
        .iter()
        .flat_map(|d| subtree(0x82, d.as_bytes()))
        .collect();
    let mut excluded = subtree(0x87, &[0; 8]);
    excluded.extend(subtree(0x87, &[0; 32]));
    let mut body = der(0xa0, &permitted);
    body.extend(der(0xa1, &excluded));
    let value = der(0x30, &body);
    let oid = Asn1Object::from_str("2.5.29.30")?;
    let value = Asn1OctetString::new_from_bytes(&value)?;
    X509Extension::new_from_der(&oid, true, &value)
}

impl Ca {
    /// Creates a new CA in memory (not yet written); with `permitted` names, constrained to them.
    fn generate(dir: &Path, permitted: Option<&[String]>) -> Result<Ca, CaError> {
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
        if let Some(domains) = permitted.filter(|d| !d.is_empty()) {
            b.append_extension(name_constraints(domains)?)?;
        }
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

    /// Creates a CA in `dir` and writes it, constrained to the `permitted` domains when given.
    /// Refuses to replace an existing one unless `force`.
    pub fn init(dir: &Path, force: bool, permitted: Option<&[String]>) -> Result<Ca, CaError> {
        if Ca::exists(dir) && !force {
            return Err(file_err(
                dir,
                "a CA already exists here; devices trust it. `yori ca init --force` replaces it \
                 (every device must then install the new one)",
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, format!("cannot create: {e}")))?;
        let ca = Ca::generate(dir, permitted)?;
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

    /// Whether a device that trusts this CA accepts `leaf` for `host` (OpenSSL's own chain and
    /// name checks, name constraints included); the reason when it does not.
    pub fn verify(&self, leaf: &X509, host: &str) -> Result<(), String> {
        use openssl::stack::Stack;
        use openssl::x509::store::X509StoreBuilder;
        use openssl::x509::X509StoreContext;
        let check = || -> Result<openssl::x509::X509VerifyResult, openssl::error::ErrorStack> {
            let mut store = X509StoreBuilder::new()?;
            store.add_cert(self.cert.clone())?;
            let mut param = openssl::x509::verify::X509VerifyParam::new()?;
            param.set_host(host)?;
            store.set_param(&param)?;
            let store = store.build();
            let mut ctx = X509StoreContext::new()?;
            let chain: Stack<X509> = Stack::new()?;
            ctx.init(&store, leaf, &chain, |c| {
                c.verify_cert()?;
                Ok(c.error())
            })
        };
        match check() {
            Ok(r) if r == openssl::x509::X509VerifyResult::OK => Ok(()),
            Ok(r) => Err(r.error_string().to_string()),
            Err(e) => Err(e.to_string()),
        }
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

    #[test]
    fn a_constrained_ca_signs_only_its_domains() {
        let dir = tempfile::tempdir().unwrap();
        let permitted = ["api.openai.com".to_string(), "llm.home.lan".to_string()];
        let ca = Ca::init(dir.path(), false, Some(&permitted)).unwrap();
        for ok in ["api.openai.com", "llm.home.lan"] {
            let leaf = ca.issue(ok, 90).unwrap();
            assert_eq!(ca.verify(&leaf.cert, ok), Ok(()), "{ok}");
        }
        // a stolen key still signs, but no device that trusts this CA accepts the result
        for bad in [
            "www.bank.example",
            "api.openai.com.evil.example",
            "evilapi.openai.com.x",
        ] {
            let leaf = ca.issue(bad, 90).unwrap();
            let why = ca.verify(&leaf.cert, bad).unwrap_err();
            assert!(why.contains("permitted subtree violation"), "{bad}: {why}");
        }
        let text = String::from_utf8(ca.cert.to_text().unwrap()).unwrap();
        assert!(text.contains("X509v3 Name Constraints: critical"), "{text}");
        assert!(text.contains("DNS:api.openai.com"), "{text}");
        // the openssl command line agrees
        let leaf = ca.issue("www.bank.example", 90).unwrap();
        let leaf_path = dir.path().join("leaf.pem");
        std::fs::write(&leaf_path, leaf.cert.to_pem().unwrap()).unwrap();
        if let Ok(out) = std::process::Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(dir.path().join(CERT_FILE))
            .arg(&leaf_path)
            .output()
        {
            let said = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{said}");
            assert!(said.contains("permitted subtree violation"), "{said}");
        }
    }

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
        let made = Ca::init(&ca_dir, false, None).unwrap();
        let mode = std::fs::metadata(ca_dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = Ca::load(&ca_dir).unwrap();
        assert_eq!(made.fingerprint(), loaded.fingerprint());
        // a second init refuses, and leaves the CA alone
        assert!(Ca::init(&ca_dir, false, None).is_err());
        assert_eq!(Ca::load(&ca_dir).unwrap().fingerprint(), made.fingerprint());
        let replaced = Ca::init(&ca_dir, true, None).unwrap();
        assert_ne!(replaced.fingerprint(), made.fingerprint());
    }

    #[test]
    fn a_readable_key_or_a_foreign_cert_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Ca::init(dir.path(), false, None).unwrap();
        let key = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Ca::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("readable by others"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let other = tempfile::tempdir().unwrap();
        Ca::init(other.path(), false, None).unwrap();
        std::fs::copy(other.path().join(CERT_FILE), dir.path().join(CERT_FILE)).unwrap();
        let e = Ca::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("does not belong"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(Ca::load(empty.path()), Err(CaError::Missing(_))));
    }

    #[test]
    fn leaves_verify_for_their_name_only_and_carry_server_extensions() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::init(dir.path(), false, None).unwrap();
        let leaf = ca.issue("api.openai.com", 90).unwrap();
        assert_eq!(
            verifies(&ca.cert, &leaf.cert, "api.openai.com"),
            X509VerifyResult::OK
        );
        assert_ne!(
            verifies(&ca.cert, &leaf.cert, "example.com"),
            X509VerifyResult::OK
        );
        let other = Ca::init(tempfile::tempdir().unwrap().path(), false, None).unwrap();
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
