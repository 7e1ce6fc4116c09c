package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/wstap/wstap/internal/lossycap"
	"github.com/wstap/wstap/wsframe"
)

// The synthetic capture: conns WebSocket connections to serverPort, each opened with
// a TCP handshake, an HTTP upgrade and its 101, then messages text messages spread
// over the connections and both directions (client frames masked), every message
// sent in its own segments of at most mss bytes, the connections interleaved at
// message granularity, and FINs at the end.

const (
	serverPort = 9200
	mss        = 1448
	snapLen    = 65535
)

// genOpts says what capture to write.
type genOpts struct {
	messages int
	conns    int
	seed     uint64
	sample   int // how many payloads kept at each end of the message sequence
}

// msgDigest describes a sequence of text messages: how many, a hash of all their
// payloads in order, and the first and last few.
type msgDigest struct {
	count int
	bytes int64
	h     hash.Hash
	first [][]byte
	last  [][]byte // a ring of the last ones, oldest at lastAt
	at    int
	keep  int
}

func newDigest(keep int) *msgDigest { return &msgDigest{h: sha256.New(), keep: keep} }

func (d *msgDigest) add(p []byte) {
	d.count++
	d.bytes += int64(len(p))
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
	d.h.Write(n[:])
	d.h.Write(p)
	if len(d.first) < d.keep {
		d.first = append(d.first, bytes.Clone(p))
	}
	if len(d.last) < d.keep {
		d.last = append(d.last, bytes.Clone(p))
		return
	}
	if d.keep > 0 {
		d.last[d.at] = append(d.last[d.at][:0], p...)
		d.at = (d.at + 1) % d.keep
	}
}

// lastInOrder returns the last payloads, oldest first.
func (d *msgDigest) lastInOrder() [][]byte {
	if len(d.last) < d.keep {
		return d.last
	}
	return append(append([][]byte(nil), d.last[d.at:]...), d.last[:d.at]...)
}

func (d *msgDigest) sum() string { return fmt.Sprintf("%x", d.h.Sum(nil)[:8]) }

// genStats says what was written.
type genStats struct {
	packets  int64
	size     int64
	payload  int64 // message payload bytes
	maxMsg   int
	took     time.Duration
	expected *msgDigest
}

type genConn struct {
	ends [2]lossycap.Endpoint // client, server
	ws   [2]*wsframe.Writer
	buf  [2]*bytes.Buffer
}

// textAlphabet holds the characters of the messages: printable ASCII that neither
// JSON nor tshark's field output escapes, without the comma (tshark's separator of
// several occurrences in one packet).
const textAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .:;-_!?()[]{}=+*/@#$%&<>|~^"

// msgSize draws a message size: 99% between 16 and 300 bytes, 1% log-uniform between
// 1 KiB and 64 KiB. The mean is about 310 bytes: 1,000,000 messages in Ethernet-size
// segments make a capture of about 400 MB and 1.1 M packets.
func msgSize(rng *rand.Rand) int {
	if rng.IntN(100) == 0 {
		return int(math.Exp(math.Log(1024) + rng.Float64()*(math.Log(65536)-math.Log(1024))))
	}
	return 16 + rng.IntN(285)
}

// generate writes the capture to path.
func generate(path string, o genOpts) (*genStats, error) {
	start := time.Now()
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	pw := pcapgo.NewWriterNanos(bw)
	if err := pw.WriteFileHeader(snapLen, layers.LinkTypeEthernet); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(o.seed, o.seed^0x5eed))
	st := &genStats{expected: newDigest(o.sample)}

	// Text source: messages are slices of it at random offsets, after a sequence tag.
	src := make([]byte, 256<<10)
	for i := range src {
		src[i] = textAlphabet[rng.IntN(len(textAlphabet))]
	}

	ts := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	pkt := make([]byte, 0, 14+20+20+mss)
	var werr error
	write := func(c *genConn, dir int, flags uint8, payload []byte) {
		if werr != nil {
			return
		}
		from, to := &c.ends[dir], &c.ends[1-dir]
		pkt = lossycap.AppendPacket(pkt[:0], from, to, flags, payload)
		ts = ts.Add(10 * time.Microsecond)
		ci := gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(pkt), Length: len(pkt)}
		if werr = pw.WritePacket(ci, pkt); werr != nil {
			return
		}
		st.packets++
		n := uint32(len(payload))
		if flags&(lossycap.FlagSYN|lossycap.FlagFIN) != 0 {
			n++
		}
		from.Seq += n
	}
	// send writes the bytes in segments of at most mss.
	send := func(c *genConn, dir int, b []byte) {
		for len(b) > 0 {
			n := min(len(b), mss)
			write(c, dir, lossycap.FlagACK|lossycap.FlagPSH, b[:n])
			b = b[n:]
		}
	}

	conns := make([]*genConn, o.conns)
	for i := range conns {
		c := &genConn{}
		c.ends[0] = lossycap.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 1}, IP: [4]byte{10, 0, 0, byte(1 + i)}, Port: uint16(50000 + i), Seq: rng.Uint32()}
		c.ends[1] = lossycap.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 2}, IP: [4]byte{10, 0, 1, 1}, Port: serverPort, Seq: rng.Uint32()}
		for d, side := range []wsframe.Side{wsframe.Client, wsframe.Server} {
			c.buf[d] = &bytes.Buffer{}
			c.ws[d] = wsframe.NewWriter(c.buf[d], side, 0)
		}
		conns[i] = c
		write(c, 0, lossycap.FlagSYN, nil)
		write(c, 1, lossycap.FlagSYN|lossycap.FlagACK, nil)
		write(c, 0, lossycap.FlagACK, nil)
		send(c, 0, fmt.Appendf(nil, "GET /feed/%d HTTP/1.1\r\nHost: bench.test:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", i, serverPort))
		send(c, 1, []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"))
	}

	msg := make([]byte, 0, 64<<10)
	for k := range o.messages {
		c := conns[rng.IntN(len(conns))]
		dir := rng.IntN(2)
		n := msgSize(rng)
		msg = fmt.Appendf(msg[:0], "m%07d ", k)
		for len(msg) < n {
			off := rng.IntN(len(src))
			msg = append(msg, src[off:min(len(src), off+n-len(msg))]...)
		}
		msg = msg[:n]
		st.expected.add(msg)
		st.payload += int64(n)
		st.maxMsg = max(st.maxMsg, n)
		c.buf[dir].Reset()
		if err := c.ws[dir].WriteMessage(wsframe.OpText, 0, msg, nil); err != nil {
			return nil, err
		}
		if err := c.ws[dir].Flush(); err != nil {
			return nil, err
		}
		send(c, dir, c.buf[dir].Bytes())
		if werr != nil {
			return nil, werr
		}
	}
	for _, c := range conns {
		write(c, 0, lossycap.FlagFIN|lossycap.FlagACK, nil)
		write(c, 1, lossycap.FlagFIN|lossycap.FlagACK, nil)
		write(c, 0, lossycap.FlagACK, nil)
	}
	if werr != nil {
		return nil, werr
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	st.size = fi.Size()
	st.took = time.Since(start)
	return st, nil
}
