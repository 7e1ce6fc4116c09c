package sniff

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/wstap/wstap/internal/handshake"
)

// Limits of the HTTP phase: a connection whose header block or held bytes grow past
// them is not followed further.
const (
	maxHeaderBlock = 64 << 10 // one request or response header
	maxHeld        = 1 << 20  // client bytes after an upgrade request, before its response
	maxChunkLine   = 4 << 10  // a chunk-size or trailer line
)

// errNotHTTP is why a connection stops being followed in the HTTP phase.
var errNotHTTP = errors.New("sniff: not HTTP/1.x")

// headerEnd returns the length of the header block at the start of b (up to and
// including the empty line), or -1 when the empty line has not arrived yet. Bare LF
// line ends are accepted as net/http accepts them.
func headerEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
}

// looksLikeRequest reports whether b can be the start of an HTTP/1.x request: a
// method token followed by a space. more is true when b is too short to tell.
func looksLikeRequest(b []byte) (yes, more bool) {
	for i, c := range b {
		switch {
		case c == ' ':
			return i > 0, false
		case c >= 'A' && c <= 'Z', c == '-', c == '_':
			if i >= 20 {
				return false, false
			}
		default:
			return false, false
		}
	}
	return false, true
}

// looksLikeResponse reports whether b can be the start of an HTTP/1.x response.
func looksLikeResponse(b []byte) (yes, more bool) {
	const prefix = "HTTP/1."
	n := min(len(b), len(prefix))
	if string(b[:n]) != prefix[:n] {
		return false, false
	}
	return n == len(prefix), n < len(prefix)
}

// request is an HTTP request seen on the client's stream, waiting for its response.
type request struct {
	method  string
	upgrade bool // a WebSocket upgrade request
	req     *http.Request
}

// parseRequest parses one request header block.
func parseRequest(block []byte) (*http.Request, error) {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(block)))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotHTTP, err)
	}
	return req, nil
}

// parseResponse parses one response header block to a request with method.
func parseResponse(block []byte, method string) (*http.Response, error) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(block)), &http.Request{Method: method})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotHTTP, err)
	}
	return resp, nil
}

// isUpgradeRequest reports whether req asks to switch to WebSocket (RFC 6455 §4.1).
func isUpgradeRequest(req *http.Request) bool {
	return req.Method == http.MethodGet && handshake.IsUpgrade(req.Header)
}

// body modes of a message body.
const (
	bodyNone uint8 = iota
	bodyLength
	bodyChunked
	bodyToEOF
)

// chunked-body states.
const (
	chunkSize     uint8 = iota // reading a chunk-size line
	chunkData                  // skipping chunk data
	chunkDataEnd               // the CRLF after chunk data
	chunkTrailer               // trailer lines, up to an empty line
	chunkFinished              // done
)

// bodySkipper skips an HTTP/1.1 message body (RFC 9112 §6) that arrives in pieces,
// without keeping it.
type bodySkipper struct {
	mode   uint8
	remain int64 // bodyLength: bytes left; chunkData: bytes left of the chunk
	state  uint8
	line   []byte // a partial chunk-size or trailer line
}

// set prepares to skip a body: a Content-Length of n, or chunked, or until the
// connection ends.
func (b *bodySkipper) set(mode uint8, n int64) {
	*b = bodySkipper{mode: mode, remain: n, line: b.line[:0]}
	if mode == bodyLength && n <= 0 {
		b.mode = bodyNone
	}
}

// active reports whether a body is being skipped.
func (b *bodySkipper) active() bool { return b.mode != bodyNone }

// skip consumes body bytes from p and returns how many it used; the body is over
// when active turns false.
func (b *bodySkipper) skip(p []byte) (int, error) {
	switch b.mode {
	case bodyNone:
		return 0, nil
	case bodyToEOF:
		return len(p), nil
	case bodyLength:
		n := int(min(int64(len(p)), b.remain))
		b.remain -= int64(n)
		if b.remain == 0 {
			b.mode = bodyNone
		}
		return n, nil
	}
	used := 0
	for used < len(p) && b.mode == bodyChunked {
		switch b.state {
		case chunkData:
			n := int(min(int64(len(p)-used), b.remain))
			used += n
			b.remain -= int64(n)
			if b.remain == 0 {
				b.state = chunkDataEnd
			}
			continue
		case chunkDataEnd, chunkSize, chunkTrailer:
			j := bytes.IndexByte(p[used:], '\n')
			if j < 0 {
				if len(b.line)+len(p)-used > maxChunkLine {
					return used, fmt.Errorf("%w: chunk line too long", errNotHTTP)
				}
				b.line = append(b.line, p[used:]...)
				return len(p), nil
			}
			line := p[used : used+j]
			if len(b.line) > 0 {
				b.line = append(b.line, line...)
				line = b.line
			}
			used += j + 1
			line = bytes.TrimRight(line, "\r")
			if err := b.endLine(line); err != nil {
				return used, err
			}
			b.line = b.line[:0]
		}
	}
	return used, nil
}

// endLine handles a whole line of a chunked body.
func (b *bodySkipper) endLine(line []byte) error {
	switch b.state {
	case chunkDataEnd:
		if len(line) != 0 {
			return fmt.Errorf("%w: no CRLF after chunk data", errNotHTTP)
		}
		b.state = chunkSize
	case chunkSize:
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || len(line) > 15 {
			return fmt.Errorf("%w: bad chunk size %q", errNotHTTP, line)
		}
		var n int64
		for _, c := range line {
			var v byte
			switch {
			case c >= '0' && c <= '9':
				v = c - '0'
			case c >= 'a' && c <= 'f':
				v = c - 'a' + 10
			case c >= 'A' && c <= 'F':
				v = c - 'A' + 10
			default:
				return fmt.Errorf("%w: bad chunk size %q", errNotHTTP, line)
			}
			n = n<<4 | int64(v)
		}
		if n == 0 {
			b.state = chunkTrailer
		} else {
			b.state, b.remain = chunkData, n
		}
	case chunkTrailer:
		if len(line) == 0 {
			b.state, b.mode = chunkFinished, bodyNone
		}
	}
	return nil
}

// requestBody returns how a request's body is delimited (RFC 9112 §6.3).
func requestBody(req *http.Request) (uint8, int64) {
	switch {
	case len(req.TransferEncoding) > 0 && strings.EqualFold(req.TransferEncoding[len(req.TransferEncoding)-1], "chunked"):
		return bodyChunked, 0
	case req.ContentLength > 0:
		return bodyLength, req.ContentLength
	}
	return bodyNone, 0
}

// responseBody returns how a response to a request with method is delimited.
func responseBody(method string, resp *http.Response) (uint8, int64) {
	switch {
	case method == http.MethodHead, resp.StatusCode/100 == 1, resp.StatusCode == http.StatusNoContent,
		resp.StatusCode == http.StatusNotModified:
		return bodyNone, 0
	case method == http.MethodConnect && resp.StatusCode/100 == 2:
		return bodyToEOF, 0 // a tunnel: nothing more to parse
	case len(resp.TransferEncoding) > 0 && strings.EqualFold(resp.TransferEncoding[len(resp.TransferEncoding)-1], "chunked"):
		return bodyChunked, 0
	case resp.ContentLength >= 0:
		return bodyLength, resp.ContentLength
	}
	return bodyToEOF, 0
}
