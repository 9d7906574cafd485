// Package redisstore shares runtimeid's state between the instances of
// a service through Redis, so that many instances behave as one: a
// baseline learned on one, a revocation received on one and a DPoP
// proof seen on one hold on all of them.
//
// One [Store] gives six views of the shared state:
//
//   - [Store.Baselines], a [risk.Store] of subject baselines. Reads are
//     served from a bounded local cache; a subject missing from it is
//     read through from Redis once. Learning is applied locally at once
//     and queued; a background flush merges the queued changes into the
//     Redis copy every [Options.FlushInterval] (counts add, last-seen
//     times take the later), so learning on several instances at once
//     loses nothing, and publishes the result so every instance
//     refreshes its copy.
//   - [Store.Revocations], an [ssf.Store] of pushed Shared Signals
//     facts. An update is written to Redis before it returns and
//     published; every instance applies published facts to its local
//     copy as they arrive, and lookups never leave the process.
//   - [Store.Replay], a [runtimeid.ReplayCache]. It asks Redis on every
//     new DPoP proof (SET NX PX): a replay check that is not shared is
//     no replay check, since the replayed proof goes to another
//     instance. Proofs already seen by this instance are refused
//     without a round trip.
//   - [Store.Sessions], a [risk.SessionStore] of the latest use of each
//     session (sid) and token (jti), for risk.SessionEvaluator.
//     Lookups never leave the process; a recorded use is applied
//     locally, then written to Redis with a TTL and published in the
//     background, and every instance puts the published uses into its
//     own cache as they arrive. A session or token a lookup misses is
//     read from Redis in the background, so an instance that starts
//     late or comes back from an outage misses a use published before
//     once, then finds it. A token replayed on another instance is
//     token_replay there, and a session used from two distant places
//     on two instances is concurrent_session_far_apart. Request rates
//     (request_burst) stay per instance.
//   - [Store.Approvals], a [runtimeid.ApprovalStore] of human
//     approvals, for runtimeid.ApprovalsOptions.Store: an agent's action
//     challenged on one instance, approved by its user through another,
//     is allowed once on a third. Every call is a round trip; deciding
//     and using an approval are an atomic compare-and-swap in Redis.
//
// # When Redis is unreachable
//
// Each kind of state has a [FailureMode]; see [Options]. The defaults:
// revocations and replay fail closed (while this instance may be
// missing revocations, every token is refused; a DPoP proof that cannot
// be checked is refused), baselines continue on local state. Approvals
// and [Store.Secrets] always fail closed: nothing is approved or used
// while Redis cannot answer. The store
// reconnects with back-off on its own. Learning queued during an
// outage is kept (at most [Options.MaxPending] subjects, merged per
// subject) and flushed on recovery; on resubscribing, the store re-reads
// every revocation from Redis, since events published in the meantime
// were not received, and refreshes its cached baselines. The state is
// visible in the metrics (runtimeid.redis.*) and in the log, where each
// change between up and down is one line.
//
// # Deployment
//
// The caller builds the client: a redis.NewUniversalClient with one
// address, a Cluster's addresses or a Sentinel's master name selects
// the topology through the client's own options. Every key is single
// (no multi-key command), so Redis Cluster needs no hash tags.
//
// BUG: risk.Model keeps its state inside itself, with no store to
// plug in: the population model stays per instance. So do the session
// evaluator's request rates: request_burst sees only this instance's
// share of a burst.
package redisstore
