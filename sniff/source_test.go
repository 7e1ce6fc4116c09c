package sniff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/wstap/wstap/internal/pcaptest"
	"github.com/wstap/wstap/plugins"
)

// ngBuilder writes pcapng files block by block, remembering where each block
// ends: the places where a file may be cut without losing part of a record.
type ngBuilder struct {
	order byteOrder
	buf   []byte
	ends  []int // offsets just after each block
}

// byteOrder is binary.LittleEndian or binary.BigEndian.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// ngOpt is one option of a block.
type ngOpt struct {
	code  uint16
	value []byte
}

func (b *ngBuilder) u16(v uint16) { b.buf = b.order.AppendUint16(b.buf, v) }
func (b *ngBuilder) u32(v uint32) { b.buf = b.order.AppendUint32(b.buf, v) }

// block writes a block of type typ whose body is written by body.
func (b *ngBuilder) block(typ uint32, body func()) {
	start := len(b.buf)
	b.u32(typ)
	b.u32(0) // the length, set below
	body()
	for len(b.buf)%4 != 0 {
		b.buf = append(b.buf, 0)
	}
	n := uint32(len(b.buf) - start + 4)
	b.order.PutUint32(b.buf[start+4:], n)
	b.u32(n)
	b.ends = append(b.ends, len(b.buf))
}

// opts writes options and the end of options.
func (b *ngBuilder) opts(opts []ngOpt) {
	if len(opts) == 0 {
		return
	}
	for _, o := range opts {
		b.u16(o.code)
		b.u16(uint16(len(o.value)))
		b.buf = append(b.buf, o.value...)
		for len(b.buf)%4 != 0 {
			b.buf = append(b.buf, 0)
		}
	}
	b.u32(0)
}

// section starts a section in byte order order with the given major version.
func (b *ngBuilder) section(order byteOrder, major uint16) {
	b.order = order
	b.block(ngSectionHeader, func() {
		b.u32(ngByteOrderMagic)
		b.u16(major)
		b.u16(0)
		b.buf = b.order.AppendUint64(b.buf, ^uint64(0)) // section length unknown
		b.opts([]ngOpt{{4, []byte("wstap test")}})      // shb_userappl
	})
}

// iface describes an interface.
func (b *ngBuilder) iface(lt layers.LinkType, snaplen uint32, opts ...ngOpt) {
	b.block(ngInterface, func() {
		b.u16(uint16(lt))
		b.u16(0)
		b.u32(snaplen)
		b.opts(opts)
	})
}

// epb writes an Enhanced Packet Block.
func (b *ngBuilder) epb(id uint32, ts uint64, data []byte, length int, opts ...ngOpt) {
	b.block(ngEnhancedPacket, func() {
		b.u32(id)
		b.u32(uint32(ts >> 32))
		b.u32(uint32(ts))
		b.u32(uint32(len(data)))
		b.u32(uint32(length))
		b.buf = append(b.buf, data...)
		for len(b.buf)%4 != 0 {
			b.buf = append(b.buf, 0)
		}
		b.opts(opts)
	})
}

// spb writes a Simple Packet Block of a packet of length bytes, of which data
// was captured.
func (b *ngBuilder) spb(data []byte, length int) {
	b.block(ngSimplePacket, func() {
		b.u32(uint32(length))
		b.buf = append(b.buf, data...)
	})
}

// pb writes an obsolete Packet Block.
func (b *ngBuilder) pb(id uint16, ts uint64, data []byte) {
	b.block(ngPacketObsolete, func() {
		b.u16(id)
		b.u16(0) // drops
		b.u32(uint32(ts >> 32))
		b.u32(uint32(ts))
		b.u32(uint32(len(data)))
		b.u32(uint32(len(data)))
		b.buf = append(b.buf, data...)
	})
}

// tsresol and tsoffset are the interface options of a timestamp unit and offset.
func tsresol(v byte) ngOpt { return ngOpt{ngOptTSResolution, []byte{v}} }
func tsoffset(order byteOrder, sec int64) ngOpt {
	return ngOpt{ngOptTSOffset, order.AppendUint64(nil, uint64(sec))}
}

// readAll reads every packet of src, copied.
type readPacket struct {
	data []byte
	ci   gopacket.CaptureInfo
	lt   layers.LinkType
}

