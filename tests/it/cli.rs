//! `yori check`: exit codes and messages through the real binary.

use crate::common::BIN;
use std::process::Command;

fn check(path: &std::path::Path) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(path)
        .output()
        .expect("run yori");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn shipped_example_and_demo_configs_are_valid() {
    for f in ["examples/yori.conf.example", "examples/demo.yaml"] {
        let (code, out, err) = check(std::path::Path::new(f));
        assert_eq!(code, Some(0), "{f}: {err}");
        assert!(out.contains("configuration ok"), "{out}");
    }
}

#[test]
fn router_config_has_tls_on_8443_and_the_briefs_paths() {
    let path = std::path::Path::new("conf/yori.conf");
    let c = yori::config::load(Some(path)).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.tls.enabled);
    assert_eq!(c.tls.listen.to_string(), "0.0.0.0:8443");
    assert_eq!(c.tls.ca_dir, std::path::Path::new("/usr/local/etc/yori/ca"));
    assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(
        c.audit.database,
        std::path::Path::new("/var/db/yori/audit.db")
    );
    assert_eq!(c.metrics_listen.to_string(), "127.0.0.1:9184");
    assert_eq!(c.server.threads, 1);
    assert_eq!(c.server.pid_file, std::path::Path::new("/var/run/yori.pid"));
    assert!(
        c.server.grace_period_seconds <= 10,
        "small grace period for a router"
    );
    // `yori check` accepts it (and says the CA will be made at first start, when it is missing)
    let (code, out, err) = check(path);
    assert_eq!(code, Some(0), "{out}{err}");
}

#[test]
fn bad_config_lists_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.conf");
    std::fs::write(
        &f,
        "mode: enforse\nlisten: 8443\naudit_log: x\nlimits:\n  max_body_bytes: -1\n",
    )
    .unwrap();
    let (code, _, err) = check(&f);
    assert_eq!(code, Some(2));
    assert!(err.contains("4 problem(s)"), "{err}");
    assert!(err.contains("mode: unknown mode `enforse`"), "{err}");
    assert!(
        err.contains("listen: expected a string, found the number 8443"),
        "{err}"
    );
    assert!(err.contains("audit_log: unknown key"), "{err}");
    assert!(
        err.contains("limits.max_body_bytes: expected a whole number, found the number -1"),
        "{err}"
    );
}

#[test]
fn missing_config_file_is_exit_2_and_run_refuses_too() {
    let (code, _, err) = check(std::path::Path::new("/nonexistent/yori.conf"));
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot read /nonexistent/yori.conf"), "{err}");
    let out = Command::new(BIN)
        .args(["-c", "/nonexistent/yori.conf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn yori_config_env_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("env.conf");
    std::fs::write(&f, "mode: nope\n").unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .env("YORI_CONFIG", &f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("env.conf"));
}
