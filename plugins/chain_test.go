package plugins_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/wsframe"
)

// b64 is a codec for the tests: base64 outside, with a counter of Encode calls.
type b64 struct{ encodes int }

func (*b64) Name() string { return "b64" }
func (*b64) Decode(_ context.Context, m *plugins.Message) ([]byte, error) {
	return base64.StdEncoding.DecodeString(string(m.Payload))
}
func (c *b64) Encode(_ context.Context, m *plugins.Message, d []byte) ([]byte, error) {
	c.encodes++
	return []byte(base64.StdEncoding.EncodeToString(d)), nil
}

// rot is a second codec layer: reverses the bytes.
type rot struct{}

func (rot) Name() string { return "rev" }
func (rot) Decode(_ context.Context, m *plugins.Message) ([]byte, error) {
	out := bytes.Clone(m.Payload)
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
func (r rot) Encode(_ context.Context, m *plugins.Message, d []byte) ([]byte, error) {
	return r.Decode(context.Background(), &plugins.Message{Payload: d})
}

// record is a hook that records what it saw and returns a fixed verdict.
func record(name string, seen *[]string, v plugins.Verdict) plugins.Hook {
	return plugins.HookFunc{HookName: name, Func: func(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
		*seen = append(*seen, name+":"+string(m.Payload))
		return v, nil
	}}
}

func replaceAll(old, new string) plugins.Hook {
	return plugins.HookFunc{HookName: "replace", Func: func(_ context.Context, m *plugins.Message) (plugins.Verdict, error) {
		if !bytes.Contains(m.Payload, []byte(old)) {
			return plugins.Verdict{}, nil
		}
		return plugins.Verdict{Action: plugins.Modify, Payload: bytes.ReplaceAll(m.Payload, []byte(old), []byte(new))}, nil
	}}
}

func msg(payload string) *plugins.Message {
	return &plugins.Message{Conn: &plugins.Conn{ID: "c1", Mode: plugins.Proxy}, Dir: plugins.ClientToServer, Opcode: wsframe.OpText, Payload: []byte(payload)}
}

func TestChainOrderAndCodecs(t *testing.T) {
	wire := base64.StdEncoding.EncodeToString([]byte("olleh")) // rev(hello)
	var seen []string
	t.Run("codecs decode in order, unchanged messages keep their bytes", func(t *testing.T) {
		codec := &b64{}
		seen = nil
		c, _ := plugins.NewChain(plugins.FailOpen, nil, record("before", &seen, plugins.Verdict{}), codec, record("mid", &seen, plugins.Verdict{}), rot{}, record("inner", &seen, plugins.Verdict{}))
		m := msg(wire)
		res, err := c.Run(context.Background(), m)
		if err != nil || res.Action != plugins.Pass || string(res.Decoded) != "hello" {
			t.Fatalf("result %+v, %v", res, err)
		}
		if want := []string{"before:" + wire, "mid:olleh", "inner:hello"}; strings.Join(seen, "|") != strings.Join(want, "|") {
			t.Fatalf("hooks saw %q, want %q", seen, want)
		}
		if codec.encodes != 0 || string(m.Payload) != wire {
			t.Fatalf("Encode called %d times; payload now %q", codec.encodes, m.Payload)
		}
	})
	t.Run("a change re-encodes every layer outward", func(t *testing.T) {
		codec := &b64{}
		c, _ := plugins.NewChain(plugins.FailOpen, nil, codec, rot{}, replaceAll("hello", "howdy"))
		res, err := c.Run(context.Background(), msg(wire))
		if err != nil || res.Action != plugins.Modify {
			t.Fatalf("result %+v, %v", res, err)
		}
		if want := base64.StdEncoding.EncodeToString([]byte("ydwoh")); string(res.Payload) != want || string(res.Decoded) != "howdy" || codec.encodes != 1 {
			t.Fatalf("payload %q decoded %q encodes %d; want %q", res.Payload, res.Decoded, codec.encodes, want)
		}
	})
	t.Run("a change outside a codec is decoded by it and not re-encoded", func(t *testing.T) {
		codec := &b64{}
		other := base64.StdEncoding.EncodeToString([]byte("other"))
		c, _ := plugins.NewChain(plugins.FailOpen, nil, replaceAll(wire, other), codec)
		res, _ := c.Run(context.Background(), msg(wire))
		if res.Action != plugins.Modify || string(res.Payload) != other || string(res.Decoded) != "other" || codec.encodes != 0 {
			t.Fatalf("result %+v encodes %d", res, codec.encodes)
		}
	})
	t.Run("undecodable input passes unchanged, unseen by the hooks after the codec", func(t *testing.T) {
		var logs bytes.Buffer
		codec := &b64{}
		seen = nil
		c, _ := plugins.NewChain(plugins.FailOpen, slog.New(slog.NewTextHandler(&logs, nil)), codec, record("h", &seen, plugins.Verdict{}))
		m := msg("not base64!")
		for range 3 {
			res, err := c.Run(context.Background(), m)
			if err != nil || res.Action != plugins.Pass || res.Decoded != nil || res.DecodeError != "b64" {
				t.Fatalf("result %+v, %v", res, err)
			}
		}
		if n := strings.Count(logs.String(), "cannot decode"); n != 1 {
			t.Fatalf("%d warnings for 3 undecodable messages on one connection, want 1:\n%s", n, logs.String())
		}
		if len(seen) != 0 {
			t.Fatalf("the hook after the codec saw %q", seen)
		}
	})
}

func TestChainDropAndInject(t *testing.T) {
	var seen []string
	inj := plugins.Injection{Dir: plugins.ServerToClient, Opcode: wsframe.OpText, Payload: []byte("ack")}
	c, _ := plugins.NewChain(plugins.FailOpen, nil,
		record("a", &seen, plugins.Verdict{Inject: []plugins.Injection{inj}}),
		record("b", &seen, plugins.Verdict{Action: plugins.Drop}),
		record("c", &seen, plugins.Verdict{}))
	res, err := c.Run(context.Background(), msg("x"))
	if err != nil || res.Action != plugins.Drop || len(res.Inject) != 1 || string(res.Inject[0].Payload) != "ack" {
		t.Fatalf("result %+v, %v", res, err)
	}
	if strings.Join(seen, ",") != "a:x,b:x" {
		t.Fatalf("hooks after a drop ran: %q", seen)
	}
}

func TestChainErrors(t *testing.T) {
	panicky := plugins.HookFunc{HookName: "panicky", Func: func(context.Context, *plugins.Message) (plugins.Verdict, error) { panic("boom") }}
	failing := plugins.HookFunc{HookName: "failing", Func: func(context.Context, *plugins.Message) (plugins.Verdict, error) {
		return plugins.Verdict{Action: plugins.Drop}, errors.New("no key")
	}}
	for _, h := range []plugins.Hook{panicky, failing} {
		var logs bytes.Buffer
		open, _ := plugins.NewChain(plugins.FailOpen, slog.New(slog.NewTextHandler(&logs, nil)), h, replaceAll("x", "y"))
		res, err := open.Run(context.Background(), msg("x"))
		if err != nil || res.Action != plugins.Modify || string(res.Payload) != "y" {
			t.Fatalf("%s fail-open: %+v, %v (the failing hook must count as pass)", h.Name(), res, err)
		}
		if !strings.Contains(logs.String(), "plugin="+h.Name()) || !strings.Contains(logs.String(), "conn=c1") {
			t.Fatalf("%s: log does not name the plugin and conn: %s", h.Name(), logs.String())
		}
		closing, _ := plugins.NewChain(plugins.FailClose, nil, h)
		_, err = closing.Run(context.Background(), msg("x"))
		var perr *plugins.Error
		if !errors.As(err, &perr) || perr.Plugin != h.Name() || perr.Conn != "c1" {
			t.Fatalf("%s fail-close: %v", h.Name(), err)
		}
	}
}

// failEncode decodes base64 but cannot encode.
type failEncode struct{ b64 }

func (*failEncode) Encode(context.Context, *plugins.Message, []byte) ([]byte, error) {
	return nil, errors.New("no key")
}

func TestChainEncodeFailureSendsOriginal(t *testing.T) {
	wire := base64.StdEncoding.EncodeToString([]byte("hello"))
	c, err := plugins.NewChain(plugins.FailOpen, nil, &failEncode{}, replaceAll("hello", "howdy"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Run(context.Background(), msg(wire))
	if err != nil || res.Action != plugins.Pass || string(res.Decoded) != "hello" {
		t.Fatalf("result %+v, %v; want the original message, logged as decoded %q", res, err, "hello")
	}
}
