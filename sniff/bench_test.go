package sniff

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/plugins"
)

// benchCapture is an in-order capture of one connection with many messages.
func benchCapture(b *testing.B) []byte {
	b.Helper()
	t := &testing.T{}
	rng := rand.New(rand.NewPCG(1, 1))
	f := buildFlow(t, rng, flowOpts{handshake: true, messages: 3000})
	pkts, _ := segments(rng, f, perturb{maxSeg: 1460})
	var file bytes.Buffer
	writePcap(t, &file, f, pkts, linkSpec{lt: layers.LinkTypeEthernet}, [2]uint32{1, 2}, false)
	return file.Bytes()
}

// BenchmarkSniffJSONL measures a capture read, reassembled, decoded and written as
// JSONL (to nowhere).
func BenchmarkSniffJSONL(b *testing.B) {
	data := benchCapture(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		src, err := NewFileSource(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		j := eventlog.NewJSONL(io.Discard, eventlog.Block)
		s := New(Config{Observers: []plugins.Observer{j}})
		if err := s.Run(context.Background(), src); err != nil {
			b.Fatal(err)
		}
		j.Close()
	}
}
