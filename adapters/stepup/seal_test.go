package stepup

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func key(id string, b byte) EncryptionKey {
	return EncryptionKey{ID: id, Secret: bytes.Repeat([]byte{b}, KeySize)}
}

func TestSealRoundTripAndRotation(t *testing.T) {
	old, err := newSealer([]EncryptionKey{key("2025", 1)}, rand.Reader)
	require.NoError(t, err)
	sealed, err := old.seal("u:abc", []byte("secret"))
	require.NoError(t, err)
	assert.NotContains(t, string(sealed), "secret")

	// After rotation the new key seals, and the old one still opens.
	rotated, err := newSealer([]EncryptionKey{key("2026", 2), key("2025", 1)}, rand.Reader)
	require.NoError(t, err)
	plain, err := rotated.open("u:abc", sealed)
	require.NoError(t, err)
	assert.Equal(t, "secret", string(plain))
	fresh, err := rotated.seal("u:abc", []byte("secret"))
	require.NoError(t, err)
	assert.Equal(t, "2026", string(fresh[2:6]))

	// Once the old key is dropped, its values no longer open.
	dropped, err := newSealer([]EncryptionKey{key("2026", 2)}, rand.Reader)
	require.NoError(t, err)
	_, err = dropped.open("u:abc", sealed)
	assert.ErrorIs(t, err, ErrSealed)
}

func TestSealRefusesTampering(t *testing.T) {
	s, err := newSealer([]EncryptionKey{key("k", 1)}, rand.Reader)
	require.NoError(t, err)
	sealed, err := s.seal("u:alice", []byte(`{"s":"JBSWY3DP"}`))
	require.NoError(t, err)
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	cases := map[string]struct {
		name  string
		value []byte
	}{
		"moved to another user": {"u:mallory", sealed},
		"a flipped bit":         {"u:alice", flipped},
		"truncated":             {"u:alice", sealed[:10]},
		"empty":                 {"u:alice", nil},
		"wrong format":          {"u:alice", append([]byte{9}, sealed[1:]...)},
		"key id past the end":   {"u:alice", []byte{1, 200, 'k'}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := s.open(c.name, c.value)
			assert.ErrorIs(t, err, ErrSealed)
		})
	}
}

func TestSealerOptions(t *testing.T) {
	bad := [][]EncryptionKey{
		{{ID: "", Secret: make([]byte, 32)}},
		{{ID: "a b", Secret: make([]byte, 32)}},
		{{ID: "k", Secret: make([]byte, 16)}},
		{key("k", 1), key("k", 2)},
	}
	for _, keys := range bad {
		_, err := newSealer(keys, rand.Reader)
		assert.ErrorIs(t, err, ErrOptions)
	}
}

func TestMemoryStore(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	s := NewMemoryStore(2, c.Now)
	ctx := t.Context()
	require.NoError(t, s.Put(ctx, "a", []byte("1"), time.Minute))
	ok, err := s.Add(ctx, "a", []byte("2"), 0)
	require.NoError(t, err)
	assert.False(t, ok, "a live key is not replaced by Add")
	v, _ := s.Get(ctx, "a")
	assert.Equal(t, "1", string(v))

	require.NoError(t, s.Put(ctx, "b", []byte("x"), 0))
	assert.ErrorIs(t, s.Put(ctx, "c", []byte("x"), 0), ErrStoreFull)

	// Expired entries read as absent and make room.
	c.t = c.t.Add(time.Minute)
	v, _ = s.Get(ctx, "a")
	assert.Nil(t, v)
	require.NoError(t, s.Put(ctx, "c", []byte("x"), 0))
	assert.Equal(t, 2, s.Len())
	ok, err = s.Add(ctx, "a", []byte("3"), 0)
	assert.True(t, ok)
	assert.True(t, errors.Is(err, ErrStoreFull))
	require.NoError(t, s.Delete(ctx, "b"))
	require.NoError(t, s.Delete(ctx, "never"))
}
