//go:build !linux

package capture

import (
	"context"
	"fmt"
	"io"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Handle is a live capture on one interface; on this operating system
// Open never returns one.
type Handle struct{}

// Open returns an error matching ErrUnsupported: live capture uses
// AF_PACKET sockets, which only Linux has. Read pcap files instead.
func Open(ctx context.Context, iface string, filter string, snaplen int) (*Handle, error) {
	if _, err := Compile(filter, snaplen); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("capture on %s: %w", iface, ErrUnsupported)
}

// ReadPacket returns io.EOF.
func (h *Handle) ReadPacket() ([]byte, gopacket.CaptureInfo, error) {
	return nil, gopacket.CaptureInfo{}, io.EOF
}

// ReadPacketData returns io.EOF.
func (h *Handle) ReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	return h.ReadPacket()
}

// ZeroCopyReadPacketData returns io.EOF.
func (h *Handle) ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error) {
	return h.ReadPacket()
}

// LinkType is Ethernet.
func (h *Handle) LinkType() layers.LinkType { return layers.LinkTypeEthernet }

// Interface returns "".
func (h *Handle) Interface() string { return "" }

// Stats returns zero counters.
func (h *Handle) Stats() (Stats, error) { return Stats{}, nil }

// Close does nothing.
func (h *Handle) Close() error { return nil }
