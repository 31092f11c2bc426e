# Alert when a prompt looks like homework being handed to the AI. Settings
# (policies.data.homework): keywords (lowercase phrases), action ("alert").
package yori.homework

import rego.v1

default keywords := [
	"homework", "my essay", "write an essay", "assignment", "worksheet", "due tomorrow",
	"solve this equation", "answer these questions", "for my class", "book report",
]

keywords := data.settings.homework.keywords

default action := "alert"

action := data.settings.homework.action

prompt := lower(input.request.prompt)

matched contains k if {
	some k in keywords
	contains(prompt, k)
}

default decision := {"action": "allow", "reason": ""}

decision := {
	"action": action,
	"reason": sprintf("homework: the prompt mentions %s", [concat(", ", sort([k | some k in matched]))]),
} if count(matched) > 0
