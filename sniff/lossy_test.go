package sniff_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/wstap/wstap/internal/lossycap"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/sniff"
)

// sniffLossy writes the capture cfg describes, runs a Sniffer over it and tallies
// what it reported against what was sent.
func sniffLossy(t *testing.T, cfg lossycap.Config) (lossycap.Tally, *lossycap.Capture, *lossycap.Recorder) {
	t.Helper()
	c, err := lossycap.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	if err := c.WritePcap(&file); err != nil {
		t.Fatal(err)
	}
	src, err := sniff.NewFileSource(&file)
	if err != nil {
		t.Fatal(err)
	}
	rec := lossycap.NewRecorder()
	s := sniff.New(sniff.Config{Observers: []plugins.Observer{rec}})
	if err := s.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	return c.Check(rec), c, rec
}

// TestLossyCaptures runs generated captures that lost every K-th segment through
// the sniffer and checks every message against what was sent: none reported that
// was not sent at that place (corrupted), nearly all of those clear of a gap
// reported intact, and every gap reported. The issue's capture (JSON text, one
// message per send) and the same cut anywhere, and a mixed one (text and binary,
// 1 B to 64 KiB, fragments and control frames, deflate with and without context
// takeover, pauses), for several K and seeds.
func TestLossyCaptures(t *testing.T) {
	anywhere := func(c lossycap.Config) lossycap.Config { c.Cut = lossycap.Anywhere; return c }
	for _, tc := range []struct {
		name  string
		cfg   func(seed uint64, k int) lossycap.Config
		seeds int
		ks    [][2]float64 // K, and the least share of the messages clear of a gap recovered
	}{
		// Short captures: the sniffer has less of each stream to learn from
		// than in the issue's 80,000 messages (see cmd/wstap-sniffbench -lossy).
		{"issue", func(seed uint64, k int) lossycap.Config { return lossycap.Issue(seed, 2500, k) }, 3,
			[][2]float64{{20, 0.998}, {40, 0.999}}},
		{"issue-cut-anywhere", func(seed uint64, k int) lossycap.Config { return anywhere(lossycap.Issue(seed, 2500, k)) }, 3,
			[][2]float64{{40, 0.995}}},
		{"mixed", func(seed uint64, k int) lossycap.Config { return lossycap.Mixed(seed, 250, k) }, 4,
			[][2]float64{{25, 0.9}, {100, 0.97}}},
	} {
		for _, km := range tc.ks {
			k, minRate := int(km[0]), km[1]
			t.Run(fmt.Sprintf("%s/K=%d", tc.name, k), func(t *testing.T) {
				var all lossycap.Tally
				for seed := range uint64(tc.seeds) {
					u, c, rec := sniffLossy(t, tc.cfg(seed, k))
					if u.Corrupted > 0 || u.Uncertain > 0 {
						t.Errorf("seed %d (%s): %s\n%v", seed, c.Describe(), u, u.Examples)
					}
					if u.Gaps != c.Gaps() || c.Gaps() > 0 && u.Resyncs == 0 {
						t.Errorf("seed %d: %d gaps and %d resyncs reported, want %d gaps", seed, u.Gaps, u.Resyncs, c.Gaps())
					}
					if errs := rec.Errors(); len(errs) > 0 {
						t.Errorf("seed %d: stream errors %v", seed, errs)
					}
					all.Add(u)
				}
				t.Logf("%s", all)
				if all.Gaps == 0 || all.Rate() < minRate {
					t.Errorf("recovered %.4f%% of the messages clear of a gap, want %.2f%%; %s", 100*all.Rate(), 100*minRate, all)
				}
			})
		}
	}
}
