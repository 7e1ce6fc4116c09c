// Package plugins is wstap's hook chain: the message model shared by the proxy and the
// sniffer, the Hook and Codec interfaces users implement, the registry of named
// plugins, and the Chain that runs them in order.
//
// The unit a hook sees is a whole message (assembled from its frames, unmasked and
// inflated), never a frame. Hooks return an explicit [Verdict] (pass, modify or drop,
// plus messages to inject), so no hook can forget to pass a message on. A [Codec] is
// a layer around the message: Decode turns the wire payload into what the app meant
// (decrypt, base64, gunzip…) for the hooks after it, and Encode is called on the way
// out only if a later hook changed the payload, so unchanged messages keep their
// original bytes.
//
// Control frames (ping, pong, close) are relayed and logged but not passed to hooks.
//
// # Concurrency
//
// One Hook or Codec value serves every connection: connections run concurrently, and
// the two directions of a connection run concurrently, so OnMessage, Decode and Encode
// must be safe for concurrent use. Within one direction of one connection, messages
// are processed one at a time, in order; a slow hook delays only that direction.
package plugins

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/wstap/wstap/wsframe"
)

// Direction is the direction a message travels.
type Direction uint8

// The two directions of a WebSocket connection.
const (
	ClientToServer Direction = iota + 1
	ServerToClient
)

// String returns "c2s" or "s2c", the names the event log uses.
func (d Direction) String() string {
	switch d {
	case ClientToServer:
		return "c2s"
	case ServerToClient:
		return "s2c"
	}
	return "dir-" + strconv.Itoa(int(d))
}

// Sender returns the endpoint that sends messages in direction d.
func (d Direction) Sender() wsframe.Side {
	if d == ServerToClient {
		return wsframe.Server
	}
	return wsframe.Client
}

// Reverse returns the opposite direction.
func (d Direction) Reverse() Direction {
	if d == ClientToServer {
		return ServerToClient
	}
	return ClientToServer
}

// Mode says which front end produced a connection.
type Mode uint8

// Front ends.
const (
	// Proxy connections are live: hooks may modify, drop and inject.
	Proxy Mode = iota + 1
	// Sniff connections come from a capture: nothing can be changed, so the
	// chain's verdicts are recorded as a dry run (see Record.WouldModify).
	Sniff
)

// String returns "proxy" or "sniff".
func (m Mode) String() string {
	switch m {
	case Proxy:
		return "proxy"
	case Sniff:
		return "sniff"
	}
	return "mode-" + strconv.Itoa(int(m))
}

// Conn describes one WebSocket connection; all its messages share it. Its fields are
// set before the first hook call and not changed afterwards.
type Conn struct {
	ID   string
	URL  *url.URL // ws:// or wss://
	Mode Mode

	// Method, Target and Proto are the upgrade request's line as the server received
	// it ("GET", "/chat?room=1", "HTTP/1.1"), and Request its header, with the Host
	// header in it. They are empty when the handshake is not known (a capture that
	// began after it).
	Method, Target, Proto string
	Request               http.Header
	// Status, Reason, ResponseProto and Response are the server's answer: status
	// code, reason phrase, protocol version and header (101 Switching Protocols).
	Status        int
	Reason        string
	ResponseProto string
	Response      http.Header

	Client, Server net.Addr

	// Subprotocol and Extensions are the negotiated Sec-WebSocket-Protocol and
	// Sec-WebSocket-Extensions of the 101 response.
	Subprotocol, Extensions string

	// Controller lets hooks inject and close; nil in sniff mode.
	Controller Controller

	mu     sync.Mutex
	warned map[string]bool
}

// Controller is what a live connection offers hooks outside OnMessage verdicts.
type Controller interface {
	// Inject queues a new message in direction in.Dir, serialised with the relayed
	// messages of that direction. Injected messages are logged as injected; they do
	// not pass through the hooks. With in.Encode set, in.Payload is plaintext that the
	// chain's codecs encode first ([Chain.Encode]).
	Inject(ctx context.Context, in Injection) error
	// Close closes both sides with code and reason.
	Close(code wsframe.CloseCode, reason string)
}

// Inject queues a message on a live connection; it fails in sniff mode.
func (c *Conn) Inject(ctx context.Context, in Injection) error {
	if c.Controller == nil {
		return fmt.Errorf("plugins: conn %s: inject: %w", c.ID, ErrReadOnly)
	}
	return c.Controller.Inject(ctx, in)
}

// Close closes a live connection on both sides; it does nothing in sniff mode.
func (c *Conn) Close(code wsframe.CloseCode, reason string) {
	if c.Controller != nil {
		c.Controller.Close(code, reason)
	}
}

// once reports whether key is seen for the first time on this connection, for
// warnings that must be logged once per connection, not once per message.
func (c *Conn) once(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.warned[key] {
		return false
	}
	if c.warned == nil {
		c.warned = map[string]bool{}
	}
	c.warned[key] = true
	return true
}

// Message is one WebSocket message as the application sent it.
type Message struct {
	Conn   *Conn
	Dir    Direction
	Opcode wsframe.Opcode
	// Payload is unmasked and inflated (after codecs: what they decoded). It is
	// only valid during the call: copy what you keep, and never modify it in place.
	Payload []byte
	Time    time.Time
	Seq     uint64 // per connection and direction, from 0

	// Injected is set for messages a hook or a Controller added.
	Injected bool
}

// Action is what a hook decides about a message.
type Action uint8

