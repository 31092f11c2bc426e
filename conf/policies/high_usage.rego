# Tell the parents when one device makes more than max_requests_per_day (50) calls in a day.
# Settings (policies.data.high_usage): max_requests_per_day, action ("alert").
package yori.high_usage

import rego.v1

default max_requests := 50

max_requests := data.settings.high_usage.max_requests_per_day

default action := "alert"

action := data.settings.high_usage.action

default decision := {"action": "allow", "reason": ""}

# requests_today counts earlier requests, so this one is number requests_today + 1
decision := {
	"action": action,
	"reason": sprintf("high usage: %d requests today from %s (limit %d)", [input.usage.requests_today + 1, who, max_requests]),
} if input.usage.requests_today + 1 > max_requests

default who := "this device"

who := input.client.device if input.client.device != null
