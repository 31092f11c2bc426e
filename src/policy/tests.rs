//! The shipped policies over fixture inputs.

use super::*;
use serde_json::json;

fn shipped() -> PolicySet {
    PolicySet::load(&Source::BuiltIn, None, &json!({}))
        .unwrap_or_else(|e| panic!("shipped policies compile: {e:?}"))
}

fn fixture(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/tests/fixtures/policy/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn input(hour: u32, prompt: &str, kinds: &[&str], requests_today: u64) -> Value {
    Value::from(json!({
        "request": {"vendor": "openai", "endpoint": "api.openai.com", "method": "POST", "path": "/v1/chat/completions",
                    "model": "gpt-4o", "stream": false, "prompt": prompt, "prompt_chars": prompt.chars().count(),
                    "message_count": 2, "contains_sensitive": !kinds.is_empty(), "sensitive_kinds": kinds},
        "client": {"ip": "192.168.1.23", "device": "kids-laptop"},
        "time": {"iso": "2026-12-01T00:00:00Z", "date": "2026-12-01", "hour": hour, "minute": 5, "weekday": "tuesday"},
        "usage": {"requests_today": requests_today, "requests_last_hour": 0, "tokens_today": 0},
        "mode": "enforce"
    }))
}

#[test]
fn all_six_compile_in_file_order() {
    assert_eq!(
        shipped().names(),
        [
            "home_default",
            "bedtime",
            "high_usage",
            "budget",
            "homework",
            "privacy"
        ]
    );
}

#[test]
fn bedtime_blocks_from_21_to_6_local() {
    let p = shipped();
    for (hour, action) in [
        (20, Action::Allow),
        (21, Action::Block),
        (23, Action::Block),
        (0, Action::Block),
        (5, Action::Block),
        (6, Action::Allow),
        (12, Action::Allow),
    ] {
        let v = p.evaluate(&input(hour, "what is a cloud?", &[], 0), Some("bedtime"));
        assert_eq!(v.action, action, "hour {hour}");
    }
    let v = p.evaluate(&input(22, "hi", &[], 0), Some("bedtime"));
    assert_eq!(
        v.reason.as_deref(),
        Some("bedtime: no AI between 21:00 and 06:00")
    );
}

#[test]
fn bedtime_hours_come_from_policy_data() {
    let p = PolicySet::load(
        &Source::BuiltIn,
        Some(&["bedtime".into()]),
        &json!({"bedtime": {"start_hour": 8, "end_hour": 12, "action": "alert"}}),
    )
    .unwrap();
    assert_eq!(
        p.evaluate(&input(9, "x", &[], 0), None).action,
        Action::Alert
    );
    assert_eq!(
        p.evaluate(&input(22, "x", &[], 0), None).action,
        Action::Allow
    );
}

#[test]
fn high_usage_alerts_past_fifty_a_day() {
    let p = shipped();
    assert_eq!(
        p.evaluate(&input(12, "x", &[], 49), Some("high_usage"))
            .action,
        Action::Allow,
        "the 50th request is fine"
    );
    let v = p.evaluate(&input(12, "x", &[], 50), Some("high_usage"));
    assert_eq!(v.action, Action::Alert);
    assert_eq!(
        v.reason.as_deref(),
        Some("high usage: 51 requests today from kids-laptop (limit 50)")
    );
}

#[test]
fn budget_alerts_past_two_dollars_a_day_or_twenty_a_month() {
    let p = shipped();
    let with_cost = |today: f64, month: f64| {
        let mut doc = serde_json::to_value(input(12, "x", &[], 1)).unwrap();
        doc["usage"]["cost_today"] = json!(today);
        doc["usage"]["cost_month"] = json!(month);
        Value::from(doc)
    };
    assert_eq!(
        p.evaluate(&with_cost(1.99, 10.0), Some("budget")).action,
        Action::Allow
    );
    let v = p.evaluate(&with_cost(2.5, 10.0), Some("budget"));
    assert_eq!(v.action, Action::Alert);
    assert_eq!(
        v.reason.as_deref(),
        Some("budget: kids-laptop spent $2.50 today (limit $2.00)")
    );
    let v = p.evaluate(&with_cost(0.1, 20.5), Some("budget"));
    assert_eq!(
        v.reason.as_deref(),
        Some("budget: kids-laptop spent $20.50 this month (limit $20.00)")
    );
    // without cost figures (an older input) the rule says nothing
    assert_eq!(
        p.evaluate(&input(12, "x", &[], 1), Some("budget")).action,
        Action::Allow
    );
}

#[test]
fn homework_keywords_match_case_insensitively_across_message_parts() {
    let p = shipped();
    // the prompt of a multi-part message arrives joined by newlines
    let v = p.evaluate(
        &input(
            12,
            "Part one of the question.\nHelp with my HOMEWORK worksheet",
            &[],
            0,
        ),
        Some("homework"),
    );
    assert_eq!(v.action, Action::Alert);
    assert_eq!(
        v.reason.as_deref(),
        Some("homework: the prompt mentions homework, worksheet")
    );
    assert_eq!(
        p.evaluate(
            &input(12, "how do volcanoes work", &[], 0),
            Some("homework")
        )
        .action,
        Action::Allow
    );
}

#[test]
fn privacy_alerts_on_detected_kinds() {
    let p = shipped();
    let v = p.evaluate(&input(12, "x", &["email", "card"], 0), Some("privacy"));
    assert_eq!(
        (v.action, v.reason.as_deref()),
        (
            Action::Alert,
            Some("privacy: the prompt contains card, email")
        )
    );
    assert_eq!(
        p.evaluate(&input(12, "x", &[], 0), Some("privacy")).action,
        Action::Allow
    );
}

#[test]
fn most_severe_wins_with_its_policy_and_reason() {
    let p = shipped();
    let v = p.evaluate(&Value::from(fixture("homework_at_bedtime.json")), None);
    assert_eq!(
        (v.action, v.policy.as_deref()),
        (Action::Block, Some("bedtime"))
    );
    let v = p.evaluate(&Value::from(fixture("afternoon_card_number.json")), None);
    assert_eq!(
        (v.action, v.policy.as_deref()),
        (Action::Alert, Some("high_usage")),
        "first alert in file order"
    );
    let v = p.evaluate(&input(12, "what is a cloud?", &[], 0), None);
    assert_eq!(
        (v.action, v.policy.as_deref()),
        (Action::Allow, Some("home_default"))
    );
}

#[test]
fn compile_errors_name_file_and_line_and_bad_packages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.rego"),
        "package yori.broken\nimport rego.v1\n\ndecision := {\"action\": \"allow\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("misnamed.rego"), "package yori.other\nimport rego.v1\ndecision := {\"action\": \"allow\", \"reason\": \"\"}\n").unwrap();
    let errs = PolicySet::load(
        &Source::Directory(dir.path().to_path_buf()),
        None,
        &json!({}),
    )
    .err()
    .expect("errors");
    let errs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("broken.rego:") && e.contains(":4:") || e.contains("broken.rego:5")), "{errs:?}");
    assert!(
        errs.iter()
            .any(|e| e.contains("misnamed.rego: declares `package yori.other`")),
        "{errs:?}"
    );
}

