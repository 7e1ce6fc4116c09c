// Package exechook runs a hook as an external process, for people who would rather
// not write Go: `--hook 'exec:/usr/bin/python3 hook.py'`. wstap starts the command
// with /bin/sh -c and talks to it with one JSON object per line on its stdin and
// stdout; its stderr goes to wstap's.
//
// # Protocol
//
// First wstap sends a hello and the process answers with its name and whether it is a
// codec (decode/encode, like the aes plugin) or a message hook (the default):
//
//	→ {"type":"hello","version":1}
//	← {"name":"chatdecrypt","codec":true}
//
// Then one request per message or codec call, each with an id the answer repeats.
// Payloads are base64 (standard alphabet, padded):
//
//	→ {"id":7,"type":"message","conn":"c1","url":"wss://host/path","dir":"c2s","seq":3,"opcode":"text","payload":"aGk="}
//	← {"id":7,"action":"pass"}      or "modify" with "payload", or "drop";
//	                                  optional "inject":[{"dir":"s2c","opcode":"text","payload":"..."}]
//	→ {"id":8,"type":"decode", ...same fields...}
//	← {"id":8,"payload":"..."}      or {"id":8,"error":"not mine"}: the message passes undecoded
//	→ {"id":9,"type":"encode", ...,"decoded":"..."}   (payload: the original bytes at this layer)
//	← {"id":9,"payload":"..."}
//
// An encode request with "new":true and no payload is for a message that has no
// original (an injection written in plaintext): encode it afresh (a new nonce).
//
// An absent payload or decoded field means an empty one. Requests may be answered in
// any order. A process that does not answer within the
// timeout (5 s), dies, or writes a line that is not such an answer fails that call
// (the chain's error policy applies: by default the message goes on unmodified),
// is killed, and is started again on the next call; after 5 failures in a minute it is
// bypassed for a minute, with a log line each time. No connection ever waits on it
// longer than the timeout.
package exechook

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// Timeout is how long wstap waits for an answer (a variable so that embedding
// programs and tests can change it before starting processes).
var Timeout = 5 * time.Second

// HelloTimeout is how long a process that starts may take to answer the hello: an
// interpreter can take seconds to start on a busy machine, which no message should
// wait for twice (a variable for the same reasons as Timeout).
var HelloTimeout = 10 * time.Second

// Failure limits before the process is bypassed for a while.
const (
	maxFailures   = 5
	failureWindow = time.Minute
	bypassFor     = time.Minute
	maxLineBytes  = 256 << 20
)

// ErrBypassed is the error of calls made while the process is bypassed.
var ErrBypassed = errors.New("exechook: the hook process failed repeatedly and is bypassed for now")

// request is one line to the process.
type request struct {
	ID      uint64 `json:"id"`
	Type    string `json:"type"`
	Version int    `json:"version,omitempty"`
	Conn    string `json:"conn,omitempty"`
	URL     string `json:"url,omitempty"`
	Dir     string `json:"dir,omitempty"`
	Seq     uint64 `json:"seq"`
	Opcode  string `json:"opcode,omitempty"`
	Payload []byte `json:"payload,omitempty"` // absent means empty
	Decoded []byte `json:"decoded,omitempty"` // absent means empty
	New     bool   `json:"new,omitempty"`     // encode: no original payload
}

// response is one line from the process.
type response struct {
	ID      uint64      `json:"id"`
	Name    string      `json:"name"`
	Codec   bool        `json:"codec"`
	Action  string      `json:"action"`
	Payload []byte      `json:"payload"`
	Inject  []injection `json:"inject"`
	Error   string      `json:"error"`
}

type injection struct {
	Dir     string `json:"dir"`
	Opcode  string `json:"opcode"`
	Payload []byte `json:"payload"`
}

// Process is a running hook process. It is safe for concurrent use.
type Process struct {
	command string
	name    string
	codec   bool
	log     *slog.Logger

	mu       sync.Mutex
	cur      *proc // nil when not running
	nextID   uint64
	failures []time.Time
	bypassTo time.Time
	closed   bool
}

// proc is one incarnation of the process.
type proc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	wmu     sync.Mutex // serialises request lines
	pending sync.Map   // id → chan response
	done    chan struct{}
	err     error // why the reader stopped, set before done is closed
	once    sync.Once
}

