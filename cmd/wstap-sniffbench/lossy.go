package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wstap/wstap/internal/lossycap"
	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/sniff"
)

// lossyOptions says which lossy captures to count (see lossy).
type lossyOptions struct {
	mixes         []string
	ks            []int
	seed          uint64
	seeds         int
	messages      int // per capture of the issue's mixes
	mixedMessages int // per capture of the mixed one
	dir           string
}

// lossyMixes are the captures -lossy knows: the issue's (JSON text sent one message
// per send), the same cut into segments anywhere, and a mixed one.
var lossyMixes = map[string]func(o lossyOptions, seed uint64, k int) lossycap.Config{
	"issue": func(o lossyOptions, seed uint64, k int) lossycap.Config { return lossycap.Issue(seed, o.messages, k) },
	"anywhere": func(o lossyOptions, seed uint64, k int) lossycap.Config {
		c := lossycap.Issue(seed, o.messages, k)
		c.Cut = lossycap.Anywhere
		return c
	},
	"mixed": func(o lossyOptions, seed uint64, k int) lossycap.Config {
		return lossycap.Mixed(seed, o.mixedMessages, k)
	},
}

// parseInts parses a comma-separated list of positive integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive integers separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// lossy writes, for each mix, K and seed, a capture that lost every K-th segment
// to a temporary file, runs the sniffer over it in this process, and counts its
// messages against those sent; the same capture's streams also go through a bare
// wsframe.Decoder that reports the messages it holds back as uncertain (the
// sniffer drops them). Then the issue's targets as [PASS]/[FAIL] lines.
func lossy(o lossyOptions) error {
	dir, err := os.MkdirTemp(o.dir, "wstap-lossy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("lossy captures: seeds %d..%d; %d messages a capture (mixed: %d); every K-th segment carrying WebSocket bytes lost\n",
		o.seed, o.seed+uint64(o.seeds)-1, o.messages, o.mixedMessages)
	fmt.Printf("a message is clear of a gap when no byte of its frames was lost; expected: clear, and inflatable (under context takeover after a gap, on its own)\n\n")
	header := fmt.Sprintf("%-8s %4s %-8s %8s %8s %8s %18s %7s %9s %9s %7s %6s %7s", "mix", "K", "by", "sent", "clear", "expected", "recovered", "missing", "uncertain", "corrupted", "undecod", "gaps", "resyncs")
	fmt.Println(header)
	corruptedCaptures, captures := 0, 0
	var all lossycap.Tally
	issue := map[int]lossycap.Tally{}
	start := time.Now()
	for _, mix := range o.mixes {
		for _, k := range o.ks {
			var bySniffer, byDecoder lossycap.Tally
			for s := range o.seeds {
				seed := o.seed + uint64(s)
				c, err := lossycap.Generate(lossyMixes[mix](o, seed, k))
				if err != nil {
					return err
				}
				u, err := sniffCapture(c, filepath.Join(dir, "lossy.pcap"))
				if err != nil {
					return fmt.Errorf("%s K=%d seed %d: %w", mix, k, seed, err)
				}
				v := c.Decode()
				captures++
				if u.Corrupted+v.Corrupted > 0 {
					corruptedCaptures++
					fmt.Printf("  %s K=%d seed %d: corrupted: %v %v\n", mix, k, seed, u.Examples, v.Examples)
				}
				bySniffer.Add(u)
				byDecoder.Add(v)
			}
			for _, row := range []struct {
				by string
				t  lossycap.Tally
			}{{"sniffer", bySniffer}, {"decoder", byDecoder}} {
				t := row.t
				fmt.Printf("%-8s %4d %-8s %8d %8d %8d %8d (%6.3f%%) %7d %9d %9d %7d %6d %7d\n", mix, k, row.by, t.Sent, t.Clear, t.Expected,
					t.Recovered, 100*t.Rate(), t.Missing, t.Uncertain, t.Corrupted, t.Undecodable, t.Gaps, t.Resyncs)
			}
			all.Add(bySniffer)
			all.Add(byDecoder)
			if mix == "issue" {
				issue[k] = bySniffer
			}
		}
	}
	fmt.Printf("\n%d captures in %s\n\ntargets:\n", captures, time.Since(start).Round(time.Second))
	verdict(all.Corrupted == 0, "no corrupted message: %d (in %d of %d captures), over %d resyncs", all.Corrupted, corruptedCaptures, captures, all.Resyncs)
	for _, k := range o.ks {
		if t, ok := issue[k]; ok {
			verdict(t.Rate() >= 0.999, "issue mix, K=%d: %.3f%% of the messages clear of a gap recovered by the sniffer (want ≥ 99.9%%)", k, 100*t.Rate())
		}
	}
	return nil
}

// sniffCapture writes c to path, runs the sniffer over it and tallies what it
// reported; the file is removed afterwards.
func sniffCapture(c *lossycap.Capture, path string) (lossycap.Tally, error) {
	defer os.Remove(path)
	f, err := os.Create(path)
	if err != nil {
		return lossycap.Tally{}, err
	}
	if err := c.WritePcap(f); err != nil {
		f.Close()
		return lossycap.Tally{}, err
	}
	if err := f.Close(); err != nil {
		return lossycap.Tally{}, err
	}
	src, err := sniff.OpenFile(path)
	if err != nil {
		return lossycap.Tally{}, err
	}
	defer src.Close()
	rec := lossycap.NewRecorder()
	s := sniff.New(sniff.Config{Observers: []plugins.Observer{rec}})
	if err := s.Run(context.Background(), src); err != nil {
		return lossycap.Tally{}, err
	}
	t := c.Check(rec)
	if errs := rec.Errors(); len(errs) > 0 {
		fmt.Printf("  stream errors: %d, first: %s\n", len(errs), errs[0])
	}
	return t, nil
}
