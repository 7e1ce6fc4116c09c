package sniff

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
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

// FileSource reads a pcap or pcapng file with pcapgo. Pos and Size tell how far it
// has read, for a progress display; they are safe to call from any goroutine.
type FileSource struct {
	closer io.Closer
	count  *countingReader
	size   int64

	pcap *pcapgo.Reader
	ng   *pcapgo.NgReader
	lt   layers.LinkType

	closeOnce sync.Once
	closeErr  error
}

// OpenFile opens a pcap or pcapng capture file, telling the formats apart by their
// magic number.
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

// NewFileSource reads a pcap or pcapng file from r. Close does not close r.
func NewFileSource(r io.Reader) (*FileSource, error) {
	return newFileSource(r, -1)
}

func newFileSource(r io.Reader, size int64) (*FileSource, error) {
	cr := &countingReader{r: r}
	br := bufio.NewReaderSize(cr, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w (empty or shorter than a file header)", ErrNotCapture)
		}
		return nil, fmt.Errorf("sniff: %w", err)
	}
	s := &FileSource{count: cr, size: size}
	switch binary.BigEndian.Uint32(magic) {
	case magicPcapMicros, magicPcapMicrosSwapped, magicPcapNanos, magicPcapNanosSwapped:
		if s.pcap, err = pcapgo.NewReader(br); err != nil {
			return nil, fmt.Errorf("%w: bad pcap header: %v", ErrNotCapture, err)
		}
		s.lt = s.pcap.LinkType()
	case magicPcapNG:
		opts := pcapgo.DefaultNgReaderOptions
		opts.WantMixedLinkType = true // several interfaces of different link types
		opts.SkipUnknownVersion = true
		if s.ng, err = pcapgo.NewNgReader(br, opts); err != nil {
			return nil, fmt.Errorf("%w: bad pcapng header: %v", ErrNotCapture, err)
		}
	default:
		return nil, fmt.Errorf("%w (magic number %x)", ErrNotCapture, magic)
	}
	return s, nil
}

// ReadPacket returns the next packet; its data is reused by the next call. A file
// cut short in the middle of a packet ends with an error wrapping
// io.ErrUnexpectedEOF.
func (s *FileSource) ReadPacket() ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
	if s.pcap != nil {
		data, ci, err := s.pcap.ZeroCopyReadPacketData()
		return data, ci, s.lt, wrapReadErr(err)
	}
	data, ci, err := s.ng.ZeroCopyReadPacketData()
	lt := layers.LinkTypeNull
	if len(ci.AncillaryData) > 0 {
		if v, ok := ci.AncillaryData[0].(layers.LinkType); ok {
			lt = v
		}
	}
	return data, ci, lt, wrapReadErr(err)
}

func wrapReadErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		return io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("sniff: capture file cut short in the middle of a packet: %w", err)
	}
	return fmt.Errorf("sniff: reading the capture: %w", err)
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