// Start starts command, exchanges the hello and returns the process as a
// plugins.Hook or a plugins.Codec, as it declared.
func Start(command string, log *slog.Logger) (plugins.Element, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Process{command: command, log: log, name: "exec"}
	pr, hello, err := p.spawn()
	if err != nil {
		return nil, err
	}
	p.cur = pr
	if hello.Name != "" {
		p.name = hello.Name
	}
	p.codec = hello.Codec
	if p.codec {
		return &Codec{p}, nil
	}
	return &Hook{p}, nil
}

// spawn starts the command and waits for its hello.
func (p *Process) spawn() (*proc, response, error) {
	cmd := exec.Command("/bin/sh", "-c", p.command)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // kill the whole group, shells included
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, response{}, fmt.Errorf("exechook: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, response{}, fmt.Errorf("exechook: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, response{}, fmt.Errorf("exechook: start %q: %w", p.command, err)
	}
	pr := &proc{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	hello := make(chan response, 1)
	pr.pending.Store(uint64(0), hello)
	go pr.read(stdout)
	if err := pr.send(request{Type: "hello", Version: 1}); err != nil {
		pr.kill()
		return nil, response{}, fmt.Errorf("exechook: %q: %w", p.command, err)
	}
	select {
	case h := <-hello:
		return pr, h, nil
	case <-pr.done:
		pr.kill()
		return nil, response{}, fmt.Errorf("exechook: %q ended before answering the hello: %v", p.command, pr.err)
	case <-time.After(HelloTimeout):
		pr.kill()
		return nil, response{}, fmt.Errorf("exechook: %q did not answer the hello within %s (it must print one JSON line per request and flush)", p.command, HelloTimeout)
	}
}

// read dispatches answers to their callers until stdout ends or a line is garbage.
func (pr *proc) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	for sc.Scan() {
		var r response
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			pr.err = fmt.Errorf("answered a line that is not JSON: %.80q", sc.Text())
			break
		}
		ch, ok := pr.pending.LoadAndDelete(r.ID)
		if !ok {
			pr.err = fmt.Errorf("answered unknown request id %d", r.ID)
			break
		}
		ch.(chan response) <- r
	}
	if pr.err == nil {
		pr.err = sc.Err()
		if pr.err == nil {
			pr.err = errors.New("closed its stdout (exited?)")
		}
	}
	close(pr.done)
	pr.kill()
}

func (pr *proc) send(r request) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	pr.wmu.Lock()
	defer pr.wmu.Unlock()
	_, err = pr.stdin.Write(append(line, '\n'))
	return err
}

// kill ends the process group and reaps it; safe to call more than once and from
// several goroutines.
func (pr *proc) kill() {
	pr.once.Do(func() {
		pr.stdin.Close()
		syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
		pr.cmd.Wait()
	})
}

// call sends r and waits for its answer, restarting or bypassing the process as
// needed.
func (p *Process) call(ctx context.Context, r request) (response, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return response{}, errors.New("exechook: closed")
	}
	if time.Now().Before(p.bypassTo) {
		p.mu.Unlock()
		return response{}, ErrBypassed
	}
	pr := p.cur
	if pr == nil {
		var err error
		if pr, _, err = p.spawn(); err != nil {
			p.failLocked(nil, err)
			p.mu.Unlock()
			return response{}, err
		}
		p.log.Info("hook process restarted", "plugin", p.name, "command", p.command)
		p.cur = pr
	}
	p.nextID++
	r.ID = p.nextID
	p.mu.Unlock()

	ch := make(chan response, 1)
	pr.pending.Store(r.ID, ch)
	if err := pr.send(r); err != nil {
		pr.pending.Delete(r.ID)
		return response{}, p.fail(pr, fmt.Errorf("exechook: %s: write request: %w", p.name, err))
	}
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	select {
	case resp := <-ch:
		if resp.Error != "" {
			return resp, fmt.Errorf("exechook: %s: %s", p.name, resp.Error)
		}
		return resp, nil
	case <-pr.done:
		return response{}, p.fail(pr, fmt.Errorf("exechook: %s: the process %v", p.name, pr.err))
	case <-timer.C:
		pr.pending.Delete(r.ID)
		return response{}, p.fail(pr, fmt.Errorf("exechook: %s: no answer within %s; restarting the process", p.name, Timeout))
	case <-ctx.Done():
		pr.pending.Delete(r.ID)
		return response{}, ctx.Err()
	}
}

