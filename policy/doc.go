// Package policy is the standard [runtimeid.PolicyEngine]: rules written
// in CEL (https://cel.dev), loaded from a YAML or JSON file with [Load] or
// [Parse], or built in Go with [New]. [Default] is a documented starting
// policy; its source is [DefaultYAML].
//
// Every rule runs on every request. The most severe outcome of the
// enforcing rules that match wins (block, then challenge, then allow);
// among equals, the first rule in order, whose reason and step-up make the
// decision. Report-only rules are recorded and change nothing. When no
// enforcing rule matches, the outcome is [Spec.Default], allow unless
// stated, with rule and reason "default".
//
// Expressions are compiled and type-checked once, when the policy loads:
// a syntax error, an unknown variable or field, or a condition that is not
// a bool is a load error naming the file, line, rule and position. At
// request time each rule may spend at most [RuleCostLimit]; a rule that
// fails makes [Policy.Decide] return an error, and the engine fails the
// request closed.
//
// # Variables
//
// Conditions see five variables. Object fields are typed; an absent string
// reads as "", a list as [], a map as {} and a bool as false, while an
// absent time or duration fails the rule: test it first with has() or the
// has_auth_time fields. REFERENCE.md, next to this file, has the same
// tables with more words.
//
//	identity   the verified token; all empty when authentication is skipped
//	  sub, sid, iss, jti, client_id, acr       string
//	  aud, scopes, amr                         list(string)
//	  auth_time, iat, exp                      timestamp, absent when unknown
//	  has_auth_time, delegated                 bool
//	  actor {sub, client_id, iss}              object, all "" when none
//	  claims                                   map(string, dyn)
//	action     what is being done
//	  name, method, route                      string
//	  sensitivity                              "low", "medium" or "high"
//	  attributes                               map(string, dyn)
//	signals    facts about this moment
//	  client_ip                                string, "" when unknown
//	  network {country, city, as_org, isp}     string
//	  network.asn                              int
//	  network {anonymous, vpn, tor, hosting,
//	    public_proxy, residential_proxy,
//	    has_location}                          bool
//	  device {browser, browser_version, os,
//	    os_version, type, id, user_agent}      string
//	  device.bot                               bool
//	  session.token_age                        duration
//	  session.since_auth                       duration, absent without auth_time
//	  session.has_auth_time                    bool
//	  custom                                   map(string, dyn)
//	risk       the assessment
//	  score                                    double in [0,1]
//	  level                                    "low", "medium" or "high"
//	  findings                                 list(string) of codes
//	  weights                                  map(string, double), code to weight
//	now        timestamp, when the evaluation started
//
// # File format
//
//	version: 1
//	default: allow
//	rules:
//	  - name: stepup-high-stale
//	    description: High-sensitivity actions need a recent login.
//	    when: >-
//	      action.sensitivity == "high" &&
//	      (!signals.session.has_auth_time ||
//	       signals.session.since_auth > duration("5m"))
//	    outcome: challenge
//	    reason: stale_authentication
//	    step_up: { acr_values: ["urn:example:mfa"], max_age: 5m }
//	    report_only: false
//
// Unknown fields are errors. max_age is a Go duration or whole seconds;
// step_up is allowed on challenge rules only.
package policy
