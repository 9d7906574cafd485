package stepup

import (
	"errors"
	"net/http"
)

// The errors of the package.
var (
	// ErrOptions means [Options] are invalid.
	ErrOptions = errors.New("stepup: invalid options")

	// ErrStoreFull means a [MemoryStore] holds its maximum of entries,
	// none of them expired.
	ErrStoreFull = errors.New("stepup: store full")

	// ErrSealed means a stored value could not be opened: it was
	// sealed under a key not in [Options.EncryptionKeys], moved to
	// another store key, or altered.
	ErrSealed = errors.New("stepup: cannot open sealed value")
)

// The error codes of the JSON endpoints, in the "error" member of every
// error body. They are stable across releases.
const (
	CodeUnauthenticated   = "unauthenticated"     // 401: no valid token
	CodeForbidden         = "forbidden"           // 403: the policy blocks the caller
	CodeInvalidRequest    = "invalid_request"     // 400: malformed body or return_to
	CodeUnsupportedMedia  = "unsupported_media"   // 415: POST without JSON
	CodeNotEnrolled       = "not_enrolled"        // 409: no such factor enrolled
	CodeMethodNotAccepted = "method_not_accepted" // 400: acr_values exclude the method
	CodeStepUpRequired    = "step_up_required"    // 403: enrollment needs a fresh step-up
	CodeChallengeInvalid  = "challenge_invalid"   // 400: unknown, used, expired or not yours
	CodeVerification      = "verification_failed" // 403: wrong code or assertion
	CodeTooManyAttempts   = "too_many_attempts"   // 429: wait Retry-After seconds
	CodeInternal          = "internal_error"      // 500
)

// apiError is one refusal of a JSON endpoint. Its message is a fixed
// text that never holds a secret.
type apiError struct {
	status  int
	code    string
	message string
	retry   int // Retry-After seconds, for 429
}

func (e *apiError) Error() string { return "stepup: " + e.code + ": " + e.message }

var (
	errUnauthenticated = &apiError{http.StatusUnauthorized, CodeUnauthenticated,
		"a valid access token is required", 0}
	errForbidden = &apiError{http.StatusForbidden, CodeForbidden,
		"the request was refused by policy", 0}
	errMedia = &apiError{http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
		"send application/json", 0}
	errNotEnrolled = &apiError{http.StatusConflict, CodeNotEnrolled,
		"no such factor is enrolled", 0}
	errMethod = &apiError{http.StatusBadRequest, CodeMethodNotAccepted,
		"acr_values do not accept this method", 0}
	errStepUpFirst = &apiError{http.StatusForbidden, CodeStepUpRequired,
		"step up with an enrolled factor first", 0}
	errChallenge = &apiError{http.StatusBadRequest, CodeChallengeInvalid,
		"the challenge is unknown, used, expired or not yours", 0}
	errVerification = &apiError{http.StatusForbidden, CodeVerification,
		"verification failed", 0}
	errInternal = &apiError{http.StatusInternalServerError, CodeInternal,
		"internal error", 0}
)

func invalid(message string) *apiError {
	return &apiError{http.StatusBadRequest, CodeInvalidRequest, message, 0}
}
