package risk

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Store keeps one [Profile] per subject. Both methods must be safe for
// concurrent use, and should do no I/O on the request path.
//
// Get returns the subject's profile, or (nil, nil) for a subject it
// does not know. The profile is a read-only snapshot: the caller must
// not change it, and the store never changes a profile it has handed
// out; it replaces it (copy on write), so readers need no lock.
//
// Update applies fn to the subject's profile atomically: no other
// Update of the same subject runs between its read and its write, so
// concurrent learning loses no request. fn gets a private copy, or an
// empty profile for an unknown subject, which it may change freely but
// must not keep; it must be quick and must not call the store.
type Store interface {
	Get(ctx context.Context, subject string) (*Profile, error)
	Update(ctx context.Context, subject string, fn func(*Profile)) error
}

var (
	_ Store = (*MemoryStore)(nil)
	_ Store = (*LRUStore)(nil)
)

// MemoryStore is a [Store] in a map that is never trimmed: for tests
// and for deployments with a known, small set of subjects. Use an
// [LRUStore] when the number of subjects has no firm bound.
type MemoryStore struct {
	// mu guards profiles: an update's read, change and write are one
	// step.
	mu       sync.Mutex
	profiles map[string]*Profile
}

// NewMemoryStore returns an empty [MemoryStore].
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{profiles: make(map[string]*Profile)}
}

// Get implements [Store]. It never fails.
func (s *MemoryStore) Get(_ context.Context, subject string) (*Profile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.profiles[subject], nil
}

// Update implements [Store]. It never fails.
func (s *MemoryStore) Update(_ context.Context, subject string, fn func(*Profile)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.profiles[subject] = change(s.profiles[subject], fn)
	return nil
}

// learn is Update with [Profile.learn], without a callback.
func (s *MemoryStore) learn(subject string, o *observation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.profiles[subject] = learned(s.profiles[subject], o)
}

// Len returns the number of subjects held.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.profiles)
}

// LRUStore is a [Store] that holds at most a fixed number of subjects,
// forgetting the one least recently read or updated to make room. A
// forgotten subject starts again from a cold start.
//
// TODO: one mutex guards every subject, so under many cores the lock is
// the bottleneck; sharding by subject would spread it, at the price of
// a bound enforced per shard rather than exactly.
type LRUStore struct {
	// mu guards profiles: an update's read, change and write are one
	// step, and the LRU list itself is not safe for concurrent use.
	mu       sync.Mutex
	profiles *simplelru.LRU[string, *Profile]
}

// NewLRUStore returns an empty [LRUStore] for at most maxSubjects
// subjects, which must be positive.
func NewLRUStore(maxSubjects int) (*LRUStore, error) {
	if maxSubjects <= 0 {
		reason := fmt.Sprintf("must be positive, not %d", maxSubjects)
		return nil, configError("NewLRUStore maxSubjects", reason)
	}
	l, err := simplelru.NewLRU[string, *Profile](maxSubjects, nil)
	if err != nil {
		return nil, fmt.Errorf("risk: lru store: %w", err)
	}
	return &LRUStore{profiles: l}, nil
}

// Get implements [Store]. It never fails, and counts as a use of the
// subject.
func (s *LRUStore) Get(_ context.Context, subject string) (*Profile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, _ := s.profiles.Get(subject)
	return p, nil
}

// Update implements [Store]. It never fails.
func (s *LRUStore) Update(_ context.Context, subject string, fn func(*Profile)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, _ := s.profiles.Get(subject)
	s.profiles.Add(subject, change(p, fn))
	return nil
}

// learn is Update with [Profile.learn], without a callback.
func (s *LRUStore) learn(subject string, o *observation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, _ := s.profiles.Get(subject)
	s.profiles.Add(subject, learned(p, o))
}

// Len returns the number of subjects held.
func (s *LRUStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.profiles.Len()
}

// learned is change with [Profile.learn] of o.
func learned(p *Profile, o *observation) *Profile {
	c := p.Clone()
	if c == nil {
		c = &Profile{}
	}
	c.learn(o)
	return c
}

// change applies fn to a copy of p, which stays as it was for readers
// that hold it.
func change(p *Profile, fn func(*Profile)) *Profile {
	c := p.Clone()
	if c == nil {
		c = &Profile{}
	}
	fn(c)
	return c
}
