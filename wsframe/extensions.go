package wsframe

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrExtensions reports a Sec-WebSocket-Extensions header that breaks the grammar of
// RFC 6455 §9.1 or the negotiation rules of RFC 7692 §7.
var ErrExtensions = errors.New("wsframe: bad Sec-WebSocket-Extensions")

// Extension is one element of a Sec-WebSocket-Extensions header: a name and its
// parameters in order.
type Extension struct {
	Name   string
	Params []ExtensionParam
}

// ExtensionParam is an extension parameter. HasValue distinguishes "name" from
// "name=" values; quoted-string values are returned unquoted.
type ExtensionParam struct {
	Name     string
	Value    string
	HasValue bool
}

// ParseExtensions parses the values of Sec-WebSocket-Extensions headers (RFC 6455
// §9.1); several header lines are one comma-separated list.
func ParseExtensions(values []string) ([]Extension, error) {
	var exts []Extension
	for _, v := range values {
		p := extParser{s: v}
		for {
			p.space()
			if p.done() {
				break
			}
			if p.peek() == ',' { // empty list elements are allowed (RFC 7230 §7)
				p.i++
				continue
			}
			ext, err := p.extension()
			if err != nil {
				return nil, err
			}
			exts = append(exts, ext)
			p.space()
			if p.done() {
				break
			}
			if p.peek() != ',' {
				return nil, p.errorf("expected ',' between extensions")
			}
			p.i++
		}
	}
	return exts, nil
}

type extParser struct {
	s string
	i int
}

func (p *extParser) done() bool { return p.i >= len(p.s) }
func (p *extParser) peek() byte { return p.s[p.i] }

func (p *extParser) space() {
	for !p.done() && (p.peek() == ' ' || p.peek() == '\t') {
		p.i++
	}
}

func (p *extParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %q at offset %d: %s", ErrExtensions, p.s, p.i, fmt.Sprintf(format, args...))
}

// isTokenChar reports whether c may appear in an RFC 7230 token.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *extParser) token() string {
	start := p.i
	for !p.done() && isTokenChar(p.peek()) {
		p.i++
	}
	return p.s[start:p.i]
}

func (p *extParser) extension() (Extension, error) {
	ext := Extension{Name: p.token()}
	if ext.Name == "" {
		return ext, p.errorf("expected an extension name")
	}
	for {
		p.space()
		if p.done() || p.peek() != ';' {
			return ext, nil
		}
		p.i++
		p.space()
		param := ExtensionParam{Name: p.token()}
		if param.Name == "" {
			return ext, p.errorf("expected a parameter name")
		}
		p.space()
		if !p.done() && p.peek() == '=' {
			p.i++
			p.space()
			param.HasValue = true
			if !p.done() && p.peek() == '"' {
				v, err := p.quoted()
				if err != nil {
					return ext, err
				}
				param.Value = v
			} else if param.Value = p.token(); param.Value == "" {
				return ext, p.errorf("expected a value for %s", param.Name)
			}
		}
		ext.Params = append(ext.Params, param)
	}
}

func (p *extParser) quoted() (string, error) {
	p.i++ // opening quote
	var b strings.Builder
	for !p.done() {
		c := p.peek()
		p.i++
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if p.done() {
				return "", p.errorf("unterminated quoted string")
			}
			b.WriteByte(p.peek())
			p.i++
		default:
			b.WriteByte(c)
		}
	}
	return "", p.errorf("unterminated quoted string")
}

// DeflateName is the extension token of RFC 7692.
const DeflateName = "permessage-deflate"

// DeflateParams are the negotiated parameters of permessage-deflate (RFC 7692 §7.1).
// A zero window size means the parameter was absent: the sender may use the full
// 15-bit (32 KiB) window.
type DeflateParams struct {
	ServerNoContextTakeover bool
	ClientNoContextTakeover bool
	ServerMaxWindowBits     int
	ClientMaxWindowBits     int
}

// Compression is one direction's share of [DeflateParams]: how the sender of that
// direction compresses, which is also what its receiver must be able to inflate.
type Compression struct {
	// ContextTakeover means the sender may refer back into earlier messages: the
	// receiver keeps its window between messages.
	ContextTakeover bool
	// WindowBits is the base-2 logarithm of the sender's largest LZ77 window, 8..15;
	// 0 means 15.
	WindowBits int
}

