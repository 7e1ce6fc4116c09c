package sniff

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Source delivers captured packets: a capture file ([OpenFile]) or a live interface
// (the capture package). A Source is used by one goroutine, except for Close.
type Source interface {
	// ReadPacket returns the next packet with its capture info and link type. data
	// is valid until the next call (the Sniffer may modify it in place: it unmasks
	// WebSocket payloads there). At the end of a file it returns io.EOF.
	ReadPacket() (data []byte, ci gopacket.CaptureInfo, lt layers.LinkType, err error)
	// Close releases the source. It may be called from another goroutine while
	// ReadPacket blocks, and must then make ReadPacket return; calling it twice is
	// harmless.
	Close() error
}

// SourceFunc adapts a packet-yielding function to a [Source] whose Close does
// nothing; it suits generated or in-memory packets.
type SourceFunc func() (data []byte, ci gopacket.CaptureInfo, lt layers.LinkType, err error)

// ReadPacket calls f.
func (f SourceFunc) ReadPacket() ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
	return f()
}

// Close does nothing.
func (f SourceFunc) Close() error { return nil }

// WithClose returns a Source that reads with f and closes with close.
func (f SourceFunc) WithClose(close func() error) Source {
	return funcSource{f, close}
}

type funcSource struct {
	SourceFunc
	close func() error
}

func (s funcSource) Close() error { return s.close() }

// ErrNotCapture is returned by [OpenFile] and [NewFileSource] for input that is
// neither a pcap nor a pcapng file.
var ErrNotCapture = errors.New("sniff: not a pcap or pcapng file")

// File format magic numbers, as the first four bytes of the file read big-endian.
const (
	magicPcapMicros        = 0xa1b2c3d4
	magicPcapMicrosSwapped = 0xd4c3b2a1
	magicPcapNanos         = 0xa1b23c4d
	magicPcapNanosSwapped  = 0x4d3cb2a1
	magicPcapNG            = 0x0a0d0d0a // the section header block type, the same in both byte orders
)

// Limits on what a capture file can make the reader hold.
const (
	// maxPacketLen is the longest packet record a capture file may hold; a longer
	// one is reported as an error. Real packets, even GRO-merged ones, are far
	// shorter.
	maxPacketLen = 16 << 20

	// maxInterfaces is how many interfaces of one pcapng section are kept: as many
	// as the obsolete Packet Block can address. A section may describe more (a
	// 40 MB file holds two million minimal descriptions); the rest are counted,
	// not kept, and a packet on one of them is reported as an error.
	maxInterfaces = 1 << 16

	// eagerLen is the longest packet whose buffer is allocated before its bytes
	// are read (libpcap's maximum snap length); above it the buffer grows with
	// the bytes that arrive, so a length field cannot allocate more than the file
	// holds.
	eagerLen = 256 << 10
)

// FileSource reads a pcap or pcapng file. Pos and Size tell how far it has read,
// for a progress display; they are safe to call from any goroutine.
//
// Its readers are our own rather than pcapgo's: pcapgo's pcapng reader keeps every
// block describing an interface (1.6 GB for a 40 MB file of two million), and its
// pcap reader ends a file cut right after a record header as if it had ended
// cleanly. Here memory is bounded whatever the file holds (the packet being read,
// and 64 Ki small interface records per pcapng section), and a file cut
// anywhere but between two records ends with an error wrapping
// io.ErrUnexpectedEOF.
type FileSource struct {
	closer io.Closer
	count  *countingReader
	size   int64
	rec    recordReader

	closeOnce sync.Once
	closeErr  error
}

// recordReader reads the packets of one file format.
type recordReader interface {
	next() ([]byte, gopacket.CaptureInfo, layers.LinkType, error)
}

// OpenFile opens a pcap or pcapng capture file, telling the formats apart by their
// magic number. A file that is neither is [ErrNotCapture]; one cut short in its
// header, an error wrapping io.ErrUnexpectedEOF.
func OpenFile(path string) (*FileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // names the file already
	}
	var size int64 = -1
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	s, err := newFileSource(f, size)
	if err != nil {
		f.Close()
		return nil, &fileError{path, err}
	}
	s.closer = f
	return s, nil
}

// NewFileSource reads a pcap or pcapng file from r, as [OpenFile] does. Close does
// not close r.
func NewFileSource(r io.Reader) (*FileSource, error) {
	return newFileSource(r, -1)
}

