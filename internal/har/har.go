// Package har writes wstap's WebSocket traffic as a HAR 1.2 file in the format of
// Chrome DevTools ("Save all as HAR with content"), and reads such a file, written by
// wstap or saved by Chrome, back into event-log events: the export and import of the
// web UI and the CLI.
//
// # Entries
//
// A connection is one entry, built from its "open" event, its messages and its
// "close" event. A "refused" upgrade is an ordinary entry too, with the status the
// client got and no messages. An entry is a WebSocket row for Chrome
// (_resourceType "websocket"), its messages in _webSocketMessages as Chrome writes
// them (type, time, opcode, data), and what Chrome's format has no place for is
// kept under keys that start with _wstap, which other readers ignore.
//
// [Write] streams: entries are written in the order of their "open" events, each
// once its connection has closed and every connection opened before it has been
// written, so that a long session is held in memory only as far as its open
// connections go; the JSON of one message at a time is built. Connections still open
// when the events end are written last. [Read] decodes one entry at a time.
//
// # Mapping
//
// The event log's fields (README "The event log") go to these HAR fields:
//
//	open, refused                       entry
//	  time                              startedDateTime (UTC, microseconds)
//	  close's time − open's time        time (ms); timings.receive (send and wait 0, the others -1: unknown)
//	  url                               request.url
//	  request.method, .proto            request.method, .httpVersion
//	  request.headers                   request.headers [{name, value}] (names sorted, values in order);
//	                                    queryString and cookies are derived from url and Cookie, headersSize -1, bodySize 0
//	  request.target                    request._wstapTarget
//	  no request (capture began after)  request {"method": "GET", …, "_wstapUnseen": true}
//	  response.status, .reason, .proto  response.status, .statusText, .httpVersion
//	  response.headers                  response.headers; cookies from Set-Cookie, redirectURL from Location,
//	                                    content {size 0, mimeType of Content-Type or "x-unknown"}, headersSize -1,
//	                                    bodySize 0 (101) or -1 (refused: not logged)
//	  no response                       response {"status": 0, …, "_wstapUnseen": true}
//	  server                            serverIPAddress (the host) and connection (the port: Chrome reads it there); _wstapServer
//	  conn, mode, client                _wstapConn, _wstapMode, _wstapClient
//	  subprotocol, extensions           _wstapSubprotocol, _wstapExtensions
//	  refused                           _wstapRefused: true (and _webSocketMessages: [])
//	close: time, code, reason, by       _wstapClose {time, code, reason, by}
//	controls, gap, resync, undecodable, error
//	                                    _wstapEvents [{event, time, dir, … the log's names and values, at}],
//	                                    at: how many of the entry's messages came before it
//	message                             _webSocketMessages[]
//	  dir c2s, s2c                      type "send", "receive"
//	  time                              time (seconds since the epoch, a float with microseconds)
//	  opcode text, binary, close, ping, pong
//	                                    opcode 1, 2, 8, 9, 10
//	  payload                           data: text for opcode 1, base64 for any other, as Chrome writes it (CDP's
//	                                    payloadData); a text message that is not UTF-8 has data with a U+FFFD for
//	                                    each bad byte and the exact bytes in _wstapData (base64)
//	  seq                               _wstapSeq
//	  len                               _wstapLen, when it is not the payload's length (a truncated payload)
//	  truncated, frames, compressed, hooked, modified, dropped, injected
//	                                    _wstapTruncated, _wstapFrames, _wstapCompressed, _wstapHooked,
//	                                    _wstapModified, _wstapDropped, _wstapInjected (false and 0 left out)
//	  decoded + decoded_encoding        _wstapDecoded + _wstapDecodedEncoding ("text" or "base64", as in the log)
//	  original + original_encoding      _wstapOriginal + _wstapOriginalEncoding, original_len _wstapOriginalLen
//	  original_decoded (+ encoding)     _wstapOriginalDecoded + _wstapOriginalDecodedEncoding
//	  decode_error                      _wstapDecodeError
//	  would_modify, would_payload, would_decoded, would_drop, would_inject
//	                                    _wstapWouldModify, _wstapWouldPayload (+ Encoding), _wstapWouldDecoded
//	                                    (+ Encoding), _wstapWouldDrop, _wstapWouldInject
//	  held, order                       _wstapHeld, _wstapOrder
//	  released, held_seq, edited, timed_out, out_of_order, conn_closed
//	                                    _wstapReleased, _wstapHeldSeq, _wstapEdited, _wstapTimedOut,
//	                                    _wstapOutOfOrder, _wstapConnClosed
//
// A dropped message is in _webSocketMessages like the others (Chrome shows it):
// _wstapDropped says it never reached its peer. Times keep microseconds, as the log.
//
// Reading a HAR that Chrome saved, the same fields give an "open" event (a
// "refused" one when the status is not 101 and no message follows), its messages
// ("error" frames, which are Chrome's notes and not messages, are counted and left
// out), and no "close" event: Chrome's format has none. The connection ids are
// "h1", "h2", … in the order of the entries, the sequence numbers count from 0 in
// each direction, the server is serverIPAddress with the port in connection, the
// subprotocol and extensions come from the response's Sec-WebSocket-Protocol and
// Sec-WebSocket-Extensions, the mode and the client are empty, and header names are
// put in their canonical form. Entries that are not WebSocket (neither _resourceType
// "websocket", nor _webSocketMessages, nor a ws:// or wss:// url) are counted and
// skipped.
//
// # What Chrome DevTools' importer needs
//
// Checked in devtools-frontend's front_end/models/har/HARFormat.ts and Importer.ts
// (commit 35f5a01d816a1535866303da2b6d037677ef30b2), the code behind the Network
// panel's "Import HAR file", and by feeding the files this package writes to that
// importer in the DevTools bundled with Debian's Chromium (TestChromeImporter, which
// runs when /usr/bin/chromium is installed):
//
//   - log, log.creator, every entry, request, response, response.content and timings
//     must be JSON objects: the importer throws on anything else, and the whole file
//     fails to load. log.entries must be an array.
//   - startedDateTime must parse as a JavaScript Date (Chrome writes milliseconds;
//     the microseconds written here parse too). entries[].time, request.headersSize
//     and .bodySize, response.status, .headersSize and .bodySize, content.size and
//     timings.send, .wait and .receive must be numbers: absent, they are NaN and the
//     import fails. Every other field is optional.
//   - _resourceType "websocket" makes the entry a WebSocket row (ResourceType.fromName).
//   - _webSocketMessages: a message that is not an object drops the whole list; a
//     message without time, opcode or data, or whose type is not "send", "receive" or
//     "error", is left out. time is seconds since the epoch (shown as
//     Date(time*1000)). opcode may be any number: the Messages tab names 0, 1, 2, 8, 9
//     and 10, shows the data of opcode 1 as text, reads that of opcode 2 as base64
//     (for its length and binary view), and shows only the name for close, ping and
//     pong (panels/network/ResourceWebSocketFrameView.ts). "send" frames are shown as
//     masked: client frames. Chrome itself records text and binary messages only:
//     over CDP, Chromium 156 reports no close, ping or pong frame, and its payloadData
//     is text for opcode 1 and base64 for the others, which this package follows
//     for every opcode.
//   - connection is read as the server's port (setRemoteAddress(serverIPAddress,
//     Number(connection) || 80)), where Chrome's own writer puts it; _connectionId
//     is Chrome's socket id and is not written.
package har

