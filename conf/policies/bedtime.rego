# No AI at night (local time). Settings (policies.data.bedtime): start_hour (21), end_hour (6),
# action ("block"; "alert" to only be told).
package yori.bedtime

import rego.v1

default start_hour := 21

start_hour := data.settings.bedtime.start_hour

default end_hour := 6

end_hour := data.settings.bedtime.end_hour

default action := "block"

action := data.settings.bedtime.action

# the window wraps past midnight when it starts later than it ends (21 -> 6)
in_bedtime if {
	start_hour > end_hour
	input.time.hour >= start_hour
}

in_bedtime if {
	start_hour > end_hour
	input.time.hour < end_hour
}

in_bedtime if {
	start_hour <= end_hour
	input.time.hour >= start_hour
	input.time.hour < end_hour
}

hh(h) := sprintf("0%d:00", [h]) if h < 10

hh(h) := sprintf("%d:00", [h]) if h >= 10

default decision := {"action": "allow", "reason": ""}

decision := {
	"action": action,
	"reason": sprintf("bedtime: no AI between %s and %s", [hh(start_hour), hh(end_hour)]),
} if in_bedtime
