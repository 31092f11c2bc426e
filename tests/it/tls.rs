//! HTTPS interception through the real binary: the local CA, per-name certificates, HTTP/1.1 and
//! h2, streaming, refusals, and the fail-safe start. curl plays the device: `--resolve` sends the
//! vendor's real name to YORI's TLS port on 127.0.0.1, `--cacert` is the CA a parent installed.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A TLS-enabled YORI routing all vendors to the mock, with its CA in `ca_dir`.
fn start_tls(mock: &Mock, ca_dir: &Path, tls_port: u16, extra: &str) -> Yori {
    Yori::start(&format!(
        "{}tls:\n  listen: 127.0.0.1:{tls_port}\n  ca_dir: {}\n{extra}",
        endpoints_to(&mock.url()),
        ca_dir.display()
    ))
}

/// `yori ca export` into a file, as a parent would copy it to a device.
fn export_ca(yori: &Yori, der: bool) -> PathBuf {
    let mut cmd = Command::new(BIN);
    cmd.arg("-c").arg(&yori.config).args(["ca", "export"]);
    if der {
        cmd.arg("--der");
    }
    let out = cmd.output().expect("yori ca export runs");
    assert!(
        out.status.success(),
        "ca export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = yori.dir.path().join(if der { "ca.der" } else { "ca.pem" });
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// A JSON chat through the TLS listener as `domain`, trusting `ca`: it must reach the mock.
fn chat_ok(domain: &str, port: u16, ca: &Path, vendor: &VendorCase) {
    let (code, out, err) = device_call(
        domain,
        port,
        vendor.path,
        Some(ca),
        &[
            "-H",
            "content-type: application/json",
            "--data-binary",
            &vendor.body("hi", false),
        ],
    );
    assert_eq!(code, 0, "{domain}: {err}");
    assert!(out.contains("hello"), "{domain}: {out}");
}

/// curl as a device calling `https://<domain>:<port><path>`; returns (exit code, body, stderr).
fn device_call(
    domain: &str,
    port: u16,
    path: &str,
    ca: Option<&Path>,
    extra: &[&str],
) -> (i32, String, String) {
    let resolve = format!("{domain}:{port}:127.0.0.1");
    let url = format!("https://{domain}:{port}{path}");
    let mut args: Vec<String> = vec![
        "--resolve".into(),
        resolve,
        "--max-time".into(),
        "20".into(),
    ];
    if let Some(ca) = ca {
        args.push("--cacert".into());
        args.push(ca.display().to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(url);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&refs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_over_tls_h1_and_h2_through_the_local_ca() {
    let mock = start_mock().await;
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_path = ca_dir.path().join("ca");
    let tls_port = free_port();
    let yori = start_tls(&mock, &ca_path, tls_port, "");
    assert!(
        yori.log().contains("local CA created"),
        "the start-up log says where the CA went:\n{}",
        yori.log()
    );
    let key_mode = std::fs::metadata(ca_path.join("ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        key_mode & 0o777,
        0o600,
        "the CA key is readable only by its owner"
    );
    let ca = export_ca(&yori, false);

    let mut sent = 0;
    for v in VENDORS.iter() {
        for (proto, flag) in [("1.1", "--http1.1"), ("2", "--http2")] {
            let body = v.body("what is 2+2?", false);
            let (code, out, err) = device_call(
                v.domain,
                tls_port,
                v.path,
                Some(&ca),
                &[
                    flag,
                    "-H",
                    "content-type: application/json",
                    "--data-binary",
                    &body,
                    "-w",
                    "\n%{http_code} %{http_version}",
                ],
            );
            assert_eq!(code, 0, "{} over HTTP/{proto}: curl failed: {err}", v.name);
            let (answer, status) = out.rsplit_once('\n').unwrap();
            assert_eq!(status, format!("200 {proto}"), "{}: {answer}", v.name);
            assert!(
                answer.contains("hello"),
                "{}: the vendor's answer: {answer}",
                v.name
            );
            sent += 1;
            let seen = mock.requests();
            assert_eq!(
                seen.len(),
                sent,
                "{}: one request reached the vendor",
                v.name
            );
            let r = seen.last().unwrap();
            assert_eq!(r.path, v.path, "{}: path unchanged (transparent)", v.name);
            assert_eq!(r.host, v.domain, "{}: Host is the vendor's name", v.name);
            assert_eq!(
                r.body,
                body.as_bytes(),
                "{}: identical bytes upstream",
                v.name
            );
        }
    }

    // streaming over TLS, both protocols: the events arrive as the vendor sends them
    for v in VENDORS.iter() {
        for flag in ["--http1.1", "--http2"] {
            let (code, out, err) = device_call(
                v.domain,
                tls_port,
                v.stream_path,
                Some(&ca),
                &[
                    flag,
                    "-N",
                    "-H",
                    "content-type: application/json",
                    "-H",
                    "x-mock-delay-ms: 150",
                    "-H",
                    "x-mock-events: 5",
                    "--data-binary",
                    &v.body("count to five", true),
                    "-w",
                    "\n%{time_starttransfer} %{time_total}",
                ],
            );
            assert_eq!(code, 0, "{} stream {flag}: {err}", v.name);
            let (events, times) = out.rsplit_once('\n').unwrap();
            assert!(
                events.matches("data:").count() >= 5,
                "{} stream {flag}: the events: {events}",
                v.name
            );
            let t: Vec<f64> = times.split(' ').map(|x| x.parse().unwrap()).collect();
            // the mock paces 5 events 150 ms apart: a buffering proxy would deliver them at once
            assert!(
                t[1] - t[0] >= 0.4,
                "{} stream {flag}: first byte at {} s, last at {} s: not streamed",
                v.name,
                t[0],
                t[1]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_no_sni_fronting_and_untrusting_clients_are_refused() {
    let mock = start_mock().await;
    let ca_dir = tempfile::tempdir().unwrap();
    let tls_port = free_port();
    let yori = start_tls(&mock, ca_dir.path(), tls_port, "");
    let ca = export_ca(&yori, false);
    let body = VENDORS[0].body("hi", false);
    let post = [
        "-H",
        "content-type: application/json",
        "--data-binary",
        &body,
    ];

    // a name that is not an enabled endpoint: no certificate, the handshake fails
    let (code, out, err) = device_call("www.example.com", tls_port, "/", Some(&ca), &post);
    assert_ne!(code, 0, "unknown SNI must fail the handshake: {out}");
    assert!(
        err.to_lowercase().contains("unrecognized name") || err.contains("alert"),
        "curl reports the TLS alert: {err}"
    );
    // no SNI at all (an IP address)
    let (code, _, err) = curl(&[
        "--cacert",
        &ca.display().to_string(),
        &format!("https://127.0.0.1:{tls_port}/v1/chat/completions"),
    ]);
    assert_ne!(code, 0, "a handshake without SNI is refused: {err}");
    // a device that has not installed the CA: verification fails (curl exit 60)
    let (code, _, err) = device_call(
        "api.openai.com",
        tls_port,
        "/v1/chat/completions",
        None,
        &post,
    );
    assert_eq!(
        code, 60,
        "the client rejects a certificate it cannot verify: {err}"
    );
    // an OpenAI connection asking for Anthropic's Host (domain fronting): 421, never forwarded
    let (code, out, err) = device_call(
        "api.openai.com",
        tls_port,
        "/v1/messages",
        Some(&ca),
        &[
            "-H",
            "host: api.anthropic.com",
            "--data-binary",
            &body,
            "-w",
            "\n%{http_code}",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("\n421"), "fronting is misdirected: {out}");
    assert!(
        out.contains("does not match the name this TLS connection"),
        "{out}"
    );
    assert!(
        mock.requests().is_empty(),
        "nothing refused reached the vendor"
    );

    let log = yori.log();
    assert!(
        log.contains("tls handshake refused reason=unknown_name sni=\"www.example.com\""),
        "{log}"
    );
    assert!(log.contains("reason=no_sni"), "{log}");
    let metrics = send(yori.metrics_port, "GET", "/metrics", &[], "")
        .await
        .text();
    assert!(
        metrics.contains("yori_tls_handshakes_refused_total{reason=\"unknown_name\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("yori_tls_handshakes_refused_total{reason=\"no_sni\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_survives_restart_and_is_served_at_ca_crt() {
    let mock = start_mock().await;
    let ca_dir = tempfile::tempdir().unwrap();
    let tls_port = free_port();
    let mut first = start_tls(&mock, ca_dir.path(), tls_port, "");
    let pem = std::fs::read(export_ca(&first, false)).unwrap();
    let der = std::fs::read(export_ca(&first, true)).unwrap();
    assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
    assert_eq!(der[0], 0x30, "DER is an ASN.1 sequence");

    // the admin side hands the same certificate to allowed clients
    let got = send(first.port, "GET", "/ca.crt", &[], "").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body.as_ref(), pem.as_slice());
    assert_eq!(
        got.headers["content-type"], "application/x-x509-ca-cert",
        "phones offer to install it"
    );
    let got = send(first.port, "GET", "/ca.crt?format=der", &[], "").await;
    assert_eq!(got.body.as_ref(), der.as_slice());

    first.signal(libc::SIGTERM);
    assert_eq!(first.wait_exit(Duration::from_secs(10)), Some(0));
    let saved = first.dir.path().join("ca.pem");
    let tls_port = free_port();
    let second = start_tls(&mock, ca_dir.path(), tls_port, "");
    assert!(
        !second.log().contains("local CA created"),
        "{}",
        second.log()
    );
    let again = std::fs::read(export_ca(&second, false)).unwrap();
    assert_eq!(again, pem, "the same CA after a restart");
    // a device that installed the CA before the restart still trusts the new leaf certificates
    chat_ok("api.mistral.ai", tls_port, &saved, &VENDORS[3]);
}

#[test]
fn misconfigured_tls_refuses_to_start_and_never_serves_plain_http_instead() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let (port, tls_port) = (free_port(), free_port());
    let conf = write_conf(
        dir.path(),
        port,
        &format!(
            "  listen: 127.0.0.1:{tls_port}\n  ca_dir: {}\n",
            ca_dir.display()
        ),
    );
    let ca_verb = |verb: &str| {
        Command::new(BIN)
            .args(["ca", verb])
            .env("YORI_CONFIG", &conf)
            .output()
            .unwrap()
    };
    let init = ca_verb("init");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let text = String::from_utf8_lossy(&init.stdout);
    assert!(text.contains("SHA-256 fingerprint"), "{text}");
    // a second init leaves the CA alone and says so
    let again = ca_verb("init");
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // a key others can read: refused, with the fix in the message
    let key = ca_dir.join("ca.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_briefly(&conf);
    assert_eq!(out.0, Some(2), "{}", out.1);
    assert!(out.1.contains("chmod 600"), "{}", out.1);
    for p in [port, tls_port] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", p)).is_err(),
            "nothing listens on {p}: no plain HTTP instead of TLS"
        );
    }
    let check = Command::new(BIN)
        .args(["-c", conf.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2), "yori check sees it too");
    // export needs only the certificate
    assert!(ca_verb("export").status.success());

    // a supplied certificate that does not cover the enabled names
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ca = yori::tls::ca::Ca::load(&ca_dir).unwrap();
    let leaf = ca.issue("api.openai.com", 30).unwrap();
    let (cert_path, key_path) = (dir.path().join("leaf.pem"), dir.path().join("leaf.key"));
    std::fs::write(&cert_path, leaf.cert.to_pem().unwrap()).unwrap();
    std::fs::write(&key_path, leaf.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let conf = write_conf(
        dir.path(),
        port,
        &format!(
            "  listen: 127.0.0.1:{tls_port}\n  cert: {}\n  key: {}\n",
            cert_path.display(),
            key_path.display()
        ),
    );
    let out = run_briefly(&conf);
    assert_eq!(out.0, Some(2), "{}", out.1);
    assert!(
        out.1
            .contains("does not cover the enabled endpoint name(s) api.anthropic.com"),
        "{}",
        out.1
    );

    // TLS on the plain port: a config error, not a silent fallback
    let conf = write_conf(
        dir.path(),
        port,
        &format!(
            "  listen: 127.0.0.1:{port}\n  ca_dir: {}\n",
            ca_dir.display()
        ),
    );
    let out = run_briefly(&conf);
    assert_eq!(out.0, Some(2), "{}", out.1);
    assert!(out.1.contains("tls.listen"), "{}", out.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_supplied_certificate_is_presented_instead_of_the_local_ca() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    // the household's own CA and a certificate from it for the one enabled vendor
    let own = yori::tls::ca::Ca::init(&dir.path().join("own-ca"), false, None).unwrap();
    let leaf = own.issue("api.openai.com", 30).unwrap();
    let (cert_path, key_path) = (dir.path().join("leaf.pem"), dir.path().join("leaf.key"));
    std::fs::write(&cert_path, leaf.cert.to_pem().unwrap()).unwrap();
    std::fs::write(&key_path, leaf.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let own_ca = dir.path().join("own-ca/ca.crt");
    let tls_port = free_port();
    let yori = Yori::start(&format!(
        "endpoints:\n  - vendor: openai\n    upstream: {}\ntls:\n  listen: 127.0.0.1:{tls_port}\n  ca_dir: {}/unused\n  cert: {}\n  key: {}\n",
        mock.url(),
        dir.path().display(),
        cert_path.display(),
        key_path.display()
    ));
    chat_ok("api.openai.com", tls_port, &own_ca, &VENDORS[0]);
    assert!(
        !dir.path().join("unused").exists(),
        "no local CA is made when the user supplies a certificate"
    );
    let got = send(yori.port, "GET", "/ca.crt", &[], "").await;
    assert_eq!(got.status, 404, "no local CA to hand out: {}", got.text());
}

/// A config listening on `port` with the `tls:` section's lines `tls`.
fn write_conf(dir: &Path, port: u16, tls: &str) -> PathBuf {
    let path = dir.join("yori.conf");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:{port}\nmetrics:\n  listen: 127.0.0.1:{}\naudit:\n  database: {d}/audit.db\ntls:\n{tls}server:\n  pid_file: {d}/yori.pid\n  upgrade_sock: {d}/up.sock\n  grace_period_seconds: 1\n",
            free_port(),
            d = dir.display()
        ),
    )
    .unwrap();
    path
}

/// Runs `yori -c conf` and returns its exit code and output if it exits within 10 s (a started
/// server is stopped and reported as `None`).
fn run_briefly(conf: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .arg("-c")
        .arg(conf)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (out.status.code(), text);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
    (None, "still running after 10 s".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_node_trust_the_leaf_certificates_through_the_exported_ca() {
    let mock = start_mock().await;
    let ca_dir = tempfile::tempdir().unwrap();
    let tls_port = free_port();
    let yori = start_tls(&mock, ca_dir.path(), tls_port, "");
    let ca = export_ca(&yori, false);
    // Python's ssl with its default (strict) verification, SNI and hostname check
    let python = format!(
        r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile={ca:?})
if hasattr(ssl, "VERIFY_X509_STRICT"):
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {tls_port})), server_hostname="api.anthropic.com")
s.sendall(b"GET /v1/models HTTP/1.1\r\nhost: api.anthropic.com\r\nconnection: close\r\n\r\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(s.version(), data.split(b"\r\n")[0].decode())
"#,
        ca = ca.display().to_string()
    );
    match Command::new("python3").args(["-c", &python]).output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "python: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(text.contains("HTTP/1.1 200"), "python: {text}");
        }
        Err(e) => eprintln!("python3 not available, skipped: {e}"),
    }
    // Node's tls with the CA given as `ca` (as NODE_EXTRA_CA_CERTS would add it)
    let node = format!(
        r#"
const tls = require("tls"), fs = require("fs");
const s = tls.connect({{host: "127.0.0.1", port: {tls_port}, servername: "api.mistral.ai", ca: fs.readFileSync({ca:?}), ALPNProtocols: ["h2", "http/1.1"]}}, () => {{
  console.log(s.authorized ? "authorized" : "unauthorized " + s.authorizationError, s.alpnProtocol);
  s.end();
}});
s.on("error", e => {{ console.log("error " + e.message); process.exit(1); }});
"#,
        ca = ca.display().to_string()
    );
    match Command::new("node").args(["-e", &node]).output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "node: {text}");
            assert_eq!(text.trim(), "authorized h2", "node: {text}");
        }
        Err(e) => eprintln!("node not available, skipped: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_ca_is_name_constrained_and_an_added_endpoint_says_how_to_reinstall() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let tls_port = free_port();
    let yori = start_tls(&mock, &ca_dir, tls_port, "");
    let ca = yori::tls::ca::Ca::certificate(&ca_dir).unwrap();
    let text = String::from_utf8(ca.to_text().unwrap()).unwrap();
    assert!(text.contains("X509v3 Name Constraints: critical"), "{text}");
    for d in [
        "api.openai.com",
        "api.anthropic.com",
        "generativelanguage.googleapis.com",
        "api.mistral.ai",
    ] {
        assert!(text.contains(&format!("DNS:{d}")), "{d}: {text}");
    }
    // devices still trust every vendor's leaf under the constrained CA
    let exported = export_ca(&yori, false);
    chat_ok("api.openai.com", tls_port, &exported, &VENDORS[0]);
    drop(yori);

    // an endpoint added later is outside the constraints: the start log says what to do
    let extra = "  - vendor: openai_compatible\n    name: ollama\n    domain: llm.home.lan\n    upstream: http://127.0.0.1:9\n";
    let yori = Yori::start(&format!(
        "{}{extra}tls:\n  listen: 127.0.0.1:{tls_port}\n  ca_dir: {}\n",
        endpoints_to(&mock.url()),
        ca_dir.display()
    ));
    let log = yori.log();
    assert!(
        log.contains("devices will refuse the certificate for llm.home.lan")
            && log.contains("yori ca init --force"),
        "{log}"
    );
    drop(yori);

    // the documented opt-out makes an unconstrained CA
    let open_dir = dir.path().join("open-ca");
    let conf = write_conf(
        dir.path(),
        free_port(),
        &format!(
            "  listen: 127.0.0.1:{}\n  ca_dir: {}\n  name_constraints: false\n",
            free_port(),
            open_dir.display()
        ),
    );
    let out = Command::new(BIN)
        .args(["ca", "init"])
        .env("YORI_CONFIG", &conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let open = yori::tls::ca::Ca::certificate(&open_dir).unwrap();
    let text = String::from_utf8(open.to_text().unwrap()).unwrap();
    assert!(!text.contains("Name Constraints"), "{text}");
}
