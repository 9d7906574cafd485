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
//
// The [Evaluator] also reports unusual_hour (weight 0.30 times the
// confidence n/(n+h), n learned requests, h = 20 by default) when no
// learned request fell within an hour of this one's hour of the week
// nor of its hour of the day; [Profile.Hours] is the 336-byte
// hour-of-week histogram it reads.
//
// # Sessions and bursts
//
// A [SessionEvaluator] keeps the latest allowed use of each session
// (sid) and token (jti), bounded by an LRU, and decayed request counts
// per subject and per client address:
//
//	code                          default  when
//	session_ip_change             0.10     same sid, new address, same AS
//	                              0.40     same sid, another AS
//	session_device_change         0.60     same sid, another device
//	token_replay                  0.80     same jti, another device
//	concurrent_session_far_apart  0.90     same sid (or jti) within 10 min
//	                                       from places too far apart
//	request_burst                 0.80×c   30 or more requests a minute
//	                                       for the subject or address;
//	                                       c = rate/(2·limit), at most 1
//
// # The statistical model
//
// A [Model] follows Freeman et al., "Who Are You? A Statistical
// Approach to Measuring User Authenticity" (NDSS 2016), with the
// feature hierarchies that Wiefling et al. found to work in practice
// ("Is This Really You? An Empirical Study on Risk-Based
// Authentication Applied in the Wild"; "What's in Score for Website
// Users: A Data-driven Long-term Study on Risk-based Authentication
// Characteristics"). For a request x of user u it computes the
// likelihood ratio
//
//	LR = P(x | attack) / P(x | u) = Π over features of p(x_k) / p(x_k | u)
//
// where the attacker is taken to be drawn from the population, so
// P(x_k | attack) is the global frequency. Features are chains from
// general to specific, each step conditioned on the one before:
// country, then AS, then IP address; device type, then OS and version,
// then browser and major version, then the full user agent. A chain
// stops at its first unknown level.
//
// Population, per step: p(v | parent) = (n(v) + 1) / (n(parent) + V),
// additive smoothing with a nominal vocabulary V per level (250
// countries, 1000 networks per country, 1000 addresses per network, 5
// device types, 50 OS versions, 100 browsers, 100 user agents); counts
// come from a count-min sketch of fixed size (4 rows of
// [ModelOptions.SketchWidth] counters, 1 MiB by default), which never
// undercounts, and the step is capped at 1.
//
// User, per step, Witten-Bell interpolation with the population:
// p(v | parent, u) = (c(v) + T·p(v | parent)) / (c(parent) + T), with c
// the user's counts and T the number of distinct values the user showed
// under that parent. A seen value scores about its population share
// (rare values the user owns are strong evidence for the user); an
// unseen one scores (c(parent)+T)/T, growing with the history; below an
// unseen level the user is indistinguishable from the population and
// the ratio is 1. Histories keep at most [ModelOptions.MaxValues]
// values per level and [ModelOptions.MaxSubjects] users.
//
// Cold start: a user with no history has p(x | u) = p(x), so LR = 1
// exactly and no finding is made: the model has no evidence either way
// and leaves new users to first_seen and the rules.
//
// The unfamiliar_context finding is made when LR > 1, with weight
// LR/(LR + K), K = [ModelOptions.HalfWeightRatio] (3 by default): the
// posterior probability of an attack for prior odds 1/K. Its detail
// names the level with the largest ratio.
//
// Not modelled: Freeman's factor for how attractive a user is to
// attackers (taken as 1), time of day and round-trip time.
package risk
