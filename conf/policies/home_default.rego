# Allow everything: the household's baseline. Every policy file declares `package yori.<name>`
# and a rule `decision` = {"action": "allow" | "alert" | "block", "reason": "..."}.
package yori.home_default

import rego.v1

decision := {"action": "allow", "reason": "home default: allowed"}
