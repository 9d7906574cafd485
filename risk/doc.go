// Package risk scores an action against the subject's own history: the
// devices, countries and networks its allowed requests came from, and
// where and when the last one was geolocated. It also flags anonymizing
// networks, bots and stale authentications, which need no history.
//
// An [Evaluator] is both a [runtimeid.RiskEvaluator] and a
// [runtimeid.Learner]: the engine calls [Evaluator.Assess] on every
// evaluation and [Evaluator.Learn] only after an [runtimeid.Allow], so
// a challenged or blocked attacker never becomes part of the baseline.
// Baselines live in a [Store]: [NewMemoryStore] for tests and small
// deployments, [NewLRUStore] to bound the number of subjects kept.
//
// # Findings
//
// Each finding has a stable code, exported as a Code constant, and a
// weight: the probability that the finding alone means an attack. The
// engine combines weights as 1 - Π(1 - w). The defaults, each of which
// [Weights] can change or turn off:
//
//	code                  default  when
//	first_seen            0.10     the subject has no baseline yet
//	new_device            0.25     device not among the known ones
//	new_country           0.35     country not among the known ones
//	new_asn               0.15     network (AS) not among the known ones
//	impossible_travel     0.90     faster than MaxSpeedKMH since the
//	                               last geolocated allowed request
//	anonymous_network     0.80     Tor exit
//	                      0.60     public or residential proxy, or
//	                               another anonymizer
//	                      0.50     VPN
//	                      0.40     hosting provider (data centre)
//	bot_user_agent        0.50     the user agent says it is a bot
//	stale_authentication  0.30     high-sensitivity action with an
//	                               auth_time older than StaleAfter, or
//	                               none at all
//
// With the engine's default thresholds (medium 0.3, high 0.7), a new
// device alone stays low, a new device in a new country is medium, and
// impossible travel or Tor alone is high.
//
// Why the anonymous network weights differ: Tor exits are rarely used
// for ordinary account access and often for abuse; many ordinary users
// run a commercial VPN; data-centre addresses are where agents, CI
// jobs and corporate egress proxies live, so they say least.
//
// # Cold start
//
// A subject with no baseline gets one first_seen finding instead of
// new_device, new_country and new_asn: on the first request everything
// is new, and reporting three findings would score every first login
// as medium risk. first_seen weighs little but lets a policy treat
// unknown subjects on sensitive actions with care, for example after a
// restart emptied a [MemoryStore] or an [LRUStore] evicted the subject.
// The other detectors apply from the first request.
//
// The new_* findings are made only when the signal is known: a request
// without a country never gets new_country, and one without any device
// information never gets new_device.
package risk
