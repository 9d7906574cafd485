package stepup

import (
	"context"
	"sync"
	"time"
)

// Store keeps the service's sealed blobs by key. The service encrypts
// every value before it reaches the store, so a store sees opaque bytes
// and keys made of hashes.
//
// Get returns the value, or (nil, nil) when the key is absent or has
// expired. Put writes it; a zero ttl keeps it until it is deleted. Add
// writes it only when the key is absent or has expired, and reports
// whether it did: the service uses it to make a challenge or a code
// single-use across instances, so it must be atomic (Redis: SET NX).
// Delete removes the key; deleting an absent key is no error.
//
// All methods must be safe for concurrent use. The service calls Get on
// the request path of every challenged request (see [Service.StepUp]),
// so a remote store should answer in a millisecond or so.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	Delete(ctx context.Context, key string) error
}

// DefaultMaxEntries bounds a [MemoryStore] made with a zero size.
const DefaultMaxEntries = 100_000

var _ Store = (*MemoryStore)(nil)

// MemoryStore is a [Store] in one process's memory, for a single
// instance and for tests. It holds at most its maximum number of
// entries: expired entries are dropped to make room, and a Put or Add
// that still finds it full fails with [ErrStoreFull].
type MemoryStore struct {
	max int
	now func() time.Time

	// mu guards entries.
	mu      sync.Mutex
	entries map[string]memEntry
}

type memEntry struct {
	value   []byte
	expires time.Time // zero: never
}

// NewMemoryStore returns an empty store of at most maxEntries entries
// (zero means [DefaultMaxEntries]) whose expiry follows now (nil means
// [time.Now]).
func NewMemoryStore(maxEntries int, now func() time.Time) *MemoryStore {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{max: maxEntries, now: now, entries: map[string]memEntry{}}
}

// Get implements [Store]. It never fails.
func (s *MemoryStore) Get(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok || e.expired(s.now()) {
		return nil, nil
	}
	return append([]byte(nil), e.value...), nil
}

// Put implements [Store].
func (s *MemoryStore) Put(_ context.Context, key string, value []byte, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.put(key, value, ttl)
}

// Add implements [Store].
func (s *MemoryStore) Add(_ context.Context, key string, value []byte,
	ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok && !e.expired(s.now()) {
		return false, nil
	}
	return true, s.put(key, value, ttl)
}

// Delete implements [Store]. It never fails.
func (s *MemoryStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, key)
	return nil
}

// Len returns the number of entries held, expired ones included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

func (s *MemoryStore) put(key string, value []byte, ttl time.Duration) error {
	now := s.now()
	if _, ok := s.entries[key]; !ok && len(s.entries) >= s.max {
		// Full: drop what has expired before giving up. This walks
		// the map, but only when the store is full.
		for k, e := range s.entries {
			if e.expired(now) {
				delete(s.entries, k)
			}
		}
		if len(s.entries) >= s.max {
			return ErrStoreFull
		}
	}
	e := memEntry{value: append([]byte(nil), value...)}
	if ttl > 0 {
		e.expires = now.Add(ttl)
	}
	s.entries[key] = e
	return nil
}

func (e memEntry) expired(now time.Time) bool {
	return !e.expires.IsZero() && !now.Before(e.expires)
}
