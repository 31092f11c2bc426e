//! The mode gate: the one place that turns a verdict into what happens to the request.
//!
//! observe: verdicts are recorded, nothing is alerted or blocked. advisory: alert and block
//! verdicts raise alerts, nothing is blocked. enforce: block verdicts are blocked, except for
//! allowlisted devices and while `enforcement.disabled` is set (both recorded in the reason).

use super::{Action, Verdict};
use crate::kinds::Mode;

#[derive(Debug, Clone, PartialEq)]
pub struct Gated {
    pub verdict: Verdict,
    pub block: bool,
    pub alert: bool,
    /// Why a block verdict was not enforced, for the audit reason.
    pub exemption: Option<&'static str>,
    /// The parent's approval that let this request past its block: id and end.
    pub approval: Option<(i64, String)>,
}

impl Gated {
    /// The verdict of a policy task that failed: allowed, with the failure as its reason.
    pub fn failed(why: String) -> Gated {
        let mut verdict = Verdict::allow();
        verdict.errors.push(why);
        Gated {
            verdict,
            block: false,
            alert: false,
            exemption: None,
            approval: None,
        }
    }

    /// Lets an enforced block through under a parent's approval (recorded in the reason).
    pub fn approve(&mut self, id: i64, until: String) {
        if self.block {
            self.block = false;
            self.alert = true;
            self.exemption = Some("approved by a parent");
            self.approval = Some((id, until));
        }
    }

    /// The reason as recorded: the policy's, an exemption note, and evaluation failures.
    pub fn recorded_reason(&self) -> Option<String> {
        let mut parts: Vec<String> = self.verdict.reason.iter().cloned().collect();
        if let Some(e) = self.exemption {
            match &self.approval {
                Some((id, until)) => {
                    parts.push(format!("not blocked: {e} (approval #{id} until {until})"));
                }
                None => parts.push(format!("not blocked: {e}")),
            }
        }
        if !self.verdict.errors.is_empty() {
            parts.push(format!(
                "policy evaluation failed, allowed: {}",
                self.verdict.errors.join("; ")
            ));
        }
        (!parts.is_empty()).then(|| parts.join(" | "))
    }
}

pub fn gate(mode: Mode, verdict: Verdict, allowlisted: bool, disabled: bool) -> Gated {
    let action = verdict.action;
    let (block, alert, exemption) = match mode {
        Mode::Observe => (false, false, None),
        Mode::Advisory => (false, action >= Action::Alert, None),
        Mode::Enforce => match action {
            Action::Block if allowlisted => (false, true, Some("allowlisted device")),
            Action::Block if disabled => (false, true, Some("enforcement disabled")),
            Action::Block => (true, false, None),
            Action::Alert => (false, true, None),
            Action::Allow => (false, false, None),
        },
    };
    Gated {
        verdict,
        block,
        alert,
        exemption,
        approval: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(action: Action) -> Verdict {
        Verdict {
            action,
            policy: Some("bedtime".into()),
            reason: Some("late".into()),
            errors: vec![],
        }
    }

    #[test]
    fn each_mode_does_what_it_says() {
        let g = gate(Mode::Observe, v(Action::Block), false, false);
        assert_eq!((g.block, g.alert), (false, false));
        let g = gate(Mode::Advisory, v(Action::Block), false, false);
        assert_eq!((g.block, g.alert), (false, true));
        let g = gate(Mode::Enforce, v(Action::Block), false, false);
        assert_eq!((g.block, g.alert), (true, false));
        let g = gate(Mode::Enforce, v(Action::Alert), false, false);
        assert_eq!((g.block, g.alert), (false, true));
    }

    #[test]
    fn allowlist_and_emergency_switch_are_recorded() {
        let g = gate(Mode::Enforce, v(Action::Block), true, false);
        assert!(!g.block);
        assert_eq!(
            g.recorded_reason().as_deref(),
            Some("late | not blocked: allowlisted device")
        );
        let g = gate(Mode::Enforce, v(Action::Block), false, true);
        assert_eq!(
            g.recorded_reason().as_deref(),
            Some("late | not blocked: enforcement disabled")
        );
    }
}
