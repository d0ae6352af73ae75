package detector

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// keyBytes is the length of keys GenerateKey makes: AES-256.
const keyBytes = 32

// GenerateKey returns a new random 32-byte gossip encryption key in base64
// (standard encoding, as `serf keygen` and `consul keygen` print it), for
// `hasup keygen` and the `encrypt:` config key.
func GenerateKey() (string, error) {
	key := make([]byte, keyBytes)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("detector: generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// DecodeKey decodes a base64 gossip encryption key, as GenerateKey makes it,
// into the bytes for Config.EncryptKey. Surrounding white space is ignored.
// The empty string decodes to nil (no encryption), so that an empty
// `encrypt:` config key needs no special case. Anything else must decode to
// 16, 24 or 32 bytes; errors wrap ErrInvalidKey.
func DecodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64: %w", ErrInvalidKey, err)
	}
	if err := checkKeyLen(key); err != nil {
		return nil, err
	}
	return key, nil
}

// checkKeyLen accepts nil (no encryption) and AES key lengths.
func checkKeyLen(key []byte) error {
	switch len(key) {
	case 0, 16, 24, 32:
		return nil
	}
	return fmt.Errorf("%w: %d bytes, want 16, 24 or 32", ErrInvalidKey, len(key))
}
