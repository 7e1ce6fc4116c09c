package history

import (
	"math/rand/v2"
	"regexp"
	"testing"
)

// TestRequiredLiterals: the literals a regexp's matches must contain are the ones
// expected, and never reject a payload the regexp matches.
func TestRequiredLiterals(t *testing.T) {
	cases := map[string][]string{
		`declined|chargeback`:    {"declined", "chargeback"},
		`refund`:                 {"refund"},
		`"user":"(mallory|eve)"`: {`"user":"`},
		`ab+c`:                   {"a"}, // Simplify: a, b+, c; the first longest wins
		`x(abc){2,}y`:            {"abc"},
		`(?i)refund`:             nil,
		`a|b*`:                   nil,
		`[0-9]+`:                 nil,
		`^$`:                     nil,
		`\x{fffd}`:               nil,
		`chargeback|charge`:      {"charge"},
		`.*`:                     nil,
	}
	for pat, want := range cases {
		got := requiredLiterals(regexp.MustCompile(pat))
		if len(got) != len(want) {
			t.Errorf("%s: %q, want %q", pat, got, want)
			continue
		}
		for i := range got {
			if string(got[i]) != want[i] {
				t.Errorf("%s: %q, want %q", pat, got, want)
			}
		}
	}

	pats := []string{`declined|chargeback`, `ab+c`, `x(abc){2,}y`, `(ca|ab)+d`, `a.c|bcd`, `é+x`, `(?s)a.b`, `[ab]c|abc`,
		`ba(a|b)*c`, `(?i)ab|c`, `a?bc`, `(a|ab)(c|bcd)`}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("abcdxy\xc3\xa9\xff")
	for _, pat := range pats {
		re := regexp.MustCompile(pat)
		lits := requiredLiterals(re)
		for range 20000 {
			b := make([]byte, rng.IntN(12))
			for i := range b {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
			if re.Match(b) && lits != nil && !containsAny(b, lits) {
				t.Fatalf("%s matches %q, which holds none of %q", pat, b, lits)
			}
		}
	}
}
