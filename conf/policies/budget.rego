# Tell the parents when one device's AI calls cost more than max_cost_per_day (US dollars, 2) in
# a day, or max_cost_per_month (20) in a month. Costs come from the price table
# (conf/pricing.yaml, `pricing:` in the config); calls of unpriced models add nothing.
# Settings (policies.data.budget): max_cost_per_day, max_cost_per_month, action ("alert").
package yori.budget

import rego.v1

default max_day := 2.0

max_day := data.settings.budget.max_cost_per_day

default max_month := 20.0

max_month := data.settings.budget.max_cost_per_month

default action := "alert"

action := data.settings.budget.action

default decision := {"action": "allow", "reason": ""}

decision := {
	"action": action,
	"reason": sprintf("budget: %s spent $%.2f today (limit $%.2f)", [who, input.usage.cost_today, max_day]),
} if input.usage.cost_today > max_day

else := {
	"action": action,
	"reason": sprintf("budget: %s spent $%.2f this month (limit $%.2f)", [who, input.usage.cost_month, max_month]),
} if input.usage.cost_month > max_month

default who := "this device"

who := input.client.device if input.client.device != null