// newFileSource reads the file header.
func newFileSource(r io.Reader, size int64) (*FileSource, error) {
	cr := &countingReader{r: r}
	fr := &fileReader{br: bufio.NewReaderSize(cr, 1<<20)}
	magic, err := fr.br.Peek(4)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w (empty or shorter than a file header)", ErrNotCapture)
		}
		return nil, fmt.Errorf("sniff: %w", err)
	}
	s := &FileSource{count: cr, size: size}
	switch binary.BigEndian.Uint32(magic) {
	case magicPcapMicros, magicPcapMicrosSwapped, magicPcapNanos, magicPcapNanosSwapped:
		s.rec, err = newPcapReader(fr)
	case magicPcapNG:
		s.rec, err = newNgReader(fr)
	default:
		return nil, fmt.Errorf("%w (magic number %x)", ErrNotCapture, magic)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// ReadPacket returns the next packet; its data is reused by the next call. At
// the end of the file it returns io.EOF; a file cut short inside a record (a
// packet's header or data, or any pcapng block) ends with an error wrapping
// io.ErrUnexpectedEOF instead.
func (s *FileSource) ReadPacket() ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
	return s.rec.next()
}

// fileReader reads the records of a capture file, knowing where each starts so
// that it can tell a file that ends between two records (io.EOF) from one cut
// short inside a record (io.ErrUnexpectedEOF), and name the record an error is
// about.
type fileReader struct {
	br    *bufio.Reader
	off   int64  // bytes consumed
	start int64  // offset of the current record
	buf   []byte // packet data, reused
}

// begin reads the first n bytes (at most 32) of a record. It returns io.EOF when
// the file ends right before the record. The bytes are valid until the next read.
func (r *fileReader) begin(n int) ([]byte, error) {
	r.start = r.off
	b, err := r.br.Peek(n)
	if len(b) == 0 && errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	return r.consume(b, n, err)
}

// fixed reads the next n bytes (at most 32) of the current record. The bytes are
// valid until the next read.
func (r *fileReader) fixed(n int) ([]byte, error) {
	b, err := r.br.Peek(n)
	return r.consume(b, n, err)
}

func (r *fileReader) consume(b []byte, n int, err error) ([]byte, error) {
	if len(b) < n {
		r.off += int64(len(b))
		r.br.Discard(len(b))
		return nil, r.readErr(err)
	}
	r.br.Discard(n)
	r.off += int64(n)
	return b, nil
}

// skip skips n bytes of the current record.
func (r *fileReader) skip(n int64) error {
	for n > 0 {
		k, err := r.br.Discard(int(min(n, 1<<30)))
		r.off += int64(k)
		n -= int64(k)
		if err != nil {
			return r.readErr(err)
		}
	}
	return nil
}

// packet reads n bytes of packet data of the current record into the reused
// buffer.
func (r *fileReader) packet(n int) ([]byte, error) {
	if n <= cap(r.buf) || n <= eagerLen {
		if n > cap(r.buf) {
			r.buf = make([]byte, max(n, 64<<10))
		}
		k, err := io.ReadFull(r.br, r.buf[:n])
		r.off += int64(k)
		if err != nil {
			return nil, r.readErr(err)
		}
		return r.buf[:n], nil
	}
	// Grow with the bytes that arrive: a length field alone cannot make the
	// reader allocate.
	buf := r.buf[:0]
	for len(buf) < n {
		chunk := min(n-len(buf), max(len(buf), eagerLen))
		buf = slices.Grow(buf, chunk)
		k, err := io.ReadFull(r.br, buf[len(buf):len(buf)+chunk])
		buf = buf[:len(buf)+k]
		r.off += int64(k)
		if err != nil {
			r.buf = buf
			return nil, r.readErr(err)
		}
	}
	r.buf = buf
	return buf, nil
}

// readErr describes an error met inside the current record.
func (r *fileReader) readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("sniff: capture file cut short inside the record at byte %d: %w", r.start, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("sniff: reading the capture: %w", err)
}

// corrupt describes a malformed record; format continues "the record at byte N".
func (r *fileReader) corrupt(format string, args ...any) error {
	return fmt.Errorf("sniff: capture file damaged: the record at byte %d "+format, append([]any{r.start}, args...)...)
}

// pcapReader reads the classic pcap format: a 24-byte file header, then a
// 16-byte header before each packet.
type pcapReader struct {
	r        *fileReader
	order    binary.ByteOrder
	nanos    bool
	linkType layers.LinkType
}

