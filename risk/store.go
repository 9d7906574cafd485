package risk

import (
	"context"
	"fmt"
	"hash/maphash"
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
// A large store is split into up to [MaxLRUShards] shards by a keyed
// hash of the subject, each with its own lock and an equal share of
// the bound, so that requests of different subjects seldom wait for
// each other; the subject forgotten is then the least recent of its
// shard. A store of fewer than 2 × [MinLRUShardSize] subjects has one
// shard and is exactly least-recently-used.
type LRUStore struct {
	seed   maphash.Seed
	shards []lruShard
}

// lruShard is one part of an [LRUStore].
type lruShard struct {
	// mu guards profiles: an update's read, change and write are one
	// step, and the LRU list itself is not safe for concurrent use.
	mu       sync.Mutex
	profiles *simplelru.LRU[string, *Profile]
	size     int      // the shard's bound
	_        [64]byte // keeps shards' locks on separate cache lines
}

// The sharding of an [LRUStore].
const (
	MaxLRUShards    = 16
	MinLRUShardSize = 1024
)

// NewLRUStore returns an empty [LRUStore] for at most maxSubjects
// subjects, which must be positive.
func NewLRUStore(maxSubjects int) (*LRUStore, error) {
	if maxSubjects <= 0 {
		reason := fmt.Sprintf("must be positive, not %d", maxSubjects)
		return nil, configError("NewLRUStore maxSubjects", reason)
	}
	n := min(max(maxSubjects/MinLRUShardSize, 1), MaxLRUShards)
	s := &LRUStore{seed: maphash.MakeSeed(), shards: make([]lruShard, n)}
	for i := range s.shards {
		// The bound is shared out exactly: the first shards take the
		// remainder, one each.
		size := maxSubjects / n
		if i < maxSubjects%n {
			size++
		}
		l, err := simplelru.NewLRU[string, *Profile](size, nil)
		if err != nil {
			return nil, fmt.Errorf("risk: lru store: %w", err)
		}
		s.shards[i].profiles, s.shards[i].size = l, size
	}
	return s, nil
}

// shard returns the shard that holds subject.
func (s *LRUStore) shard(subject string) *lruShard {
	if len(s.shards) == 1 {
		return &s.shards[0]
	}
	h := maphash.String(s.seed, subject)
	return &s.shards[h%uint64(len(s.shards))]
}

// Get implements [Store]. It never fails, and counts as a use of the
// subject.
func (s *LRUStore) Get(_ context.Context, subject string) (*Profile, error) {
	sh := s.shard(subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p, _ := sh.profiles.Get(subject)
	return p, nil
}

// Update implements [Store]. It never fails.
func (s *LRUStore) Update(_ context.Context, subject string, fn func(*Profile)) error {
	sh := s.shard(subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p, _ := sh.profiles.Get(subject)
	sh.profiles.Add(subject, change(p, fn))
	return nil
}

// learn is Update with [Profile.learn], without a callback.
func (s *LRUStore) learn(subject string, o *observation) {
	sh := s.shard(subject)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p, _ := sh.profiles.Get(subject)
	sh.profiles.Add(subject, learned(p, o))
}

// Len returns the number of subjects held.
func (s *LRUStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.profiles.Len()
		sh.mu.Unlock()
	}
	return n
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
