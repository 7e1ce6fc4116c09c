package proxy

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// TestUTF8Stream cuts strings at every pair of points and checks the streamed
// verdict against utf8.Valid on the whole.
func TestUTF8Stream(t *testing.T) {
	for _, s := range []string{"", "plain", "héllo ✓ 😀", "\xff", "a\xc3", "\xe2\x82", "\xe2\x82\xac", "\xf0\x9f\x98",
		"\xf0\x9f\x98\x80z", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80", "é\x80", "ab\xe2(\xa1", "\xf0\x9f\x98\x80\xf0"} {
		for i := 0; i <= len(s); i++ {
			for j := i; j <= len(s); j++ {
				var u utf8Stream
				u.write([]byte(s[:i]))
				u.write([]byte(s[i:j]))
				u.write([]byte(s[j:]))
				if got, want := u.valid(true), utf8.ValidString(s); got != want {
					t.Errorf("%q cut at %d and %d: valid %v, want %v", s, i, j, got, want)
				}
			}
		}
	}
}

func FuzzUTF8Stream(f *testing.F) {
	f.Add([]byte("héllo ✓ 😀"), uint64(1))
	f.Add([]byte("\xf0\x9f\x98\x80\xed\xa0\x80"), uint64(2))
	f.Fuzz(func(t *testing.T, p []byte, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, 3))
		var u utf8Stream
		for rest := p; len(rest) > 0; {
			n := 1 + rng.IntN(len(rest))
			u.write(rest[:n])
			rest = rest[n:]
		}
		if got, want := u.valid(true), utf8.Valid(p); got != want {
			t.Fatalf("%q: valid %v, want %v", p, got, want)
		}
	})
}