func newPcapReader(r *fileReader) (*pcapReader, error) {
	h, err := r.begin(24)
	if err != nil {
		return nil, err
	}
	p := &pcapReader{r: r, order: binary.LittleEndian}
	switch magic := binary.BigEndian.Uint32(h); magic {
	case magicPcapMicros, magicPcapNanos: // written big-endian
		p.order = binary.BigEndian
		p.nanos = magic == magicPcapNanos
	default:
		p.nanos = magic == magicPcapNanosSwapped
	}
	if major := p.order.Uint16(h[4:]); major != 2 {
		return nil, fmt.Errorf("%w: pcap version %d.%d, want 2.x", ErrNotCapture, major, p.order.Uint16(h[6:]))
	}
	// The link-layer header type is the low 16 bits; the FCS length is above.
	p.linkType = layers.LinkType(p.order.Uint32(h[20:]) & 0xffff)
	return p, nil
}

func (p *pcapReader) next() ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
	var ci gopacket.CaptureInfo
	h, err := p.r.begin(16)
	if err != nil {
		return nil, ci, 0, err
	}
	sec, frac := int64(p.order.Uint32(h)), int64(p.order.Uint32(h[4:]))
	caplen, length := p.order.Uint32(h[8:]), p.order.Uint32(h[12:])
	if !p.nanos {
		frac *= 1000
	}
	if caplen > maxPacketLen {
		return nil, ci, 0, p.r.corrupt("holds a %d-byte packet, above the %d bytes wstap reads", caplen, maxPacketLen)
	}
	data, err := p.r.packet(int(caplen))
	if err != nil {
		return nil, ci, 0, err
	}
	ci.Timestamp = time.Unix(sec, frac).UTC()
	ci.CaptureLength, ci.Length = int(caplen), int(length)
	return data, ci, p.linkType, nil
}

// pcapng block types and option codes used here.
const (
	ngSectionHeader   = 0x0a0d0d0a
	ngInterface       = 1
	ngPacketObsolete  = 2
	ngSimplePacket    = 3
	ngEnhancedPacket  = 6
	ngByteOrderMagic  = 0x1a2b3c4d
	ngOptEnd          = 0
	ngOptTSResolution = 9
	ngOptTSOffset     = 14
)

// ngReader reads pcapng: sections, each a Section Header Block followed by
// blocks, among them Interface Description Blocks (link type, snap length,
// timestamp unit and offset per interface) and the packet blocks that refer to
// them. Every other block is skipped unread.
type ngReader struct {
	r     *fileReader
	order binary.ByteOrder
	skip  bool // the section has a major version other than 1: skip it

	ifaces []ngIface // of the current section, at most maxInterfaces
	nIface int       // interfaces described in the current section
}

// ngIface is what a packet needs of its interface, in 16 bytes.
type ngIface struct {
	offset   int64 // seconds added to every timestamp
	snaplen  uint32
	linkType layers.LinkType
	tsresol  uint8 // timestamp unit, as in the if_tsresol option (valid)
}

func newNgReader(r *fileReader) (*ngReader, error) {
	ng := &ngReader{r: r}
	h, err := r.begin(8)
	if err != nil {
		return nil, err
	}
	if err := ng.section(h); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s", ErrNotCapture, strings.TrimPrefix(err.Error(), "sniff: "))
	}
	return ng, nil
}

func (ng *ngReader) next() ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
	for {
		h, err := ng.r.begin(8)
		if err != nil {
			return nil, gopacket.CaptureInfo{}, 0, err
		}
		typ := binary.LittleEndian.Uint32(h) // ngSectionHeader reads the same either way
		if typ == ngSectionHeader {
			if err := ng.section(h); err != nil {
				return nil, gopacket.CaptureInfo{}, 0, err
			}
			continue
		}
		typ = ng.order.Uint32(h)
		blockLen := ng.order.Uint32(h[4:])
		if blockLen < 12 || blockLen%4 != 0 {
			return nil, gopacket.CaptureInfo{}, 0, ng.r.corrupt("has a length of %d bytes, not a multiple of 4 of at least 12", blockLen)
		}
		body := int64(blockLen) - 12 // between the length and the trailing length
		if ng.skip {
			typ = 0 // an unknown type: skipped
		}
		switch typ {
		case ngInterface:
			err = ng.iface(body)
		case ngEnhancedPacket, ngPacketObsolete, ngSimplePacket:
			data, ci, lt, err := ng.packet(typ, body)
			if err == nil {
				err = ng.trailer(blockLen)
			}
			if err != nil {
				return nil, ci, 0, err
			}
			return data, ci, lt, nil
		default:
			err = ng.r.skip(body)
		}
		if err == nil {
			err = ng.trailer(blockLen)
		}
		if err != nil {
			return nil, gopacket.CaptureInfo{}, 0, err
		}
	}
}

