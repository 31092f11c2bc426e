# Alert when a prompt carries personal data or secrets (YORI's detectors: email, phone, card,
# ssn, iban, secret). Settings (policies.data.privacy): action ("alert"), kinds (all).
package yori.privacy

import rego.v1

default watched := ["email", "phone", "card", "ssn", "iban", "secret"]

watched := data.settings.privacy.kinds

default action := "alert"

action := data.settings.privacy.action

found contains k if {
	some k in input.request.sensitive_kinds
	k in watched
}

default decision := {"action": "allow", "reason": ""}

decision := {
	"action": action,
	"reason": sprintf("privacy: the prompt contains %s", [concat(", ", sort([k | some k in found]))]),
} if count(found) > 0
