package lossycap

import (
	"bufio"
	"encoding/binary"
	"io"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Endpoint is one end of a TCP connection being written.
type Endpoint struct {
	MAC  [6]byte
	IP   [4]byte
	Port uint16
	Seq  uint32 // next sequence number
}

// TCP flags.
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagPSH = 0x08
	FlagACK = 0x10
)

// AppendPacket appends an Ethernet/IPv4/TCP packet from one end to the other, with
// correct IP and TCP checksums. It does not advance from.Seq.
func AppendPacket(b []byte, from, to *Endpoint, flags uint8, payload []byte) []byte {
	b = append(b, to.MAC[:]...)
	b = append(b, from.MAC[:]...)
	b = binary.BigEndian.AppendUint16(b, 0x0800)
	ip := len(b)
	b = append(b, 0x45, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(20+20+len(payload)))
	b = append(b, 0, 0, 0x40, 0, 64, 6, 0, 0) // id 0, DF, TTL 64, TCP, checksum
	b = append(b, from.IP[:]...)
	b = append(b, to.IP[:]...)
	binary.BigEndian.PutUint16(b[ip+10:], ^fold(sum16(0, b[ip:ip+20])))
	tcp := len(b)
	b = binary.BigEndian.AppendUint16(b, from.Port)
	b = binary.BigEndian.AppendUint16(b, to.Port)
	b = binary.BigEndian.AppendUint32(b, from.Seq)
	ack := uint32(0)
	if flags&FlagACK != 0 {
		ack = to.Seq
	}
	b = binary.BigEndian.AppendUint32(b, ack)
	b = append(b, 5<<4, flags, 0xff, 0xff, 0, 0, 0, 0) // offset, flags, window, checksum, urgent
	b = append(b, payload...)
	// Pseudo-header: addresses, protocol, TCP length.
	s := sum16(0, b[ip+12:ip+20])
	s += 6 + uint64(len(b)-tcp)
	s = sum16(s, b[tcp:])
	binary.BigEndian.PutUint16(b[tcp+16:], ^fold(s))
	return b
}

// sum16 adds the big-endian 16-bit words of b to s (an odd last byte padded).
func sum16(s uint64, b []byte) uint64 {
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		s += v>>48 + v>>32&0xffff + v>>16&0xffff + v&0xffff
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

func fold(s uint64) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// WritePcap writes the capture as a pcap file (Ethernet, nanosecond timestamps 10
// µs apart): per connection a TCP handshake before its first segment, the
// segments not dropped in capture order, and FINs after the last.
func (c *Capture) WritePcap(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	pw := pcapgo.NewWriterNanos(bw)
	if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return err
	}
	ts := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	var pkt []byte
	var werr error
	write := func(from, to *Endpoint, flags uint8, payload []byte) {
		if werr != nil {
			return
		}
		pkt = AppendPacket(pkt[:0], from, to, flags, payload)
		ts = ts.Add(10 * time.Microsecond)
		werr = pw.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(pkt), Length: len(pkt)}, pkt)
	}
	ends := make([][2]Endpoint, len(c.Conns))
	last := make([]int, len(c.Conns))
	for k, r := range c.Order {
		last[r.Conn] = k
	}
	started := make([]bool, len(c.Conns))
	for k, r := range c.Order {
		cn := c.Conns[r.Conn]
		e := &ends[r.Conn]
		if r.Pause {
			ts = ts.Add(PauseTime)
		}
		if !started[r.Conn] {
			started[r.Conn] = true
			e[0] = Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 1}, IP: cn.Client.Addr().As4(), Port: cn.Client.Port(), Seq: 1000 * uint32(r.Conn+1)}
			e[1] = Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 2}, IP: cn.Server.Addr().As4(), Port: cn.Server.Port(), Seq: 7000000 * uint32(r.Conn+1)}
			write(&e[0], &e[1], FlagSYN, nil)
			e[0].Seq++
			write(&e[1], &e[0], FlagSYN|FlagACK, nil)
			e[1].Seq++
			write(&e[0], &e[1], FlagACK, nil)
		}
		dir := &cn.Dirs[r.Dir]
		s := dir.Segments[r.Seg]
		if !dir.Dropped[r.Seg] {
			write(&e[r.Dir], &e[1-r.Dir], FlagACK|FlagPSH, dir.Stream[s[0]:s[1]])
		}
		e[r.Dir].Seq += uint32(s[1] - s[0])
		if k == last[r.Conn] {
			write(&e[0], &e[1], FlagFIN|FlagACK, nil)
			e[0].Seq++
			write(&e[1], &e[0], FlagFIN|FlagACK, nil)
			e[1].Seq++
			write(&e[0], &e[1], FlagACK, nil)
		}
	}
	if werr != nil {
		return werr
	}
	return bw.Flush()
}