// section reads a Section Header Block after its first 8 bytes h: the byte
// order and version of the blocks that follow; it forgets the previous section's
// interfaces.
func (ng *ngReader) section(h []byte) error {
	rawLen := [4]byte(h[4:8]) // h is not valid after the next read
	b, err := ng.r.fixed(8)
	if err != nil {
		return err
	}
	switch {
	case binary.BigEndian.Uint32(b) == ngByteOrderMagic:
		ng.order = binary.BigEndian
	case binary.LittleEndian.Uint32(b) == ngByteOrderMagic:
		ng.order = binary.LittleEndian
	default:
		return ng.r.corrupt("(a section header) has byte-order magic %x, want %x", b[:4], ngByteOrderMagic)
	}
	major := ng.order.Uint16(b[4:])
	blockLen := ng.order.Uint32(rawLen[:])
	if blockLen < 28 || blockLen%4 != 0 {
		return ng.r.corrupt("(a section header) has a length of %d bytes, not a multiple of 4 of at least 28", blockLen)
	}
	// The section length (8 bytes) and options are not needed.
	if err := ng.r.skip(int64(blockLen) - 16 - 4); err != nil {
		return err
	}
	if err := ng.trailer(blockLen); err != nil {
		return err
	}
	ng.skip = major != 1 // a reader must skip a major version it does not know
	ng.ifaces, ng.nIface = ng.ifaces[:0], 0
	return nil
}

// trailer reads a block's trailing length, which must repeat its length.
func (ng *ngReader) trailer(blockLen uint32) error {
	b, err := ng.r.fixed(4)
	if err != nil {
		return err
	}
	if got := ng.order.Uint32(b); got != blockLen {
		return ng.r.corrupt("has a trailing length of %d bytes, but a length of %d", got, blockLen)
	}
	return nil
}

// iface reads an Interface Description Block's body of n bytes.
func (ng *ngReader) iface(n int64) error {
	if n < 8 {
		return ng.r.corrupt("(an interface description) is too short")
	}
	b, err := ng.r.fixed(8)
	if err != nil {
		return err
	}
	ifc := ngIface{linkType: layers.LinkType(ng.order.Uint16(b)), snaplen: ng.order.Uint32(b[4:]), tsresol: 6}
	n -= 8
	keep := ng.nIface < maxInterfaces
	ng.nIface++
	for n >= 4 {
		o, err := ng.r.fixed(4)
		if err != nil {
			return err
		}
		code, olen := ng.order.Uint16(o), int64(ng.order.Uint16(o[2:]))
		n -= 4
		if code == ngOptEnd {
			break
		}
		padded := (olen + 3) &^ 3
		if padded > n {
			return ng.r.corrupt("(an interface description) has an option longer than the block")
		}
		n -= padded
		if keep && (code == ngOptTSResolution && olen >= 1 || code == ngOptTSOffset && olen >= 8) {
			v, err := ng.r.fixed(int(min(olen, 8)))
			if err != nil {
				return err
			}
			if code == ngOptTSOffset {
				ifc.offset = int64(ng.order.Uint64(v))
			} else if _, ok := tsUnits(v[0]); ok {
				ifc.tsresol = v[0]
			} else {
				return ng.r.corrupt("(an interface description) has a timestamp unit finer than 10^-19 or 2^-63 s (if_tsresol %#x)", v[0])
			}
			padded -= min(olen, 8)
		}
		if err := ng.r.skip(padded); err != nil {
			return err
		}
	}
	if err := ng.r.skip(n); err != nil {
		return err
	}
	if keep {
		if len(ng.ifaces) == cap(ng.ifaces) { // double: append's gentler growth allocates more in all
			ng.ifaces = slices.Grow(ng.ifaces, max(len(ng.ifaces), 4))
		}
		ng.ifaces = append(ng.ifaces, ifc)
	}
	return nil
}