func readAll(src Source) ([]readPacket, error) {
	var out []readPacket
	for {
		data, ci, lt, err := src.ReadPacket()
		if err != nil {
			return out, err
		}
		ci.AncillaryData = nil
		out = append(out, readPacket{bytes.Clone(data), ci, lt})
	}
}

// TestPcapngInterfaces reads sections in both byte orders whose interfaces have
// different link types, snap lengths and timestamp units and offsets, every kind
// of packet block, blocks the reader skips, and a section of an unknown version.
func TestPcapngInterfaces(t *testing.T) {
	base := time.Date(2026, 11, 25, 20, 0, 0, 123456789, time.UTC)
	b := &ngBuilder{}
	b.section(binary.LittleEndian, 1)
	b.iface(layers.LinkTypeEthernet, 262144, ngOpt{2, []byte("eth0")}) // if_name; microseconds
	b.iface(layers.LinkTypeLinuxSLL, 0, tsresol(9))
	b.iface(layers.LinkTypeRaw, 0, tsresol(0x80|20), ngOpt{3, []byte("a description")}) // 2^-20 s
	b.iface(layers.LinkTypeNull, 0, tsresol(3), tsoffset(binary.LittleEndian, -1000))   // ms, 1000 s earlier
	b.block(4, func() { b.u32(0) })                                                     // a name resolution block, empty
	b.block(0x0bad, func() { b.u32(42) })                                               // an unknown block
	us := uint64(base.UnixMicro())
	b.epb(0, us, []byte("eth packet"), 60, ngOpt{1, []byte("a comment")})
	b.epb(1, uint64(base.UnixNano()), []byte("sll packet"), 10)
	b.epb(2, uint64(base.Unix())<<20|1<<19, []byte("raw"), 3) // half a second
	b.epb(3, uint64(base.UnixMilli()+1000_000), []byte("null"), 4)
	b.spb([]byte("simple\x00\x00"), 6) // interface 0: data cut to the packet's length
	b.pb(1, uint64(base.UnixNano()), []byte("obsolete"))
	b.block(5, func() { b.u32(0); b.u32(0); b.u32(0) }) // interface statistics

	b.section(binary.BigEndian, 1) // interfaces start again
	b.iface(layers.LinkTypeIPv4, 4, tsresol(6))
	b.iface(layers.LinkTypeEthernet, 0, tsresol(9), tsoffset(binary.BigEndian, 7))
	b.epb(1, uint64(base.UnixNano()), []byte("big-endian"), 10)
	b.spb([]byte("snapped to 4"), 12)

	b.section(binary.LittleEndian, 2) // an unknown major version: skipped whole
	b.iface(layers.LinkTypeEthernet, 0)
	b.epb(0, 0, []byte("from the future"), 15)

	b.section(binary.LittleEndian, 1)
	b.iface(layers.LinkTypeLinuxSLL2, 0)
	b.epb(0, us, []byte("last"), 4)

	type want struct {
		data   string
		lt     layers.LinkType
		ts     time.Time
		length int
		iface  int
	}
	wants := []want{
		{"eth packet", layers.LinkTypeEthernet, base.Truncate(time.Microsecond), 60, 0},
		{"sll packet", layers.LinkTypeLinuxSLL, base, 10, 1},
		{"raw", layers.LinkTypeRaw, base.Truncate(time.Second).Add(time.Second / 2), 3, 2},
		{"null", layers.LinkTypeNull, base.Truncate(time.Millisecond), 4, 3},
		{"simple", layers.LinkTypeEthernet, time.Time{}, 6, 0},
		{"obsolete", layers.LinkTypeLinuxSLL, base, 8, 1},
		{"big-endian", layers.LinkTypeEthernet, base.Add(7 * time.Second), 10, 1},
		{"snap", layers.LinkTypeIPv4, time.Time{}, 12, 0},
		{"last", layers.LinkTypeLinuxSLL2, base.Truncate(time.Microsecond), 4, 0},
	}
	src, err := NewFileSource(bytes.NewReader(b.buf))
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(src)
	if err != io.EOF {
		t.Fatalf("read %d packets, then %v; want io.EOF", len(got), err)
	}
	if len(got) != len(wants) {
		t.Fatalf("%d packets, want %d: %+v", len(got), len(wants), got)
	}
	for i, w := range wants {
		g := got[i]
		if string(g.data) != w.data || g.lt != w.lt || !g.ci.Timestamp.Equal(w.ts) || g.ci.Length != w.length ||
			g.ci.CaptureLength != len(w.data) || g.ci.InterfaceIndex != w.iface {
			t.Errorf("packet %d: %q %v %v len %d/%d iface %d; want %q %v %v len %d/%d iface %d", i,
				g.data, g.lt, g.ci.Timestamp, g.ci.CaptureLength, g.ci.Length, g.ci.InterfaceIndex,
				w.data, w.lt, w.ts, len(w.data), w.length, w.iface)
		}
	}

	// gopacket's reader, the reference where it can read the file, agrees.
	opts := pcapgo.DefaultNgReaderOptions
	opts.WantMixedLinkType, opts.SkipUnknownVersion = true, true
	ref, err := pcapgo.NewNgReader(bytes.NewReader(b.buf), opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		data, ci, err := ref.ReadPacketData()
		if err != nil {
			t.Fatalf("pcapgo, packet %d: %v", i, err)
		}
		g := got[i]
		if i == 2 {
			// pcapgo scales binary units by a whole number of nanoseconds (953 for
			// 2^-20 s): half a second reads as 0.499646464 s.
			ci.Timestamp = g.ci.Timestamp
		}
		if !bytes.Equal(data, g.data) || !ci.Timestamp.Equal(g.ci.Timestamp) || ci.Length != g.ci.Length ||
			ci.AncillaryData[0] != g.lt {
			t.Errorf("packet %d: pcapgo reads %q %v len %d %v, we %q %v len %d %v", i,
				data, ci.Timestamp, ci.Length, ci.AncillaryData[0], g.data, g.ci.Timestamp, g.ci.Length, g.lt)
		}
	}
}

