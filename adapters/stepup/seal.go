package stepup

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// KeySize is the length of an [EncryptionKey]'s secret: AES-256.
const KeySize = 32

// EncryptionKey is one key that seals stored values.
type EncryptionKey struct {
	// ID names the key in every value it seals, so that a value sealed
	// before a rotation still opens. 1 to 32 bytes of [A-Za-z0-9._-].
	ID string

	// Secret is the AES-256 key: [KeySize] random bytes.
	Secret []byte
}

// sealFormat is the first byte of a sealed value.
const sealFormat = 1

// sealer seals values with the first key and opens them with any.
type sealer struct {
	current string
	aeads   map[string]cipher.AEAD
	rand    io.Reader
}

func newSealer(keys []EncryptionKey, random io.Reader) (*sealer, error) {
	s := &sealer{aeads: map[string]cipher.AEAD{}, rand: random}
	for i, k := range keys {
		if !validKeyID(k.ID) || len(k.Secret) != KeySize {
			return nil, fmt.Errorf("%w: EncryptionKeys[%d]: want an ID of 1 to 32"+
				" [A-Za-z0-9._-] and a %d-byte secret", ErrOptions, i, KeySize)
		}
		if _, dup := s.aeads[k.ID]; dup {
			return nil, fmt.Errorf("%w: EncryptionKeys[%d]: duplicate ID %q",
				ErrOptions, i, k.ID)
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("%w: EncryptionKeys[%d]: %w", ErrOptions, i, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%w: EncryptionKeys[%d]: %w", ErrOptions, i, err)
		}
		s.aeads[k.ID] = aead
		if i == 0 {
			s.current = k.ID
		}
	}
	return s, nil
}

// seal encrypts plain for the store key name: the name is authenticated
// data, so a value copied to another key (another user's) fails to open.
// The layout is format, len(id), id, nonce, ciphertext.
func (s *sealer) seal(name string, plain []byte) ([]byte, error) {
	aead := s.aeads[s.current]
	out := make([]byte, 0, 2+len(s.current)+aead.NonceSize()+len(plain)+aead.Overhead())
	out = append(out, sealFormat, byte(len(s.current)))
	out = append(out, s.current...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return nil, fmt.Errorf("stepup: seal: %w", err)
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, []byte(name)), nil
}

// open reverses seal. Every failure is [ErrSealed].
func (s *sealer) open(name string, sealed []byte) ([]byte, error) {
	if len(sealed) < 2 || sealed[0] != sealFormat {
		return nil, ErrSealed
	}
	n := int(sealed[1])
	if len(sealed) < 2+n {
		return nil, ErrSealed
	}
	aead, ok := s.aeads[string(sealed[2:2+n])]
	if !ok {
		return nil, fmt.Errorf("%w: unknown key id", ErrSealed)
	}
	rest := sealed[2+n:]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrSealed
	}
	nonce, box := rest[:aead.NonceSize()], rest[aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, box, []byte(name))
	if err != nil {
		return nil, ErrSealed
	}
	return plain, nil
}

func validKeyID(id string) bool {
	if id == "" || len(id) > 32 {
		return false
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' ||
			r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}

// hashKey names a store entry without the identifiers in it: the store
// never learns a subject or a session id.
func hashKey(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		// Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
		fmt.Fprintf(h, "%d:%s|", len(p), p)
	}
	return prefix + hex.EncodeToString(h.Sum(nil)[:20])
}
