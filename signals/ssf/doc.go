// Package ssf receives and sends the identity provider's security events
// over the OpenID Shared Signals Framework (SSF 1.0): Security Event
// Tokens (RFC 8417) carrying CAEP 1.0 and RISC events, delivered by push
// (RFC 8935, [Receiver] as an http.Handler) or poll (RFC 8936,
// [Poller]). A stolen token stops working on the next request after the
// identity provider says so, not when it expires.
//
// # Wiring
//
// A [State] keeps what the events say. The [Receiver] writes it; on the
// request path the [Validator] refuses revoked tokens with 401
// token_revoked, the [Collector] shows the pushed facts to policies as
// signals.custom.ssf, and the [Evaluator] turns them into findings:
//
//	state := ssf.NewState(ssf.StateOptions{})
//	rx, err := ssf.NewReceiver(ssf.ReceiverOptions{
//		Issuer: "https://idp.example.com/", Audience: "https://app.example.com/",
//		Keys: transmitterKeys, State: state,
//	})
//	mux.Handle("POST /ssf/events", rx)
//	cfg.Validators = append(cfg.Validators, ssf.NewValidator(state))
//	cfg.Collectors = append(cfg.Collectors, ssf.NewCollector(state))
//	cfg.Evaluators = append(cfg.Evaluators, ssf.NewEvaluator(state))
//
// # What each event does
//
// Subjects are normalised to [Key] values as the doc of [Key] lists. An
// event's time is its event_timestamp (else the SET's toe, else its
// iat), never later than its arrival. An event older than the fact it
// would change is ignored, so a late or replayed event undoes nothing.
//
//   - CAEP session-revoked: with a session (opaque id, or a complex
//     subject's session member) every token with that sid is refused;
//     with a jwt_id, that token; with only a user, every token of the
//     user issued at or before the event.
//   - CAEP credential-change and RISC sessions-revoked: every token of
//     the user issued at or before the event is refused.
//   - RISC account-disabled, account-purged and credential-compromise:
//     every token of the user is refused. account-enabled lifts a
//     disable; a credential-change lifts a compromise (the older tokens
//     stay refused); nothing lifts a purge.
//   - CAEP risk-level-change: the level becomes the ssf_risk_level
//     finding and signals.custom.ssf.risk_level.
//   - CAEP device-compliance-change: a device reported not-compliant
//     gives device_noncompliant for requests whose device id matches.
//   - CAEP assurance-level-change and token-claims-change: shown to
//     policies, and the findings assurance_downgraded and
//     claims_changed for tokens they make stale.
//   - SSF verification: its state is kept ([Receiver.LastVerification]);
//     stream-updated is kept and logged ([Receiver.Stream]).
//   - CAEP session-established and session-presented, RISC
//     identifier-changed, and every other type: accepted and ignored.
//
// Facts are kept for [StateOptions.Retention] after their last update,
// which must cover the longest token lifetime.
//
// # Sending
//
// A [Transmitter] sends CAEP events of this application's own, such as
// a session it blocked or a risk level it raised, to the identity
// provider's push endpoint; [Transmitter.OnDecision] and [AuditHandler]
// turn the engine's decisions into such events.
package ssf