// TestFileSourceMatchesPcapgo reads the real captures and a few written by pcapgo
// with our readers and pcapgo's: the same packets, times and link types.
func TestFileSourceMatchesPcapgo(t *testing.T) {
	files := []string{"testdata/ws-plain.pcap", "testdata/ws-deflate-gorilla.pcapng", "testdata/ws-deflate-ctx.pcap"}
	lt, pkts := pcaptest.Read(t, "testdata/ws-plain.pcap")
	dir := t.TempDir()
	nanos := filepath.Join(dir, "nanos.pcap")
	pcaptest.Write(t, nanos, lt, pkts[:50])
	var ng bytes.Buffer
	w, err := pcapgo.NewNgWriter(&ng, lt)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := w.AddInterface(pcapgo.NgInterface{LinkType: layers.LinkTypeRaw, TimestampOffset: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts[:50] {
		ci := p.CI
		data := p.Data
		if i%2 == 1 {
			ci.InterfaceIndex, data = raw, data[14:]
		}
		ci.CaptureLength, ci.Length = len(data), len(data)
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	written := filepath.Join(dir, "two-interfaces.pcapng")
	if err := os.WriteFile(written, ng.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	files = append(files, nanos, written)

	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			src, err := OpenFile(file)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			got, err := readAll(src)
			if err != io.EOF {
				t.Fatalf("after %d packets: %v", len(got), err)
			}
			want := readPcapgo(t, file)
			if len(got) != len(want) {
				t.Fatalf("%d packets, pcapgo reads %d", len(got), len(want))
			}
			for i := range want {
				g, w := got[i], want[i]
				if !bytes.Equal(g.data, w.data) || !g.ci.Timestamp.Equal(w.ci.Timestamp) || g.lt != w.lt ||
					g.ci.CaptureLength != w.ci.CaptureLength || g.ci.Length != w.ci.Length {
					t.Fatalf("packet %d: %d bytes %v %v len %d, pcapgo: %d bytes %v %v len %d", i,
						len(g.data), g.ci.Timestamp, g.lt, g.ci.Length, len(w.data), w.ci.Timestamp, w.lt, w.ci.Length)
				}
			}
		})
	}
}

// readPcapgo reads a capture file with pcapgo.
func readPcapgo(t *testing.T, file string) []readPacket {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var next func() ([]byte, gopacket.CaptureInfo, error)
	var lt func(gopacket.CaptureInfo) layers.LinkType
	if strings.HasSuffix(file, ".pcapng") {
		opts := pcapgo.DefaultNgReaderOptions
		opts.WantMixedLinkType = true
		r, err := pcapgo.NewNgReader(f, opts)
		if err != nil {
			t.Fatal(err)
		}
		next = r.ReadPacketData
		lt = func(ci gopacket.CaptureInfo) layers.LinkType { return ci.AncillaryData[0].(layers.LinkType) }
	} else {
		r, err := pcapgo.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		next = r.ReadPacketData
		lt = func(gopacket.CaptureInfo) layers.LinkType { return r.LinkType() }
	}
	var out []readPacket
	for {
		data, ci, err := next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, readPacket{data, ci, lt(ci)})
	}
}