import (
	"errors"
	"time"
)

// ErrNotHAR reports input that is not a HAR file at all (not JSON, or no
// log.entries array). The errors of [Read] wrap it, or [ErrBadEntry].
var ErrNotHAR = errors.New("har: not a HAR file")

// ErrBadEntry reports an entry of a HAR file that cannot be read as a WebSocket
// connection; the error that wraps it names the entry (log.entries[3]) and, for a
// message, its index in _webSocketMessages.
var ErrBadEntry = errors.New("har: bad entry")

// timeLayout is how times are written: RFC 3339 in UTC with microseconds, the
// precision of the event log.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// The JSON of a HAR file, as far as wstap writes and reads it. One set of types
// serves both directions: fields whose absence means something to Read are
// pointers.

type file struct {
	Log *harLog `json:"log"`
}

type harLog struct {
	Version string  `json:"version"`
	Creator creator `json:"creator"`
}

type creator struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type entry struct {
	StartedDateTime string   `json:"startedDateTime"`
	Time            float64  `json:"time"`
	Request         request  `json:"request"`
	Response        response `json:"response"`
	Cache           struct{} `json:"cache"`
	Timings         timings  `json:"timings"`
	ServerIPAddress string   `json:"serverIPAddress,omitempty"`
	Connection      string   `json:"connection,omitempty"`
	ResourceType    string   `json:"_resourceType"`

	// Messages is nil when writing: Write streams them after the other fields.
	Messages []message `json:"_webSocketMessages,omitempty"`

	// Conn is set in every entry wstap writes, and tells Read to take the other
	// _wstap fields as they are.
	Conn        *string      `json:"_wstapConn,omitempty"`
	Mode        string       `json:"_wstapMode,omitempty"`
	Client      string       `json:"_wstapClient,omitempty"`
	Server      string       `json:"_wstapServer,omitempty"`
	Subprotocol string       `json:"_wstapSubprotocol,omitempty"`
	Extensions  string       `json:"_wstapExtensions,omitempty"`
	Refused     bool         `json:"_wstapRefused,omitempty"`
	Close       *closeInfo   `json:"_wstapClose,omitempty"`
	Events      []otherEvent `json:"_wstapEvents,omitempty"`
}

type nameValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type cookie struct {
	Name     string  `json:"name"`
	Value    string  `json:"value"`
	Path     string  `json:"path,omitempty"`
	Domain   string  `json:"domain,omitempty"`
	Expires  *string `json:"expires,omitempty"`
	HTTPOnly bool    `json:"httpOnly,omitempty"`
	Secure   bool    `json:"secure,omitempty"`
}

type request struct {
	Method      string      `json:"method"`
	URL         string      `json:"url"`
	HTTPVersion string      `json:"httpVersion"`
	Headers     []nameValue `json:"headers"`
	QueryString []nameValue `json:"queryString"`
	Cookies     []cookie    `json:"cookies"`
	HeadersSize float64     `json:"headersSize"`
	BodySize    float64     `json:"bodySize"`

	Target *string `json:"_wstapTarget,omitempty"`
	Unseen bool    `json:"_wstapUnseen,omitempty"`
}

type response struct {
	Status      float64     `json:"status"`
	StatusText  string      `json:"statusText"`
	HTTPVersion string      `json:"httpVersion"`
	Headers     []nameValue `json:"headers"`
	Cookies     []cookie    `json:"cookies"`
	Content     content     `json:"content"`
	RedirectURL string      `json:"redirectURL"`
	HeadersSize float64     `json:"headersSize"`
	BodySize    float64     `json:"bodySize"`

	Unseen bool `json:"_wstapUnseen,omitempty"`
}

type content struct {
	Size     float64 `json:"size"`
	MimeType string  `json:"mimeType"`
}

type timings struct {
	Blocked float64 `json:"blocked"`
	DNS     float64 `json:"dns"`
	Connect float64 `json:"connect"`
	Send    float64 `json:"send"`
	Wait    float64 `json:"wait"`
	Receive float64 `json:"receive"`
	SSL     float64 `json:"ssl"`
}

