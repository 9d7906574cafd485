// Package stepup answers runtimeid's step-up challenges inside the
// service: a passkey (a WebAuthn assertion) or a time-based one-time
// code (RFC 6238), for teams that run their own sign-in and have no
// identity provider to send users to.
//
// A [Service] is two things at once:
//
//   - an [http.Handler], mounted under [Options.BasePath], with the
//     step-up page for browsers, JSON endpoints for API clients, and
//     the enrollment of passkeys and code secrets;
//   - a [runtimeid.StepUpSource]: set it as [runtimeid.Config.StepUps]
//     and the next request of a session that stepped up meets the
//     challenge (its acr_values and max_age) without a new token.
//
// # The acr values
//
// A completed step-up is recorded for the session with one of these
// authentication context classes, which policies list in acr_values:
//
//   - [ACRPasskey], "urn:runtimeid:acr:passkey": a WebAuthn assertion
//     with user verification (the authenticator checked a PIN or a
//     biometric): phishing-resistant and two factors in one. It plays
//     the role of the "phr" class of the OpenID EAP ACR values.
//   - [ACRPasskeyPresence], "urn:runtimeid:acr:passkey-presence": a
//     WebAuthn assertion that proved possession of the key and the
//     user's presence, but no user verification.
//   - [ACROTP], "urn:runtimeid:acr:otp": a six-digit TOTP code from an
//     authenticator app. Not phishing-resistant.
//
// A rule that accepts any of them writes all three; a rule with only
// max_age accepts any step-up of this service within it.
//
// # Who is asking
//
// Every endpoint requires the caller's access token, verified with
// [Options.Token] as the engine verifies it: from the Authorization
// header (API clients), or from the cookie named [Options.TokenCookie]
// (browsers; [CookieToken] makes the application's engine read the same
// cookie). A record is kept per session: the token's iss, sub and sid
// (or its jti when it has no sid, so that the record serves that token
// only).
//
// # Enrollment
//
// A user enrolls passkeys and one code secret. The first factor may be
// enrolled only while the token's own authentication (auth_time) or a
// step-up of this service is at most [Options.EnrollMaxAge] old; once a
// factor exists, adding or replacing one requires a step-up of this
// service within [Options.EnrollMaxAge], so a stolen token cannot add
// its thief's passkey.
//
// # Abuse resistance
//
// Failed proofs are counted per user and per session; past
// [Options.MaxAttempts] (per session) or [Options.MaxUserAttempts] (per
// user) the next attempt must wait, twice as long after each further
// failure (429 with Retry-After). Attempts are numbered by an atomic
// counter in the [Store] before their proof is checked, so concurrent
// attempts on instances sharing the store count together. A passkey challenge is used once, by
// the session that asked for it, before it expires; a code is accepted
// once, and never one older than the last accepted. Codes, secrets,
// assertions and tokens never reach a log or an error.
//
// Secrets (code secrets, passkey credentials, step-up records) are kept
// in a [Store], sealed with AES-256-GCM under [Options.EncryptionKeys]
// and bound to their key in the store. A Redis-backed store shares them
// between instances; [MemoryStore] keeps them in one process.
package stepup
