// Package pushid makes and checks the ids that every push of an app using
// the device API carries (data key "push_id"), so that the app can report
// the push opened: the id names the run and the user and is signed with a
// secret all instances share, so no client can count an open for a push it
// never received.
package pushid

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
)

// DataKey is the data key that carries a push's id.
const DataKey = "push_id"

// MaxLen bounds an id's length: two 10-byte varints and the tag, base64.
const MaxLen = (2*binary.MaxVarintLen64 + tagLen + 2) / 3 * 4

// tagLen is the HMAC-SHA256 prefix kept: 96 bits, far beyond guessing.
const tagLen = 12

// ErrInvalid is returned for an id pushd did not make with this secret.
var ErrInvalid = errors.New("not a push id pushd sent")

// Signer makes and checks ids. It is safe for concurrent use.
type Signer struct {
	key []byte
	// macs reuses keyed HMACs: a new one per push cost more than the rest
	// of the id (BenchmarkID).
	macs sync.Pool
}

// New returns a Signer over secret.
func New(secret []byte) *Signer {
	s := &Signer{key: append([]byte("pushd push id v1\x00"), secret...)}
	s.macs.New = func() any { return hmac.New(sha256.New, s.key) }
	return s
}

// ID returns the id of the push of run to user.
func (s *Signer) ID(run, user int64) string {
	var b [2*binary.MaxVarintLen64 + tagLen]byte
	n := binary.PutUvarint(b[:], uint64(run))
	n += binary.PutUvarint(b[n:], uint64(user))
	copy(b[n:], s.tag(b[:n]))
	return base64.RawURLEncoding.EncodeToString(b[:n+tagLen])
}

// Parse checks id and returns its run and user.
func (s *Signer) Parse(id string) (run, user int64, err error) {
	if len(id) > MaxLen {
		return 0, 0, ErrInvalid
	}
	for i := 0; i < len(id); i++ { // the decoder would skip line breaks
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return 0, 0, ErrInvalid
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(id)
	if err != nil || len(b) <= tagLen {
		return 0, 0, ErrInvalid
	}
	body, tag := b[:len(b)-tagLen], b[len(b)-tagLen:]
	if !hmac.Equal(tag, s.tag(body)) {
		return 0, 0, ErrInvalid
	}
	r, n := binary.Uvarint(body)
	if n <= 0 {
		return 0, 0, ErrInvalid
	}
	u, m := binary.Uvarint(body[n:])
	if m <= 0 || n+m != len(body) || r == 0 || u == 0 || r > 1<<62 || u > 1<<62 {
		return 0, 0, ErrInvalid
	}
	return int64(r), int64(u), nil
}

func (s *Signer) tag(body []byte) []byte {
	h := s.macs.Get().(hash.Hash)
	h.Reset()
	h.Write(body)
	var sum [sha256.Size]byte
	out := h.Sum(sum[:0])[:tagLen]
	s.macs.Put(h)
	return out
}
