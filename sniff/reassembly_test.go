package sniff

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// tape records what a reassembler delivers.
type tape struct{ strings.Builder }

func (t *tape) data(p []byte, _ time.Time) { t.Write(p) }
func (t *tape) gap(n int64, _ time.Time)   { fmt.Fprintf(t, "[gap %d]", n) }
func (t *tape) fin()                       { t.WriteString("[fin]") }

func TestReassembler(t *testing.T) {
	base := time.Unix(1000, 0)
	type seg struct {
		seq      uint32
		data     string
		syn, fin bool
		missing  int
	}
	cases := []struct {
		name  string
		segs  []seg
		flush bool
		want  string
	}{
		{"in order", []seg{{seq: 99, syn: true}, {seq: 100, data: "hello "}, {seq: 106, data: "world", fin: true}}, false, "hello world[fin]"},
		{"out of order", []seg{{seq: 99, syn: true}, {seq: 106, data: "world"}, {seq: 100, data: "hello "}}, false, "hello world"},
		{"retransmission and overlap", []seg{{seq: 99, syn: true}, {seq: 100, data: "hel"}, {seq: 100, data: "hel"}, {seq: 101, data: "ello"}, {seq: 103, data: "lo wo"}, {seq: 108, data: "rld"}},
			false, "hello world"},
		{"overlapping out of order", []seg{{seq: 99, syn: true}, {seq: 104, data: "o wor"}, {seq: 102, data: "llo"}, {seq: 100, data: "he"}, {seq: 108, data: "rld"}},
			false, "hello world"},
		{"no SYN", []seg{{seq: 5003, data: "stream"}, {seq: 5000, data: "mid"}}, true, "midstream"},
		{"sequence numbers wrap", []seg{{seq: 0xfffffffd, syn: true}, {seq: 0xfffffffe, data: "ab"}, {seq: 0, data: "cd", fin: true}}, false, "abcd[fin]"},
		{"wrap out of order", []seg{{seq: 0xfffffffd, syn: true}, {seq: 0, data: "cd"}, {seq: 0xfffffffe, data: "ab"}}, false, "abcd"},
		{"gap given up at the end", []seg{{seq: 99, syn: true}, {seq: 100, data: "ab"}, {seq: 105, data: "fg"}, {seq: 110, data: "kl", fin: true}}, true, "ab[gap 3]fg[gap 3]kl[fin]"},
		{"FIN before the data", []seg{{seq: 99, syn: true}, {seq: 103, fin: true}, {seq: 100, data: "abc"}}, false, "abc[fin]"},
		{"snap length cut", []seg{{seq: 99, syn: true}, {seq: 100, data: "ab", missing: 3}, {seq: 105, data: "f"}}, false, "ab[gap 3]f"},
		{"data after FIN ignored", []seg{{seq: 99, syn: true}, {seq: 100, data: "a", fin: true}, {seq: 102, data: "zz"}}, false, "a[fin]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r reassembler
			var out tape
			for i, s := range tc.segs {
				r.add(&segment{seq: s.seq, payload: []byte(s.data), syn: s.syn, fin: s.fin, missing: s.missing}, base.Add(time.Duration(i)*time.Millisecond), &out)
			}
			if tc.flush {
				r.flush(&out)
			}
			if out.String() != tc.want {
				t.Errorf("got %q, want %q", out.String(), tc.want)
			}
			if !tc.flush && r.q != nil {
				t.Errorf("%d segments still pending", len(r.q.segs))
			}
		})
	}
}

// TestReassemblerFlushBefore gives up only the holes noticed before the cutoff: a
// segment that is merely late is still placed.
func TestReassemblerFlushBefore(t *testing.T) {
	base := time.Unix(1000, 0)
	var r reassembler
	var out tape
	r.add(&segment{seq: 99, syn: true}, base, &out)
	r.add(&segment{seq: 100, payload: []byte("ab")}, base, &out)
	r.add(&segment{seq: 105, payload: []byte("fg")}, base, &out)                    // hole [102,105) noticed at 0 s
	r.add(&segment{seq: 110, payload: []byte("kl")}, base.Add(5*time.Second), &out) // hole [107,110) noticed at 5 s
	r.flushBefore(base.Add(3*time.Second), &out)
	if got := out.String(); got != "ab[gap 3]fg" {
		t.Fatalf("after the first timeout: %q", got)
	}
	r.add(&segment{seq: 107, payload: []byte("hij")}, base.Add(5100*time.Millisecond), &out) // late, not lost
	if got := out.String(); got != "ab[gap 3]fghijkl" || r.pendingBytes() != 0 {
		t.Fatalf("got %q, %d pending", got, r.pendingBytes())
	}
}

func TestBodySkipper(t *testing.T) {
	body := "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT"
	for step := 1; step <= len(body); step++ {
		var b bodySkipper
		b.set(bodyChunked, 0)
		used := 0
		for off := 0; off < len(body) && b.active(); off += step {
			piece := []byte(body[off:min(off+step, len(body))])
			n, err := b.skip(piece)
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			used += n
			if n < len(piece) {
				break
			}
		}
		if b.active() || body[used:] != "NEXT" {
			t.Fatalf("step %d: stopped at %q, active %v", step, body[used:], b.active())
		}
	}
	var b bodySkipper
	b.set(bodyChunked, 0)
	if _, err := b.skip([]byte("zz\r\n")); err == nil {
		t.Error("a bad chunk size was accepted")
	}
	b.set(bodyChunked, 0)
	if _, err := b.skip(bytes.Repeat([]byte("1"), maxChunkLine+1)); err == nil {
		t.Error("an endless chunk-size line was accepted")
	}
}

func TestHeaderEnd(t *testing.T) {
	for in, want := range map[string]int{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest": 27,
		"GET / HTTP/1.1\nHost: a\n\nrest":       24,
		"GET / HTTP/1.1\r\nHost: a\r\n":         -1,
		"":                                      -1,
	} {
		if got := headerEnd([]byte(in)); got != want {
			t.Errorf("headerEnd(%q) = %d, want %d", in, got, want)
		}
	}
}
