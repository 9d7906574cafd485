package stepup

import (
	"context"
	"fmt"
	"strconv"
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
// Incr adds delta to the counter at key, an absent or expired key
// counting as zero, makes the key expire ttl from now, and returns the
// new count, all at once (Redis: INCRBY and PEXPIRE in one MULTI): the
// service numbers attempts with it, so that instances sharing the store
// count them together. A counter is a plain integer, not a sealed blob;
// the service keeps counters and blobs under different keys.
//
// All methods must be safe for concurrent use. The service calls Get on
// the request path of every challenged request (see [Service.StepUp]),
// so a remote store should answer in a millisecond or so.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	Delete(ctx context.Context, key string) error
	Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error)
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

// Incr implements [Store]. The count is kept as decimal text, as Redis
// keeps it; a key that holds anything else is an error.
func (s *MemoryStore) Incr(_ context.Context, key string, delta int64,
	ttl time.Duration) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	if e, ok := s.entries[key]; ok && !e.expired(s.now()) {
		var err error
		if n, err = strconv.ParseInt(string(e.value), 10, 64); err != nil {
			return 0, fmt.Errorf("stepup: memory store: %q holds no count", key)
		}
	}
	n += delta
	if err := s.put(key, strconv.AppendInt(nil, n, 10), ttl); err != nil {
		return 0, err
	}
	return n, nil
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