#[test]
fn evaluation_errors_fail_open_and_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad_action.rego"), "package yori.bad_action\nimport rego.v1\ndecision := {\"action\": \"explode\", \"reason\": \"x\"}\n").unwrap();
    let p = PolicySet::load(
        &Source::Directory(dir.path().to_path_buf()),
        None,
        &json!({}),
    )
    .unwrap();
    let v = p.evaluate(&input(12, "x", &[], 0), None);
    assert_eq!(v.action, Action::Allow);
    assert_eq!(v.errors.len(), 1);
    assert!(v.errors[0].contains("bad_action"), "{:?}", v.errors);
}

#[test]
fn the_vm_and_the_interpreter_agree_on_every_shipped_policy() {
    let settings = json!({"bedtime": {"start_hour": 22, "end_hour": 7, "action": "alert"},
                          "homework": {"keywords": ["essay", "worksheet"]}});
    for data in [json!({}), settings] {
        let set = PolicySet::load(&Source::BuiltIn, None, &data).unwrap();
        for p in &set.policies {
            assert!(p.vm.is_some(), "{} runs on the VM", p.name);
        }
        for hour in [0, 6, 7, 12, 21, 22, 23] {
            for prompt in [
                "what is a cloud?",
                "my homework: write an essay",
                "",
                "WORKSHEET due tomorrow",
            ] {
                for (kinds, used) in [(&[][..], 0), (&["email", "card"][..], 500)] {
                    let doc = input(hour, prompt, kinds, used);
                    for p in &set.policies {
                        let vm = p.vm.as_ref().unwrap().eval(&doc).unwrap();
                        let interpreted = p.interpret(&doc).unwrap();
                        assert_eq!(
                            vm, interpreted,
                            "{} at {hour} on {prompt:?} {kinds:?}",
                            p.name
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn a_runaway_policy_is_an_error_that_allows_not_a_stuck_proxy() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("spin.rego"),
        "package yori.spin\nimport rego.v1\nn := numbers.range(1, 5000000)\ndecision := {\"action\": \"block\", \"reason\": \"x\"} if count([x | some x in n; x > 0]) > 0\n",
    )
    .unwrap();
    let set = PolicySet::load(&Source::Directory(dir.path().into()), None, &json!({})).unwrap();
    let v = set.evaluate(&input(12, "hi", &[], 0), None);
    assert_eq!(v.action, Action::Allow);
    assert_eq!(v.errors.len(), 1, "{v:?}");
}

#[test]
fn shortcuts_never_change_a_decision() {
    let set = shipped();
    let shortcut = |name: &str| match &set
        .policies
        .iter()
        .find(|p| p.name == name)
        .unwrap()
        .shortcut
    {
        Shortcut::None => "none",
        Shortcut::Constant(_) => "constant",
        Shortcut::Memo(_) => "memo",
    };
    assert_eq!(shortcut("home_default"), "constant");
    assert_eq!(shortcut("bedtime"), "memo");
    assert_eq!(shortcut("homework"), "memo");
    let long = "my homework: ".repeat(20);
    for round in 0..2 {
        for hour in [0, 12, 21, 23] {
            for prompt in ["hi", "my homework please", long.as_str()] {
                for (kinds, used) in [(&[][..], 0), (&["email"][..], 60)] {
                    let doc = input(hour, prompt, kinds, used);
                    for p in &set.policies {
                        assert_eq!(
                            p.decide(&doc).unwrap(),
                            p.run(&doc).unwrap(),
                            "{} round {round} at {hour} on {prompt:?}",
                            p.name
                        );
                    }
                }
            }
        }
    }
    // remembered: bedtime saw 4 hours; the long prompt is never a key
    let Shortcut::Memo(m) = &set
        .policies
        .iter()
        .find(|p| p.name == "homework")
        .unwrap()
        .shortcut
    else {
        panic!()
    };
    assert_eq!(
        m.lock().unwrap().len(),
        2,
        "only the short prompts are remembered"
    );
}

#[test]
fn a_policy_that_asks_the_clock_is_never_remembered() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("clocky.rego"),
        "package yori.clocky\nimport rego.v1\ndecision := {\"action\": \"allow\", \"reason\": sprintf(\"%d\", [time.now_ns()])} if input.time.hour > 0\n",
    )
    .unwrap();
    let set = PolicySet::load(&Source::Directory(dir.path().into()), None, &json!({})).unwrap();
    assert!(matches!(set.policies[0].shortcut, Shortcut::None));
}
