// Package pcaptest reads and writes whole pcap files, for tests that rewrite
// captures (cut, reorder, fragment or repeat their packets). It is used by tests
// only.
package pcaptest

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Packet is one packet of a pcap file.
type Packet struct {
	CI   gopacket.CaptureInfo
	Data []byte
}

// Read returns a pcap file's link type and packets.
func Read(t testing.TB, file string) (layers.LinkType, []Packet) {
	t.Helper()
	src, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	r, err := pcapgo.NewReader(src)
	if err != nil {
		t.Fatal(err)
	}
	var pkts []Packet
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return r.LinkType(), pkts
		} else if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, Packet{ci, data})
	}
}

// Write writes packets into a pcap file with nanosecond timestamps, each
// packet's lengths set to its data's.
func Write(t testing.TB, file string, lt layers.LinkType, pkts []Packet) {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriterNanos(&buf)
	if err := w.WriteFileHeader(262144, lt); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		p.CI.CaptureLength, p.CI.Length = len(p.Data), len(p.Data)
		if err := w.WritePacket(p.CI, p.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
