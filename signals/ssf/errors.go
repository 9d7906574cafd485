package ssf

import "errors"

// The error categories of this package; test with [errors.Is].
var (
	// ErrSET means a Security Event Token was refused. The error is a
	// [*SETError] whose Code is what RFC 8935 section 2.3 answers.
	ErrSET = errors.New("ssf: security event token rejected")

	// ErrOptions means options given to a constructor are invalid.
	ErrOptions = errors.New("ssf: invalid options")

	// ErrQueueFull means [Transmitter.Emit] dropped an event because
	// its queue was full.
	ErrQueueFull = errors.New("ssf: transmitter queue full")

	// ErrClosed means the transmitter or poller was closed.
	ErrClosed = errors.New("ssf: closed")

	// ErrDelivery means a transmitter or a poller could not exchange
	// SETs with its peer.
	ErrDelivery = errors.New("ssf: delivery failed")
)

// The SET error codes of RFC 8935 section 2.4, also used by RFC 8936,
// answered in the "err" member of an error response.
const (
	CodeInvalidRequest       = "invalid_request"
	CodeInvalidKey           = "invalid_key"
	CodeInvalidIssuer        = "invalid_issuer"
	CodeInvalidAudience      = "invalid_audience"
	CodeAuthenticationFailed = "authentication_failed"
	CodeAccessDenied         = "access_denied"
)

// SETError is why a SET was refused: the code and description the
// transmitter is told, and the cause, which only the log sees.
type SETError struct {
	Code        string // one of the Code constants
	Description string // safe to send to the transmitter
	Err         error
}

// Error implements error.
func (e *SETError) Error() string {
	msg := "ssf: security event token rejected: " + e.Code
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// Unwrap lets [errors.Is] match [ErrSET] and the cause.
func (e *SETError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrSET}
	}
	return []error{ErrSET, e.Err}
}

func setErr(code, desc string) *SETError {
	return &SETError{Code: code, Description: desc}
}
