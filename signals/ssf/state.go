package ssf

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Defaults for the zero values of [StateOptions].
const (
	DefaultMaxEntries = 100_000
	DefaultRetention  = 24 * time.Hour
)

// Facts are what the transmitter said about one [Key]. Every fact keeps
// the time of the event that set it, so that an event delivered late or
// replayed never undoes a newer one.
type Facts struct {
	// RevokedBefore refuses every token issued at or before it: a
	// credential change, or all of a user's sessions revoked.
	RevokedBefore time.Time
	RevokeReason  string

	// Blocked refuses every token while it is set: "account disabled",
	// "account purged", "credential compromised", "session revoked" or
	// "token revoked". BlockedAt is when.
	Blocked   string
	BlockedAt time.Time

	// RiskLevel is the last risk-level-change: "low", "medium" or
	// "high".
	RiskLevel string
	RiskAt    time.Time

	// Assurance is the last assurance-level-change.
	Assurance   Assurance
	AssuranceAt time.Time

	// Claims are the claims of the last token-claims-change. The map is
	// replaced, never modified, once stored.
	Claims   map[string]any
	ClaimsAt time.Time

	// Compliance is the last device-compliance-change: "compliant" or
	// "not-compliant".
	Compliance   string
	ComplianceAt time.Time

	// Updated is when the facts were last written, for expiry.
	Updated time.Time
}

// Assurance is an assurance-level-change event of CAEP 1.0.
type Assurance struct {
	Namespace string
	Current   string
	Previous  string
	Direction string // "increase", "decrease" or ""
}

// Store keeps the facts pushed by a transmitter. [State] is the
// in-memory implementation; a shared one (Redis) can replace it.
//
// Lookup runs on the request path: it must be safe for concurrent use
// and must not block on I/O. It returns facts that nobody modifies
// afterwards, or ok false when none are kept for key as of now.
//
// Update applies f to the facts of key (zero facts when there are none)
// and keeps the result. f must not modify maps it finds in the facts: it
// replaces them. An error means the update was not kept.
type Store interface {
	Lookup(key Key, now time.Time) (f *Facts, ok bool)
	Update(key Key, now time.Time, f func(*Facts)) error
}

// StateOptions configure [NewState]. The zero value means the defaults.
type StateOptions struct {
	// MaxEntries bounds the keys kept. Zero means [DefaultMaxEntries].
	// When it is full the least recently updated key is dropped, which
	// forgets its revocations: size it above the number of subjects
	// that receive events within Retention. [State.Evicted] counts
	// drops.
	MaxEntries int

	// Retention is how long facts are kept after their last update.
	// Zero means [DefaultRetention]. It must be at least the longest
	// lifetime of the access tokens, so that a token issued before a
	// revocation expires before the revocation is forgotten.
	Retention time.Duration
}

// State is the in-memory [Store]: an LRU of at most MaxEntries keys,
// each forgotten Retention after its last update. It is safe for
// concurrent use; a lookup is one map read under a read lock.
type State struct {
	retention time.Duration

	// mu guards the fields below it. Lookups share it; updates
	// replace whole *Facts values, so a reader never sees one change.
	mu      sync.RWMutex
	entries *simplelru.LRU[Key, *Facts]
	evicted int
}

var _ Store = (*State)(nil)

// NewState returns an empty state.
func NewState(opts StateOptions) *State {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	s := &State{retention: opts.Retention}
	// NewLRU fails only for a size below one.
	s.entries, _ = simplelru.NewLRU[Key, *Facts](opts.MaxEntries,
		func(Key, *Facts) { s.evicted++ })
	return s
}

// Lookup implements [Store].
func (s *State) Lookup(key Key, now time.Time) (*Facts, bool) {
	s.mu.RLock()
	f, ok := s.entries.Peek(key)
	s.mu.RUnlock()
	if !ok || now.Sub(f.Updated) > s.retention {
		return nil, false
	}
	return f, true
}

// Update implements [Store]. It never fails.
func (s *State) Update(key Key, now time.Time, apply func(*Facts)) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	var next Facts
	if old, ok := s.entries.Peek(key); ok && now.Sub(old.Updated) <= s.retention {
		next = *old
	}
	apply(&next)
	next.Updated = now
	s.entries.Add(key, &next)
	return nil
}

// Len returns the number of keys kept, expired ones included.
func (s *State) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.entries.Len()
}

// Evicted returns how many keys were dropped because the state was
// full.
func (s *State) Evicted() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.evicted
}
