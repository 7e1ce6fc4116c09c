// Package sniff is wstap's passive side: it reads packets from a capture file or
// a live interface, follows their TCP connections, finds the WebSocket
// connections among them and reports every message through the same hook chain
// (as a dry run: verdicts are recorded, not applied) and observers as the proxy.
//
// # Data flow
//
//	Source (pcap/pcapng file: OpenFile; live interface: the capture package)
//	  └─▶ link, IP and TCP headers (gopacket DecodingLayerParser: Ethernet with
//	      VLAN tags, Linux cooked SLL and SLL2, BSD loopback/null, raw IP; IPv4 and
//	      IPv6, fragments reassembled by ip4defrag and ip6defrag, IPv6 extension
//	      headers skipped)
//	  └─▶ TCP reassembly, one ordered byte stream per direction
//	  └─▶ HTTP/1.x: requests and responses parsed (bodies skipped, pipelining
//	      followed) until a 101 answers a WebSocket upgrade; or --ws-port
//	  └─▶ wsframe.Decoder (lenient) ─▶ permessage-deflate ─▶ plugins.Chain ─▶ Observers
//
// # Reassembly
//
// Segments that continue a stream go to the decoder straight from the packet
// buffer; retransmitted and overlapping bytes are trimmed; segments that arrive
// early are copied and wait, within [Config.MaxBuffered] per direction and
// [Config.MaxBufferedTotal] in all, for at most [Config.ReorderTimeout] of capture
// time. Bytes never seen are then given up as a gap. A stream starts at its SYN (or
// where the peer's SYN-ACK says it does); without one, its first segments wait a
// short, bounded window, because a capture that reorders packets may show the SYN
// or the first data segment after later ones, and the stream is then followed from
// the earliest of them: connections whose SYN is not in the capture at all are
// followed from their first segment.
//
// # Gaps
//
// After a gap every message wholly before or after it is reported intact, the
// message in progress is reported lost ([CaptureObserver.Gap]), and the position of
// the next frame is found again ([CaptureObserver.Resync]). wsframe.Decoder does
// this (the same after a protocol error, reported with
// [CaptureObserver.StreamError], and at the start of a capture that began
// mid-stream):
//
//   - when the gap falls inside a frame's payload, exactly: the decoder knows
//     where that frame ends;
//   - otherwise by a search that accepts a position only when the chain of frames
//     starting there would be too unlikely in random bytes (a chance below 1/1000
//     over all the positions searched; text payloads must be UTF-8 and close codes
//     valid; see wsframe/resync.go). Control frames found before the next message
//     are reported, continuation frames of the lost message skipped. The lost
//     message's tail can still hold a header pointing exactly at a real frame,
//     which the real frames after it cannot refute: so the decoder shows a message
//     found by a search only once the chance that it is such a fake falls below
//     1e-5, judged by what the stream looked like while in step, and drops the
//     ones before it (counted in the resync's skipped bytes; wsframe's
//     UncertainHandler could report them). On generated lossy captures
//     (wstap-sniffbench -lossy) no corrupted message came out. A lone frame right
//     before the end of a stream may not be trusted.
//
// Under permessage-deflate with context takeover the inflate window is unknown
// after a gap (and in a capture that started mid-stream): later messages are
// inflated on their own, which succeeds exactly when they do not refer back to
// earlier ones, and reported undecodable otherwise ([CaptureObserver.Undecodable]),
// never shown as garbage. Without a handshake (--ws-port) the compression
// parameters are unknown: compressed messages are reported undecodable.
//
// # Times and order
//
// Events carry capture timestamps and come in capture order. Connections get ids
// c1, c2… in the order their WebSocket starts.
//
// # Concurrency
//
// A Sniffer belongs to one goroutine. Observers and hooks are called from it.
package sniff
