# The ten rules of testdata/bench/policy10.yaml in Rego, for the
# jwtauth + OPA contender. Block beats challenge beats allow, as in
# runtimeid's policy package.
package runtimeid

default outcome := "allow"

outcome := "block" if count(block) > 0

else := "challenge" if count(challenge) > 0

anonymous if input.signals.network.anonymous

anonymous if "anonymous_network" in input.risk.findings

block contains "anonymous_network" if {
	input.action.sensitivity == "high"
	anonymous
}

block contains "impossible_travel" if "impossible_travel" in input.risk.findings

block contains "bot" if {
	input.signals.device.bot
	input.action.sensitivity != "low"
}

challenge contains "new_device" if {
	input.action.sensitivity == "high"
	"new_device" in input.risk.findings
}

stale if not input.signals.session.has_auth_time

stale if input.signals.session.since_auth_seconds > 300

challenge contains "stale_authentication" if {
	input.action.sensitivity == "high"
	stale
}

challenge contains "high_risk" if input.risk.level == "high"

block contains "insufficient_scope" if {
	input.action.method == "GET"
	not "orders:read" in input.identity.scopes
}

block contains "embargoed_country" if {
	input.signals.network.country in {"CU", "IR", "KP", "SY"}
}

block contains "unknown_client" if {
	input.identity.client_id != ""
	not input.identity.client_id in {"web", "mobile"}
}

challenge contains "delegated_write" if {
	input.identity.delegated
	input.action.method != "GET"
}