// TestPcapngManyInterfaces reads a section that describes far more interfaces
// than anyone captures on: the memory the reader allocates stays small, however
// many there are (pcapgo's reader kept them all: 1.6 GB for two million), packets
// on the interfaces it keeps are read, and a packet on one past them is a clear
// error, not a wrong link type.
func TestPcapngManyInterfaces(t *testing.T) {
	const n = 300_000 // 6 MB of minimal descriptions; pcapgo allocated ~150 MB for them
	b := &ngBuilder{}
	b.section(binary.LittleEndian, 1)
	for i := range n {
		lt := layers.LinkTypeEthernet
		if i == maxInterfaces-1 {
			lt = layers.LinkTypeLinuxSLL
		}
		b.iface(lt, 0)
	}
	b.epb(0, 1, []byte("first"), 5)
	b.epb(maxInterfaces-1, 2, []byte("last kept"), 9)
	b.epb(maxInterfaces, 3, []byte("past the limit"), 14)
	file := filepath.Join(t.TempDir(), "many-interfaces.pcapng")
	if err := os.WriteFile(file, b.buf, 0o644); err != nil {
		t.Fatal(err)
	}
	b = nil

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	src, err := OpenFile(file)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got, err := readAll(src)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d interfaces: %d KiB allocated while reading", n, allocated>>10)
	const limit = 16 << 20
	if allocated > limit {
		t.Errorf("reading allocated %d MiB, want at most %d MiB", allocated>>20, limit>>20)
	}
	if len(got) != 2 || string(got[0].data) != "first" || got[0].lt != layers.LinkTypeEthernet ||
		string(got[1].data) != "last kept" || got[1].lt != layers.LinkTypeLinuxSLL {
		t.Errorf("packets %+v", got)
	}
	if err == nil || err == io.EOF || !strings.Contains(err.Error(), "interface 65536") {
		t.Errorf("a packet on interface %d: %v, want an error naming it", maxInterfaces, err)
	}
}