// Actions.
const (
	// Pass leaves the message as it is.
	Pass Action = iota
	// Modify replaces the payload with Verdict.Payload for the rest of the chain and
	// on the wire.
	Modify
	// Drop removes the message: later hooks do not see it and it is not forwarded.
	Drop
)

// String returns "pass", "modify" or "drop".
func (a Action) String() string {
	switch a {
	case Pass:
		return "pass"
	case Modify:
		return "modify"
	case Drop:
		return "drop"
	}
	return "action-" + strconv.Itoa(int(a))
}

// Injection is a new message a hook sends, in either direction.
type Injection struct {
	Dir     Direction
	Opcode  wsframe.Opcode // OpText or OpBinary; 0 means the opcode of the message being processed
	Payload []byte
	// Encode marks Payload as plaintext: the chain's codecs encode it for the wire
	// ([Chain.Encode]) before it is sent, as they would a message a hook changed.
	// Without it, Payload goes out as it is.
	Encode bool
}

// Verdict is a hook's decision about one message.
type Verdict struct {
	Action  Action
	Payload []byte      // the new payload, when Action is Modify
	Inject  []Injection // sent after the message (or in its place when dropped)
}

// Hook observes or rewrites messages.
type Hook interface {
	// Name identifies the hook in logs and errors.
	Name() string
	// OnMessage decides about m. m.Payload must not be modified in place: return
	// Modify with a new slice instead. An error leaves the message as it was (see
	// [ErrorPolicy]).
	OnMessage(ctx context.Context, m *Message) (Verdict, error)
}

// Element is one link of a [Chain]: a [Hook], a [Codec], a [Scope] or a
// [Breakpoint]. Every element has a name for logs and errors; the chain finds out
// which kind it is from the methods it has (a value that is both a Codec and a Hook
// is used as a Codec).
type Element interface {
	Name() string
}

// Codec is a layer around the payload: Decode unwraps it for the hooks after it, and
// Encode wraps a changed payload again on the way out. Hooks listed before a codec see
// the payload as it was before that codec; the first codec is the outermost layer.
//
// When a codec cannot decode a message, the elements after it, up to the next
// [Scope] or the end of the chain, are skipped for that message: they were written
// for the decoded form, and the message passes unchanged.
type Codec interface {
	// Name identifies the codec in logs and errors.
	Name() string
	// Decode returns what m.Payload means. An error means "not this layer's
	// format": the message goes on undecoded, with one warning per connection,
	// and the elements after the codec do not see it.
	Decode(ctx context.Context, m *Message) ([]byte, error)
	// Encode wraps decoded for the wire. For a message a later hook changed,
	// m.Payload is still the payload as it arrived at this layer (to reuse a nonce
	// or IV layout). For a new message ([Chain.Encode]: an injection, an edited
	// message) m.Payload is nil: Encode must then make a fresh encoding (a new
	// random nonce or IV in the codec's layout).
	Encode(ctx context.Context, m *Message, decoded []byte) ([]byte, error)
}

// Scope limits the elements that follow it in a chain, up to the next Scope, to the
// connections it matches (the "scope" plugin: by host or URL).
type Scope interface {
	// Name identifies the scope in logs.
	Name() string
	// MatchConn reports whether the following hooks apply to c.
	MatchConn(c *Conn) bool
}

// HookFunc adapts a function to a Hook.
type HookFunc struct {
	HookName string
	Func     func(ctx context.Context, m *Message) (Verdict, error)
}

// Name returns f.HookName.
func (f HookFunc) Name() string { return f.HookName }

// OnMessage calls f.Func.
func (f HookFunc) OnMessage(ctx context.Context, m *Message) (Verdict, error) {
	return f.Func(ctx, m)
}

// Handshake is the upgrade exchange as a [HandshakeHook] sees it.
type Handshake struct {
	URL     *url.URL
	Request http.Header // the upgrade request; changes go upstream
}

// HandshakeHook is an optional interface of hooks and codecs (a Go-source hook
// provides it, and the other optional ones, through a [Lifecycle]): OnHandshake sees
// the upgrade request before it goes upstream and may change its header, or refuse
// the connection by returning an error (the client then gets 403).
type HandshakeHook interface {
	OnHandshake(ctx context.Context, h *Handshake) error
}

// OpenHook is an optional interface: OnOpen is called once the 101 arrived, before the
// connection's first message.
type OpenHook interface {
	OnOpen(ctx context.Context, c *Conn)
}

// CloseHook is an optional interface: OnClose is called once per connection after it
// ended, with the close code and reason (1006 when there was no close frame).
type CloseHook interface {
	OnClose(ctx context.Context, c *Conn, code wsframe.CloseCode, reason string)
}

// Lifecycle holds the optional capabilities of a hook written as Go source (package
// gosrc), for which the interpreter cannot expose methods other than those of [Hook]
// and [Codec]: the file's NewLifecycle constructor returns one, with the funcs it
// needs set (nil ones are not called). Each func means what the method of the same
// name means for a compiled-in plugin: OnHandshake as in [HandshakeHook], OnOpen as
// in [OpenHook], OnClose as in [CloseHook], and Close as io.Closer's Close, called
// once after the last message to release what the file holds.
type Lifecycle struct {
	OnHandshake func(ctx context.Context, h *Handshake) error
	OnOpen      func(ctx context.Context, c *Conn)
	OnClose     func(ctx context.Context, c *Conn, code wsframe.CloseCode, reason string)
	Close       func() error
}

// Interface guards.
var (
	_ Hook    = HookFunc{}
	_ Element = Hook(nil)
	_ Element = Codec(nil)
	_ Element = Scope(nil)
	_ Element = Breakpoint(nil)
)
