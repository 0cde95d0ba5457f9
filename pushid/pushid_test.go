package pushid

import (
	"errors"
	"testing"
)

func TestRoundTripAndForgery(t *testing.T) {
	t.Parallel()
	s := New([]byte("secret one"))
	for _, c := range [][2]int64{{1, 1}, {42, 1 << 40}, {1 << 62, 7}} {
		id := s.ID(c[0], c[1])
		if len(id) > MaxLen {
			t.Errorf("id %q is %d long, over %d", id, len(id), MaxLen)
		}
		run, user, err := s.Parse(id)
		if err != nil || run != c[0] || user != c[1] {
			t.Errorf("Parse(ID(%d, %d)) = %d, %d, %v", c[0], c[1], run, user, err)
		}
		if _, _, err := New([]byte("secret two")).Parse(id); !errors.Is(err, ErrInvalid) {
			t.Errorf("another secret accepted %q", id)
		}
		b := []byte(id)
		b[1] ^= 1 // another run or user, same tag
		if _, _, err := s.Parse(string(b)); !errors.Is(err, ErrInvalid) {
			t.Errorf("a changed id %q was accepted", b)
		}
	}
}

func FuzzParse(f *testing.F) {
	s := New([]byte("k"))
	f.Add(s.ID(3, 4))
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, id string) {
		run, user, err := s.Parse(id)
		if err == nil && s.ID(run, user) != id {
			t.Fatalf("accepted %q for %d/%d, which signs as %q", id, run, user, s.ID(run, user))
		}
	})
}

func BenchmarkID(b *testing.B) {
	s := New([]byte("secret"))
	b.ReportAllocs()
	for i := int64(0); b.Loop(); i++ {
		_ = s.ID(42, i)
	}
}