// message is one of _webSocketMessages: Chrome's four fields, then wstap's.
type message struct {
	Type   string   `json:"type"`
	Time   *float64 `json:"time"`
	Opcode *int     `json:"opcode"`
	Data   *string  `json:"data"`

	Seq                     *uint64 `json:"_wstapSeq,omitempty"`
	RawData                 *string `json:"_wstapData,omitempty"`
	Len                     *int64  `json:"_wstapLen,omitempty"`
	Truncated               bool    `json:"_wstapTruncated,omitempty"`
	Frames                  int     `json:"_wstapFrames,omitempty"`
	Compressed              bool    `json:"_wstapCompressed,omitempty"`
	Hooked                  bool    `json:"_wstapHooked,omitempty"`
	Modified                bool    `json:"_wstapModified,omitempty"`
	Dropped                 bool    `json:"_wstapDropped,omitempty"`
	Injected                bool    `json:"_wstapInjected,omitempty"`
	Decoded                 *string `json:"_wstapDecoded,omitempty"`
	DecodedEncoding         string  `json:"_wstapDecodedEncoding,omitempty"`
	Original                *string `json:"_wstapOriginal,omitempty"`
	OriginalEncoding        string  `json:"_wstapOriginalEncoding,omitempty"`
	OriginalLen             int64   `json:"_wstapOriginalLen,omitempty"`
	OriginalDecoded         *string `json:"_wstapOriginalDecoded,omitempty"`
	OriginalDecodedEncoding string  `json:"_wstapOriginalDecodedEncoding,omitempty"`
	DecodeError             string  `json:"_wstapDecodeError,omitempty"`
	WouldModify             bool    `json:"_wstapWouldModify,omitempty"`
	WouldPayload            *string `json:"_wstapWouldPayload,omitempty"`
	WouldPayloadEncoding    string  `json:"_wstapWouldPayloadEncoding,omitempty"`
	WouldDecoded            *string `json:"_wstapWouldDecoded,omitempty"`
	WouldDecodedEncoding    string  `json:"_wstapWouldDecodedEncoding,omitempty"`
	WouldDrop               bool    `json:"_wstapWouldDrop,omitempty"`
	WouldInject             int     `json:"_wstapWouldInject,omitempty"`
	Held                    bool    `json:"_wstapHeld,omitempty"`
	Order                   string  `json:"_wstapOrder,omitempty"`
	Released                bool    `json:"_wstapReleased,omitempty"`
	HeldSeq                 *uint64 `json:"_wstapHeldSeq,omitempty"`
	Edited                  bool    `json:"_wstapEdited,omitempty"`
	TimedOut                bool    `json:"_wstapTimedOut,omitempty"`
	OutOfOrder              bool    `json:"_wstapOutOfOrder,omitempty"`
	ConnClosed              bool    `json:"_wstapConnClosed,omitempty"`
}

type closeInfo struct {
	Time   string `json:"time"`
	Code   uint16 `json:"code"`
	Reason string `json:"reason"`
	By     string `json:"by"`
}

// otherEvent is an event of a connection that is neither a message nor its open
// or close, with the event log's field names.
type otherEvent struct {
	At         int    `json:"at"`
	Event      string `json:"event"`
	Time       string `json:"time"`
	Dir        string `json:"dir,omitempty"`
	Seq        uint64 `json:"seq,omitempty"`
	Opcode     string `json:"opcode,omitempty"`
	Len        int64  `json:"len,omitempty"`
	Frames     int    `json:"frames,omitempty"`
	Compressed bool   `json:"compressed,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Bytes      int64  `json:"bytes,omitempty"`
	Lost       bool   `json:"lost,omitempty"`
	Skipped    int64  `json:"skipped,omitempty"`
	Error      string `json:"error,omitempty"`
	Count      int64  `json:"count,omitempty"`
	First      string `json:"first,omitempty"`
	SeqFirst   uint64 `json:"seq_first,omitempty"`
	SeqLast    uint64 `json:"seq_last,omitempty"`
}