// TestFileSourceCut cuts small captures at every byte: a cut between two records
// ends the file cleanly with the packets before it; a cut anywhere else (in a
// file or record header, exactly after one, in a packet's data, in a pcapng
// block's options or trailer) is an error wrapping io.ErrUnexpectedEOF, after the
// whole packets before it; a cut in the magic number is not a capture at all.
func TestFileSourceCut(t *testing.T) {
	dir := t.TempDir()
	pcapFile := filepath.Join(dir, "cut.pcap")
	pkts := []pcaptest.Packet{
		{CI: gopacket.CaptureInfo{Timestamp: time.Unix(1, 0)}, Data: []byte("a packet of 27 bytes......")},
		{CI: gopacket.CaptureInfo{Timestamp: time.Unix(2, 0)}, Data: nil}, // empty: its header is the whole record
		{CI: gopacket.CaptureInfo{Timestamp: time.Unix(3, 0)}, Data: []byte("x")},
	}
	pcaptest.Write(t, pcapFile, layers.LinkTypeEthernet, pkts)
	pcapData, err := os.ReadFile(pcapFile)
	if err != nil {
		t.Fatal(err)
	}
	pcapEnds := []int{24} // the file header, then each record
	for _, p := range pkts {
		pcapEnds = append(pcapEnds, pcapEnds[len(pcapEnds)-1]+16+len(p.Data))
	}

	ng := &ngBuilder{}
	ng.section(binary.BigEndian, 1)
	ng.iface(layers.LinkTypeEthernet, 0, tsresol(9))
	ng.epb(0, 1, []byte("enhanced"), 8, ngOpt{1, []byte("comment")})
	ng.block(4, func() { ng.u32(0) })
	ng.spb([]byte("simple"), 6)
	ng.section(binary.LittleEndian, 1)
	ng.iface(layers.LinkTypeRaw, 0)
	ng.epb(0, 2, nil, 0)
	ng.pb(0, 3, []byte("obsolete"))

	cases := []struct {
		name  string
		data  []byte
		ends  []int             // offsets where a record ends
		pkts  func(end int) int // packets in the records before end
		total int
	}{
		{"pcap", pcapData, pcapEnds, func(end int) int { return index(pcapEnds, end) }, 3},
		{"pcapng", ng.buf, ng.ends, func(end int) int {
			return map[int]int{0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 5: 2, 6: 2, 7: 3, 8: 4}[index(ng.ends, end)]
		}, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			whole := 0
			for cut := 0; cut <= len(tc.data); cut++ {
				// The packets wholly before the cut, and whether it falls between records.
				before, clean := 0, false
				for _, end := range tc.ends {
					if end <= cut {
						before = tc.pkts(end)
					}
					clean = clean || end == cut
				}
				src, err := NewFileSource(bytes.NewReader(tc.data[:cut]))
				var got []readPacket
				if err == nil {
					got, err = readAll(src)
				}
				switch {
				case cut < 4:
					if !errors.Is(err, ErrNotCapture) {
						t.Errorf("cut at %d: %v, want ErrNotCapture", cut, err)
					}
					continue
				case clean:
					if err != io.EOF {
						t.Errorf("cut at %d, between records: %v, want io.EOF", cut, err)
					}
				default:
					if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "cut short") {
						t.Errorf("cut at %d, inside a record: %v, want a cut short error wrapping io.ErrUnexpectedEOF", cut, err)
					}
				}
				if len(got) != before {
					t.Errorf("cut at %d: %d packets, want %d", cut, len(got), before)
				}
				whole = len(got)
			}
			if whole != tc.total {
				t.Errorf("the whole file has %d packets, want %d", whole, tc.total)
			}
		})
	}
}

