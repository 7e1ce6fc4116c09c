// Package capture captures live packets for wstap's passive sniff mode
// ("wstap sniff -i IFACE [--filter EXPR]") without any cgo library.
//
// # Capture
//
// On Linux, Open opens an AF_PACKET socket (with golang.org/x/sys/unix),
// bound to one interface. Only Ethernet interfaces and loopback (whose
// frames carry a zeroed Ethernet header) are accepted, so LinkType is
// always Ethernet. Frames are captured whole up to the snaplen
// (DefaultSnaplen, 256 KiB, by default), large enough for the merged
// GRO/GSO frames of up to 64 KiB that loopback hands over. The
// socket's receive buffer is raised to SocketBuffer (8 MiB; the kernel's
// default holds only three such frames, and a frame that finds it full is
// dropped and counted in Stats.Dropped). On other interfaces, promiscuous
// mode is turned on when the kernel allows it.
// On other operating systems Open returns an error saying that live
// capture needs Linux (ErrUnsupported).
//
// The filter is compiled to classic BPF and attached to the socket, so the
// kernel drops non-matching frames before they are copied. The filter is
// attached before the socket is bound to the interface, which is when it
// starts receiving, so ReadPacket never returns a frame that the filter
// rejects. A frame longer than the snaplen is truncated to it, and its
// CaptureInfo says so: CaptureLength is the snaplen, Length the frame's
// length. Timestamps are the kernel's, taken as the frame arrived.
//
// Loopback delivers every frame twice, once as it leaves (packet type
// PACKET_OUTGOING) and once as it arrives; tcpdump hides this. On a
// loopback interface the program starts with a test of the packet type
// (the ExtType extension) that rejects the outgoing copy, so each frame is
// read once. Other interfaces keep outgoing frames: there they are the
// host's own traffic, seen once.
//
// ReadPacket blocks until a frame arrives, in the Go runtime's network
// poller (the socket is non-blocking), so no thread is held. Close, or the
// cancellation of the context given to Open, wakes a blocked ReadPacket,
// which then returns io.EOF. Opening without the CAP_NET_RAW capability
// fails with an error that names it and matches ErrPermission with
// errors.Is.
//
// # Filter expressions
//
// There is no maintained pure-Go compiler of tcpdump expressions (the one
// candidate, github.com/packetcap/go-pcap/filter, is untagged, unmaintained
// since 2024 and known to emit wrong programs), and libpcap would need cgo,
// so this package has its own small compiler (Compile) for a documented
// subset of pcap-filter(7), emitting golang.org/x/net/bpf instructions for
// Ethernet frames (IPv4 and IPv6):
//
//	expr      = unary { ("and" | "&&" | "or" | "||") unary }
//	unary     = ("not" | "!") unary | "(" expr ")" | primitive
//	primitive = proto
//	          | [proto] [dir] type ID
//	          | [proto] dir ID            (type host, or net if ID has a "/")
//	          | ID                        (repeats the previous primitive's
//	                                       qualifiers: "port 80 or 443")
//	proto     = ip | ip6 | tcp | udp | sctp | icmp | icmp6 | arp
//	dir       = src | dst | "src or dst" | "src and dst"
//	type      = host | net | port | portrange
//
// As in pcap-filter(7), "not" binds tightest, and "and" and "or" have equal
// precedence and associate left to right: "a or b and c" is
// "(a or b) and c". Use parentheses.
//
//   - host ADDR: an IPv4 or IPv6 literal (names are not resolved); matches
//     the source or destination address (or the one dir names). An IPv4
//     host also matches the addresses of ARP and RARP packets, unless
//     qualified by ip (or arp); an IPv6 host may be qualified by ip6.
//   - net ADDR/LEN (or a full address): an IPv4 or IPv6 prefix, with no bits
//     set past LEN.
//   - port N, portrange LO-HI: decimal numbers (names are not looked up);
//     match TCP, UDP or SCTP (or the one protocol given) over IPv4 or IPv6.
//     As libpcap does, an IPv4 packet matches only if it is not a non-first
//     fragment.
//   - tcp, udp, sctp alone: the transport protocol over IPv4 or IPv6; icmp
//     is IPv4's, icmp6 IPv6's; ip, ip6 and arp test the EtherType.
//
// Keywords are case-insensitive. Differences from libpcap: IPv6 extension
// headers are not walked (a TCP segment behind an IPv6 fragment or
// hop-by-hop header does not match "tcp"); there is no "vlan" keyword, and none is needed for live capture
// on Linux, which strips VLAN tags before the filter runs (ReadPacket
// reports the VLAN ID in CaptureInfo.AncillaryData); and the rest of pcap-filter(7)
// (ether, gateway, broadcast, byte offsets such as tcp[13], len, ...) is
// not supported and is reported as a syntax error.
//
// The programs of Compile use no BPF extension, so they also run in
// x/net/bpf's VM, for example to filter frames read from a pcap file.
package capture
