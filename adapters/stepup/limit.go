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

// limiter counts attempts per user and per session.
//
// An attempt takes its number from an atomic counter in the store
// before its proof is checked, so attempts made at the same moment, on
// any instance that shares the store, each get their own number: past
// the limit, only the first attempt after the wait goes on, and the
// others are refused and given their numbers back. A success clears
// the counts; a failure past the limit sets the next wait.
type limiter struct{ s *Service }

// attempts is a wait as stored: set by the failure of attempt number
// Failures, no attempt before Until.
type attempts struct {
	Failures int       `json:"f"`
	Until    time.Time `json:"u,omitzero"`
}

// counter is one count an attempt is made against.
type counter struct {
	count string // the store's atomic counter
	wait  string // the sealed [attempts]
	limit int
}

func (l limiter) counters(id *runtimeid.Identity) [2]counter {
	sk, _ := sessionKey(id)
	uk := userKey(id)
	return [2]counter{
		{"n" + uk, "l" + uk, l.s.opts.MaxUserAttempts},
		{"n" + sk, "l" + sk, l.s.opts.MaxAttempts},
	}
}

// check refuses while the user or the session must wait. It counts
// nothing.
func (l limiter) check(ctx context.Context, id *runtimeid.Identity) *apiError {
	now := l.s.opts.Now()
	wait := time.Duration(0)
	for _, c := range l.counters(id) {
		a, err := l.waiting(ctx, c)
		if err != nil {
			// A store that cannot answer must not turn the limit off.
			return errInternal
		}
		wait = max(wait, a.Until.Sub(now))
	}
	if wait <= 0 {
		return nil
	}
	return tooMany(wait)
}

func (l limiter) waiting(ctx context.Context, c counter) (attempts, error) {
	var a attempts
	_, err := l.s.load(ctx, c.wait, &a)
	return a, err
}

func tooMany(wait time.Duration) *apiError {
	secs := int(math.Ceil(wait.Seconds()))
	return &apiError{http.StatusTooManyRequests, CodeTooManyAttempts,
		"too many failed attempts; try again later", secs}
}

// attempt is one proof's place in the counts of its user and session.
type attempt struct {
	l  limiter
	id *runtimeid.Identity
	cs [2]counter
	n  [2]int64 // the attempt's numbers; 0: not counted
}

// begin counts an attempt, or refuses it while the user or the session
// must wait. The caller checks the proof and then calls end, once.
func (l limiter) begin(ctx context.Context, id *runtimeid.Identity) (*attempt, *apiError) {
	if err := l.check(ctx, id); err != nil {
		return nil, err
	}
	a := &attempt{l: l, id: id, cs: l.counters(id)}
	for i, c := range a.cs {
		n, err := l.s.opts.Store.Incr(ctx, c.count, 1, failureMemory)
		if err != nil {
			a.cancel(ctx)
			return nil, errInternal
		}
		a.n[i] = n
	}
	if err := a.allowed(ctx); err != nil {
		a.cancel(ctx)
		return nil, err
	}
	return a, nil
}

// allowed lets the attempt go on when its number is within the limit,
// or is the first after the last failure's wait. Another number past
// the limit belongs to an attempt made while one is still checked.
func (a *attempt) allowed(ctx context.Context) *apiError {
	now := a.l.s.opts.Now()
	for i, c := range a.cs {
		if a.n[i] <= int64(c.limit) {
			continue
		}
		w, err := a.l.waiting(ctx, c)
		if err != nil {
			return errInternal
		}
		if int64(w.Failures) != a.n[i]-1 || now.Before(w.Until) {
			return tooMany(max(w.Until.Sub(now), a.l.s.opts.BackOff))
		}
	}
	return nil
}

// end settles the attempt with the proof's outcome: nil clears the
// counts, [errVerification] counts a failure, and any other error
// (nothing was proven either way) gives the numbers back.
func (a *attempt) end(ctx context.Context, err error) {
	switch err {
	case nil:
		a.l.reset(ctx, a.cs)
	case errVerification:
		a.fail(ctx)
	default:
		a.cancel(ctx)
	}
}

// fail sets the wait of each count whose limit this failure reached.
func (a *attempt) fail(ctx context.Context) {
	opts := a.l.s.opts
	for i, c := range a.cs {
		over := a.n[i] - int64(c.limit)
		if over < 0 {
			continue
		}
		wait := opts.BackOff << min(over, 32)
		if wait > opts.MaxBackOff || wait <= 0 {
			wait = opts.MaxBackOff
		}
		w := attempts{Failures: int(a.n[i]), Until: opts.Now().Add(wait)}
		_ = a.l.s.save(ctx, c.wait, w, failureMemory)
	}
	opts.Logger.LogAttrs(ctx, levelWarn, "stepup: verification failed",
		identityAttr(a.id))
}

// cancel gives the attempt's numbers back. A count that a success
// cleared meanwhile has no number of this attempt's left to give: going
// below zero would grant attempts past the limit, so that is undone.
func (a *attempt) cancel(ctx context.Context) {
	store := a.l.s.opts.Store
	for i, c := range a.cs {
		if a.n[i] == 0 {
			continue
		}
		n, err := store.Incr(ctx, c.count, -1, failureMemory)
		if err == nil && n < 0 {
			_, _ = store.Incr(ctx, c.count, 1, failureMemory)
		}
	}
}

// reset forgets the attempts and waits of the counts.
func (l limiter) reset(ctx context.Context, cs [2]counter) {
	for _, c := range cs {
		_ = l.s.opts.Store.Delete(ctx, c.count)
		_ = l.s.opts.Store.Delete(ctx, c.wait)
	}
}