// index returns the position of v in s, or -1.
func index(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestPcapByteOrders reads pcap files in both byte orders and timestamp units,
// written by hand, and refuses other versions.
func TestPcapByteOrders(t *testing.T) {
	file := func(order byteOrder, magic uint32, major uint16, frac uint32) []byte {
		var b []byte
		b = order.AppendUint32(b, magic)
		b = order.AppendUint16(b, major)
		b = order.AppendUint16(b, 4)
		b = append(b, make([]byte, 8)...)
		b = order.AppendUint32(b, 65535)
		b = order.AppendUint32(b, 0x1000_0000|uint32(layers.LinkTypeLinuxSLL)) // with an FCS length above the type
		b = order.AppendUint32(b, 1_700_000_000)
		b = order.AppendUint32(b, frac)
		b = order.AppendUint32(b, 3)
		b = order.AppendUint32(b, 70)
		return append(b, "abc"...)
	}
	when := time.Unix(1_700_000_000, 250_000_000).UTC()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"little-endian µs", file(binary.LittleEndian, magicPcapMicros, 2, 250_000)},
		{"big-endian µs", file(binary.BigEndian, magicPcapMicros, 2, 250_000)},
		{"little-endian ns", file(binary.LittleEndian, magicPcapNanos, 2, 250_000_000)},
		{"big-endian ns", file(binary.BigEndian, magicPcapNanos, 2, 250_000_000)},
		{"version 3", file(binary.LittleEndian, magicPcapMicros, 3, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := NewFileSource(bytes.NewReader(tc.data))
			if strings.HasPrefix(tc.name, "version") {
				if !errors.Is(err, ErrNotCapture) {
					t.Fatalf("%v, want ErrNotCapture", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := readAll(src)
			if err != io.EOF || len(got) != 1 {
				t.Fatalf("%d packets, %v", len(got), err)
			}
			if g := got[0]; string(g.data) != "abc" || g.lt != layers.LinkTypeLinuxSLL || !g.ci.Timestamp.Equal(when) || g.ci.Length != 70 {
				t.Errorf("%q %v %v len %d", g.data, g.lt, g.ci.Timestamp, g.ci.Length)
			}
		})
	}
}

// TestPcapngMixedLinkTypesSniffed spreads the packets of a real capture over four
// interfaces of one pcapng section, each with its own link type (the frames
// rewritten to match) and timestamp unit or offset: sniffing it gives the same
// events, at the same times, as sniffing the original.
func TestPcapngMixedLinkTypesSniffed(t *testing.T) {
	const file = "testdata/ws-plain.pcap"
	lt, pkts := pcaptest.Read(t, file)
	if lt != layers.LinkTypeEthernet {
		t.Fatalf("%s has link type %v, want Ethernet", file, lt)
	}
	b := &ngBuilder{}
	b.section(binary.LittleEndian, 1)
	b.iface(layers.LinkTypeEthernet, 0)
	b.iface(layers.LinkTypeRaw, 0, tsresol(9))
	b.iface(layers.LinkTypeLinuxSLL, 0, tsresol(9), tsoffset(binary.LittleEndian, 1000))
	b.iface(layers.LinkTypeNull, 65535)
	for i, p := range pkts {
		eth, ip := p.Data[:14], p.Data[14:]
		ts := uint64(p.CI.Timestamp.UnixMicro())
		var data []byte
		switch id := i % 4; id {
		case 0:
			data = p.Data
		case 1:
			data, ts = ip, uint64(p.CI.Timestamp.UnixNano())
		case 2:
			sll := []byte{0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, eth[12], eth[13]} // to us, ARPHRD_ETHER, no address
			data, ts = append(sll, ip...), uint64(p.CI.Timestamp.Add(-1000*time.Second).UnixNano())
		case 3:
			data = append([]byte{2, 0, 0, 0}, ip...) // AF_INET, little-endian
		}
		b.epb(uint32(i%4), ts, data, len(data))
	}
	want, _ := sniffFile(t, file, Config{})

	src, err := NewFileSource(bytes.NewReader(b.buf))
	if err != nil {
		t.Fatal(err)
	}
	got := &recorder{}
	s := New(Config{Observers: []plugins.Observer{got}})
	if err := s.Run(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Packets != int64(len(pkts)) || st.TCPPackets != int64(len(pkts)) {
		t.Errorf("stats %+v, want all %d packets decoded as TCP", st, len(pkts))
	}
	if len(got.events) != len(want.events) || len(want.events) < 30 {
		t.Fatalf("%d events, want %d:\n%s", len(got.events), len(want.events), got.dump())
	}
	for i, w := range want.events {
		g := got.events[i]
		if g.String() != w.String() || !bytes.Equal(g.payload, w.payload) || !g.time.Equal(w.time) {
			t.Errorf("event %d: %s at %v, want %s at %v", i, g, g.time, w, w.time)
		}
	}
}

// FuzzFileSource reads random bytes as a capture file: no panic, every packet's
// data as long as its capture length, and every error one of the documented
// kinds.
func FuzzFileSource(f *testing.F) {
	ng := &ngBuilder{}
	ng.section(binary.BigEndian, 1)
	ng.iface(layers.LinkTypeEthernet, 4, tsresol(0x80|10), tsoffset(binary.BigEndian, 5))
	ng.epb(0, 1, []byte("enhanced"), 8, ngOpt{1, []byte("comment")})
	ng.spb([]byte("simple"), 6)
	ng.pb(0, 3, []byte("obsolete"))
	ng.section(binary.LittleEndian, 2)
	f.Add(ng.buf)
	for _, name := range []string{"ws-plain.pcap", "ws-deflate-gorilla.pcapng"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:min(len(data), 2000)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		src, err := NewFileSource(bytes.NewReader(data))
		for err == nil {
			var pkt []byte
			var ci gopacket.CaptureInfo
			pkt, ci, _, err = src.ReadPacket()
			if err == nil && len(pkt) != ci.CaptureLength {
				t.Fatalf("%d bytes of data, capture length %d", len(pkt), ci.CaptureLength)
			}
		}
		if err == io.EOF || errors.Is(err, ErrNotCapture) || errors.Is(err, io.ErrUnexpectedEOF) ||
			strings.HasPrefix(err.Error(), "sniff: capture file damaged: ") {
			return
		}
		t.Fatalf("error of no documented kind: %v", err)
	})
}
