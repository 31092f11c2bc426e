//! `yori check`: exit codes and messages through the real binary.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_yori");

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
