package runtimeid

import (
	"errors"
	"strconv"
)

// The error categories. Every error the engine returns wraps one of them,
// so callers test with [errors.Is].
var (
	// ErrToken means the access token was missing, malformed or failed
	// verification. The error is a [*TokenError].
	ErrToken = errors.New("runtimeid: token rejected")

	// ErrEvaluation means a collector, evaluator or policy failed, or
	// panicked. The request fails closed unless its route opts into
	// failing open. The error is an [*EvaluationError].
	ErrEvaluation = errors.New("runtimeid: evaluation failed")

	// ErrConfig means a configuration is invalid. The error is a
	// [*ConfigError] that says which field and why.
	ErrConfig = errors.New("runtimeid: invalid configuration")

	// ErrKeys means the verification keys could not be loaded or
	// refreshed.
	ErrKeys = errors.New("runtimeid: keys unavailable")

	// ErrUnknownKey means a [KeySource] has no key with the token's kid.
	ErrUnknownKey = errors.New("runtimeid: unknown key id")
)

// The token error codes. They are stable and appear in problem+json
// bodies, audit events and metrics.
const (
	CodeTokenMissing     = "token_missing"
	CodeTokenMalformed   = "token_malformed"
	CodeTokenTooLarge    = "token_too_large"
	CodeTokenAlgorithm   = "token_algorithm"
	CodeTokenType        = "token_type"
	CodeTokenUnknownKey  = "token_unknown_key"
	CodeTokenSignature   = "token_signature"
	CodeTokenExpired     = "token_expired"
	CodeTokenNotYetValid = "token_not_yet_valid"
	CodeTokenIssuedLater = "token_issued_in_future"
	CodeTokenIssuer      = "token_issuer"
	CodeTokenAudience    = "token_audience"
	CodeTokenClaims      = "token_claims"
	CodeTokenRevoked     = "token_revoked"

	// CodeTokenBinding is a token bound to a key (cnf) whose binding was
	// not proven: no DPoP proof, a proof for another key, or no client
	// certificate.
	CodeTokenBinding = "token_binding"

	// CodeRequestInvalid is a request that carries a token in a way the
	// engine refuses: two Authorization headers, a token in the query
	// string on a route that did not opt in, or an unknown scheme.
	CodeRequestInvalid = "invalid_request"

	// CodeEvaluationError is the reason of a decision that failed closed.
	CodeEvaluationError = "evaluation_error"
)

// TokenError is why a token was refused. Its message never includes the
// token.
type TokenError struct {
	// Code is one of the Code constants, such as [CodeTokenExpired].
	Code string

	// Detail is a short explanation safe to show the client.
	Detail string

	// Err is the underlying cause, for logs; it is never shown to clients.
	Err error
}

// Error implements error.
func (e *TokenError) Error() string {
	msg := "runtimeid: token rejected: " + e.Code
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap lets [errors.Is] match [ErrToken] and the cause.
func (e *TokenError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrToken}
	}
	return []error{ErrToken, e.Err}
}

// Missing reports whether no token was sent at all, which RFC 6750
// section 3.1 answers without an error code.
func (e *TokenError) Missing() bool { return e.Code == CodeTokenMissing }

// InvalidRequest reports whether the request, rather than the token, was
// malformed (RFC 6750 invalid_request).
func (e *TokenError) InvalidRequest() bool { return e.Code == CodeRequestInvalid }

// EvaluationError is a failure of one stage of the pipeline.
type EvaluationError struct {
	// Stage is "signals", "risk", "policy" or "learn".
	Stage string

	// Component names the collector, evaluator or policy, by its type.
	Component string

	// Panic is true when the component panicked.
	Panic bool

	Err error
}

// Error implements error.
func (e *EvaluationError) Error() string {
	msg := "runtimeid: " + e.Stage + " " + e.Component
	if e.Panic {
		msg += " panicked"
	} else {
		msg += " failed"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap lets [errors.Is] match [ErrEvaluation] and the cause.
func (e *EvaluationError) Unwrap() []error { return []error{ErrEvaluation, e.Err} }

// ConfigError is an invalid configuration, found at start-up.
type ConfigError struct {
	Field  string // such as "Token.Issuer"
	Reason string
	Err    error
}

// Error implements error.
func (e *ConfigError) Error() string {
	msg := "runtimeid: config " + e.Field + ": " + e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap lets [errors.Is] match [ErrConfig] and the cause.
func (e *ConfigError) Unwrap() []error { return []error{ErrConfig, e.Err} }

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.Quote(s)
}