// Sender returns the compression parameters for messages sent by s.
func (p DeflateParams) Sender(s Side) Compression {
	if s == Client {
		return Compression{ContextTakeover: !p.ClientNoContextTakeover, WindowBits: p.ClientMaxWindowBits}
	}
	return Compression{ContextTakeover: !p.ServerNoContextTakeover, WindowBits: p.ServerMaxWindowBits}
}

// String formats p as a Sec-WebSocket-Extensions element.
func (p DeflateParams) String() string {
	var b strings.Builder
	b.WriteString(DeflateName)
	if p.ServerNoContextTakeover {
		b.WriteString("; server_no_context_takeover")
	}
	if p.ClientNoContextTakeover {
		b.WriteString("; client_no_context_takeover")
	}
	if p.ServerMaxWindowBits != 0 {
		b.WriteString("; server_max_window_bits=" + strconv.Itoa(p.ServerMaxWindowBits))
	}
	if p.ClientMaxWindowBits != 0 {
		b.WriteString("; client_max_window_bits=" + strconv.Itoa(p.ClientMaxWindowBits))
	}
	return b.String()
}

// NegotiateDeflate returns the permessage-deflate parameters a server accepted, given
// the Sec-WebSocket-Extensions values of the client's upgrade request (offer) and of
// the server's 101 response. ok is false when the response does not accept the
// extension. It applies the checks a client must make (RFC 7692 §5 and §7.1): the
// extension was offered and is accepted at most once, every parameter is known and
// appears once with a valid value, and client_max_window_bits is present only if the
// offer allowed it.
func NegotiateDeflate(offer, response []string) (params DeflateParams, ok bool, err error) {
	resp, err := ParseExtensions(response)
	if err != nil {
		return DeflateParams{}, false, err
	}
	var accepted *Extension
	for i := range resp {
		if resp[i].Name != DeflateName {
			continue
		}
		if accepted != nil {
			return DeflateParams{}, false, fmt.Errorf("%w: %s accepted twice", ErrExtensions, DeflateName)
		}
		accepted = &resp[i]
	}
	if accepted == nil {
		return DeflateParams{}, false, nil
	}
	offers, err := ParseExtensions(offer)
	if err != nil {
		return DeflateParams{}, false, err
	}
	offered, clientBitsOffered := false, false
	for _, o := range offers {
		if o.Name != DeflateName {
			continue
		}
		offered = true
		for _, p := range o.Params {
			clientBitsOffered = clientBitsOffered || p.Name == "client_max_window_bits"
		}
	}
	if !offered {
		return DeflateParams{}, false, fmt.Errorf("%w: server accepted %s, which the client did not offer", ErrExtensions, DeflateName)
	}
	seen := map[string]bool{}
	for _, p := range accepted.Params {
		if seen[p.Name] {
			return DeflateParams{}, false, fmt.Errorf("%w: %s given twice", ErrExtensions, p.Name)
		}
		seen[p.Name] = true
		switch p.Name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if p.HasValue {
				return DeflateParams{}, false, fmt.Errorf("%w: %s takes no value", ErrExtensions, p.Name)
			}
			if p.Name == "server_no_context_takeover" {
				params.ServerNoContextTakeover = true
			} else {
				params.ClientNoContextTakeover = true
			}
		case "server_max_window_bits", "client_max_window_bits":
			// RFC 7692 §7.1.2: 1*DIGIT without a leading zero (so no sign either).
			bits, err := strconv.Atoi(p.Value)
			if !p.HasValue || err != nil || bits < 8 || bits > 15 || p.Value[0] < '1' || p.Value[0] > '9' {
				return DeflateParams{}, false, fmt.Errorf("%w: %s=%q, want 8..15", ErrExtensions, p.Name, p.Value)
			}
			if p.Name == "server_max_window_bits" {
				params.ServerMaxWindowBits = bits
			} else {
				if !clientBitsOffered {
					return DeflateParams{}, false, fmt.Errorf("%w: client_max_window_bits in the response but not in the offer", ErrExtensions)
				}
				params.ClientMaxWindowBits = bits
			}
		default:
			return DeflateParams{}, false, fmt.Errorf("%w: unknown %s parameter %q", ErrExtensions, DeflateName, p.Name)
		}
	}
	return params, true, nil
}