// tsUnits returns the timestamp units per second of an if_tsresol value (a
// negative power of 10, or of 2 when the top bit is set), and false when they do
// not fit in 64 bits.
func tsUnits(v uint8) (uint64, bool) {
	if v&0x80 != 0 {
		return 1 << (v & 0x7f), v&0x7f <= 63
	}
	if int(v) >= len(pow10) {
		return 0, false
	}
	return pow10[v], true
}

var pow10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// packet reads a packet block's body of n bytes (all but the trailing length).
func (ng *ngReader) packet(typ uint32, n int64) ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
	var ci gopacket.CaptureInfo
	var id, caplen, length uint32
	var ts uint64
	fixed := int64(20)
	if typ == ngSimplePacket {
		fixed = 4
	}
	if n < fixed {
		return nil, ci, 0, ng.r.corrupt("(a packet) is too short")
	}
	b, err := ng.r.fixed(int(fixed))
	if err != nil {
		return nil, ci, 0, err
	}
	n -= fixed
	switch typ {
	case ngEnhancedPacket:
		id = ng.order.Uint32(b)
	case ngPacketObsolete:
		id = uint32(ng.order.Uint16(b))
	}
	if typ == ngSimplePacket {
		length = ng.order.Uint32(b)
		caplen = uint32(min(int64(length), n))
	} else {
		ts = uint64(ng.order.Uint32(b[4:]))<<32 | uint64(ng.order.Uint32(b[8:]))
		caplen, length = ng.order.Uint32(b[12:]), ng.order.Uint32(b[16:])
	}
	if int(id) >= len(ng.ifaces) {
		if int(id) < ng.nIface {
			return nil, ci, 0, ng.r.corrupt("is a packet on interface %d, but wstap keeps only the first %d interfaces of a section", id, maxInterfaces)
		}
		return nil, ci, 0, ng.r.corrupt("is a packet on interface %d, but its section describes %d", id, ng.nIface)
	}
	ifc := &ng.ifaces[id]
	if typ == ngSimplePacket && ifc.snaplen != 0 && caplen > ifc.snaplen {
		caplen = ifc.snaplen
	}
	padded := (int64(caplen) + 3) &^ 3
	if padded > n {
		return nil, ci, 0, ng.r.corrupt("holds a %d-byte packet in a block of %d bytes", caplen, n+fixed+12)
	}
	if caplen > maxPacketLen {
		return nil, ci, 0, ng.r.corrupt("holds a %d-byte packet, above the %d bytes wstap reads", caplen, maxPacketLen)
	}
	data, err := ng.r.packet(int(caplen))
	if err != nil {
		return nil, ci, 0, err
	}
	if err := ng.r.skip(n - int64(caplen)); err != nil { // padding and options
		return nil, ci, 0, err
	}
	if typ != ngSimplePacket {
		ci.Timestamp = ifc.time(ts)
	}
	ci.CaptureLength, ci.Length, ci.InterfaceIndex = int(caplen), int(length), int(id)
	return data, ci, ifc.linkType, nil
}

// time converts a timestamp in the interface's units.
func (ifc *ngIface) time(ts uint64) time.Time {
	units, _ := tsUnits(ifc.tsresol)
	sec, frac := ts/units, ts%units
	hi, lo := bits.Mul64(frac, 1e9)
	nsec, _ := bits.Div64(hi, lo, units) // frac < units: no overflow
	return time.Unix(int64(sec)+ifc.offset, int64(nsec)).UTC()
}

// Pos returns how many bytes of the file have been read so far.
func (s *FileSource) Pos() int64 { return s.count.n.Load() }

// Size returns the size of the file, or -1 when it is unknown (not a regular file).
func (s *FileSource) Size() int64 { return s.size }

// Close closes the file opened by OpenFile.
func (s *FileSource) Close() error {
	s.closeOnce.Do(func() {
		if s.closer != nil {
			s.closeErr = s.closer.Close()
		}
	})
	return s.closeErr
}

// fileError names the file an error is about.
type fileError struct {
	path string
	err  error
}

func (e *fileError) Error() string {
	return "sniff: " + e.path + ": " + strings.TrimPrefix(e.err.Error(), "sniff: ")
}

func (e *fileError) Unwrap() error { return e.err }

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

var (
	_ Source = (*FileSource)(nil)
	_ Source = SourceFunc(nil)
)