// fail records a failure of pr: the process is killed (the next call starts a new
// one) and, after too many failures, bypassed for a while.
func (p *Process) fail(pr *proc, err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failLocked(pr, err)
	return err
}

func (p *Process) failLocked(pr *proc, err error) {
	if pr != nil && p.cur == pr {
		p.cur = nil
		go pr.kill()
	}
	now := time.Now()
	p.failures = append(p.failures, now)
	for len(p.failures) > 0 && now.Sub(p.failures[0]) > failureWindow {
		p.failures = p.failures[1:]
	}
	p.log.Error("hook process failed", "plugin", p.name, "err", err)
	if len(p.failures) >= maxFailures {
		p.bypassTo = now.Add(bypassFor)
		p.failures = nil
		p.log.Error("hook process bypassed after repeated failures", "plugin", p.name, "for", bypassFor.String())
	}
}

// Close stops the process.
func (p *Process) Close() error {
	p.mu.Lock()
	p.closed = true
	pr := p.cur
	p.cur = nil
	p.mu.Unlock()
	if pr != nil {
		pr.kill()
		<-pr.done
	}
	return nil
}

func (p *Process) request(typ string, m *plugins.Message) request {
	r := request{Type: typ, Dir: m.Dir.String(), Seq: m.Seq, Opcode: m.Opcode.String(), Payload: m.Payload}
	if m.Conn != nil {
		r.Conn = m.Conn.ID
		if m.Conn.URL != nil {
			r.URL = m.Conn.URL.String()
		}
	}
	return r
}

// Hook is a process that answers "message" requests.
type Hook struct{ *Process }

// Name returns the name the process gave in its hello ("exec" if none).
func (h *Hook) Name() string { return h.name }

// OnMessage asks the process for a verdict.
func (h *Hook) OnMessage(ctx context.Context, m *plugins.Message) (plugins.Verdict, error) {
	resp, err := h.call(ctx, h.request("message", m))
	if err != nil {
		return plugins.Verdict{}, err
	}
	var v plugins.Verdict
	switch resp.Action {
	case "", "pass":
	case "modify":
		v.Action, v.Payload = plugins.Modify, resp.Payload
		if v.Payload == nil {
			v.Payload = []byte{}
		}
	case "drop":
		v.Action = plugins.Drop
	default:
		return plugins.Verdict{}, fmt.Errorf("exechook: %s: unknown action %q", h.name, resp.Action)
	}
	for _, in := range resp.Inject {
		inj := plugins.Injection{Payload: in.Payload}
		switch in.Dir {
		case "c2s":
			inj.Dir = plugins.ClientToServer
		case "s2c":
			inj.Dir = plugins.ServerToClient
		default:
			return plugins.Verdict{}, fmt.Errorf("exechook: %s: inject dir %q, want c2s or s2c", h.name, in.Dir)
		}
		switch in.Opcode {
		case "": // the opcode of the message being processed
		case "text":
			inj.Opcode = wsframe.OpText
		case "binary":
			inj.Opcode = wsframe.OpBinary
		default:
			return plugins.Verdict{}, fmt.Errorf("exechook: %s: inject opcode %q, want text or binary", h.name, in.Opcode)
		}
		v.Inject = append(v.Inject, inj)
	}
	return v, nil
}

// Codec is a process that answers "decode" and "encode" requests.
type Codec struct{ *Process }

// Name returns the name the process gave in its hello ("exec" if none).
func (c *Codec) Name() string { return c.name }

// Decode asks the process to decode m.Payload.
func (c *Codec) Decode(ctx context.Context, m *plugins.Message) ([]byte, error) {
	resp, err := c.call(ctx, c.request("decode", m))
	if err != nil {
		return nil, err
	}
	if resp.Payload == nil {
		resp.Payload = []byte{}
	}
	return resp.Payload, nil
}

// Encode asks the process to encode decoded for the wire.
func (c *Codec) Encode(ctx context.Context, m *plugins.Message, decoded []byte) ([]byte, error) {
	r := c.request("encode", m)
	r.Decoded, r.New = decoded, m.Payload == nil
	resp, err := c.call(ctx, r)
	if err != nil {
		return nil, err
	}
	return resp.Payload, nil
}

var (
	_ plugins.Hook  = (*Hook)(nil)
	_ plugins.Codec = (*Codec)(nil)
	_ io.Closer     = (*Process)(nil)
)
