// Package wsframe is a streaming codec for the WebSocket protocol (RFC 6455) and its
// permessage-deflate extension (RFC 7692).
//
// It is the one parser behind both of wstap's front ends: the intercepting proxy reads
// frames from live connections with a [Reader], and the passive sniffer pushes
// reassembled TCP byte streams into a [Decoder], the same header parsing, rules and
// [Assembler] driven from the other side, in lenient mode. The pieces, from the wire
// up:
//
//   - [ParseHeader], [AppendHeader] and [Rules.Check]: allocation-free header
//     encoding and decoding, and the RFC 6455 §5 rules for one sender.
//   - [Mask]: in-place (un)masking with a key offset, so chunked equals one-shot.
//   - [Reader]: frames from an [io.Reader] that may deliver any number of bytes per
//     read; payloads stream through with a small fixed buffer whatever their length.
//   - [Writer]: frames and messages to an [io.Writer], masking into its own buffer
//     (never the caller's), with byte-identical forwarding of unmodified frames.
//   - [Assembler]: frames to messages, with interleaved control frames, limits checked
//     against the headers before any payload is read, buffers that grow only with the
//     bytes that arrive and are let go of after a large message, UTF-8 validation and
//     permessage-deflate inflation.
//   - [DeflateParams], [Inflater] and [Deflater]: extension negotiation and
//     per-direction compression state, with and without context takeover. An
//     Inflater also inflates a message piece by piece as it arrives
//     ([Inflater.InflateChunk]), in about 100 KiB whatever its size or compression
//     ratio, for messages too large to hold.
//   - [Decoder]: frames and messages from bytes pushed in pieces, for sniffing. After
//     lost bytes, a protocol error or a start mid-stream it resynchronises on the
//     next message start it can trust: exactly when a gap falls inside a payload,
//     otherwise by a search that accepts only a chain of frames too unlikely to be
//     payload by chance (resync.go), and holds back the messages found until the
//     bytes prove they are not made of the lost message's payload
//     ([UncertainHandler]).
//
// Errors that the peer should hear about are [*ProtocolError] values carrying the close
// code to send (1002, 1007 or 1009); [CloseCodeOf] maps any error to one.
//
// # Concurrency
//
// A Reader, Writer, Assembler, Decoder, Inflater or Deflater belongs to one goroutine
// at a time.
// The package has no global mutable state.
package wsframe
