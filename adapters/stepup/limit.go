package stepup

import (
	"context"
	"math"
	"net/http"
	"time"

	"github.com/runtimeid/runtimeid"
)

// failureMemory is how long failed attempts are remembered after the
// last one.
const failureMemory = 24 * time.Hour

// limiter counts failed proofs per user and per session.
//
// TODO: a count is read and written in two store calls under a lock of
// this process, so instances sharing a store can each let an attempt
// through before seeing the other's failure; an atomic increment in the
// store would close that gap.
type limiter struct{ s *Service }

// attempts is one counter as stored.
type attempts struct {
	Failures int       `json:"f"`
	Until    time.Time `json:"u,omitzero"` // no attempt before
}

func (l limiter) keys(id *runtimeid.Identity) (user, session string) {
	sk, _ := sessionKey(id)
	return "l" + userKey(id), "l" + sk
}

// check refuses an attempt while the user or the session must wait.
func (l limiter) check(ctx context.Context, id *runtimeid.Identity) *apiError {
	now := l.s.opts.Now()
	user, session := l.keys(id)
	wait := time.Duration(0)
	for _, k := range []string{user, session} {
		var a attempts
		if _, err := l.s.load(ctx, k, &a); err != nil {
			// A store that cannot answer must not turn the limit off.
			return errInternal
		}
		wait = max(wait, a.Until.Sub(now))
	}
	if wait <= 0 {
		return nil
	}
	secs := int(math.Ceil(wait.Seconds()))
	return &apiError{http.StatusTooManyRequests, CodeTooManyAttempts,
		"too many failed attempts; try again later", secs}
}

// fail counts a failed proof against the user and the session.
func (l limiter) fail(ctx context.Context, id *runtimeid.Identity) {
	user, session := l.keys(id)
	l.bump(ctx, user, l.s.opts.MaxUserAttempts)
	l.bump(ctx, session, l.s.opts.MaxAttempts)
	l.s.opts.Logger.LogAttrs(ctx, levelWarn, "stepup: verification failed",
		identityAttr(id))
}

func (l limiter) bump(ctx context.Context, key string, limit int) {
	defer l.s.lock(key)()
	var a attempts
	_, _ = l.s.load(ctx, key, &a)
	a.Failures++
	if over := a.Failures - limit; over >= 0 {
		wait := l.s.opts.BackOff << min(over, 32)
		if wait > l.s.opts.MaxBackOff || wait <= 0 {
			wait = l.s.opts.MaxBackOff
		}
		a.Until = l.s.opts.Now().Add(wait)
	}
	_ = l.s.save(ctx, key, a, failureMemory)
}

// reset forgets the failures of the user and the session.
func (l limiter) reset(ctx context.Context, id *runtimeid.Identity) {
	user, session := l.keys(id)
	_ = l.s.opts.Store.Delete(ctx, user)
	_ = l.s.opts.Store.Delete(ctx, session)
}
