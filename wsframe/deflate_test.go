package wsframe_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/wstap/wstap/wsframe"
)

func history(n int) [][]byte {
	var msgs [][]byte
	for i := range n {
		msgs = append(msgs, fmt.Appendf(nil, `{"seq":%d,"user":"alice","text":"the quick brown fox %d jumps","pad":%q}`, i, i%7, bytes.Repeat([]byte("z"), i%50)))
	}
	return msgs
}

// TestDeflateRoundTrip deflates a history of messages for every window size, with
// and without context takeover, and inflates it in order.
func TestDeflateRoundTrip(t *testing.T) {
	msgs := append(history(40), nil, bytes.Repeat([]byte("0123456789abcdef"), 10000))
	for bits := 8; bits <= 15; bits++ {
		for _, takeover := range []bool{false, true} {
			c := wsframe.Compression{ContextTakeover: takeover, WindowBits: bits}
			d, err := wsframe.NewDeflater(c)
			if err != nil {
				t.Fatal(err)
			}
			f := wsframe.NewInflater(c)
			for i, m := range msgs {
				wire, err := d.Deflate(nil, m)
				if err != nil {
					t.Fatal(err)
				}
				got, err := f.Inflate(nil, wire, 1<<30)
				if err != nil || !bytes.Equal(got, m) {
					t.Fatalf("bits %d takeover %v message %d: round trip failed (%v)", bits, takeover, i, err)
				}
			}
		}
	}
}

// TestInflateContextTakeover shows that the window carries over: a message that
// refers back into the previous one inflates only with takeover, and inflating the
// same wire bytes without the history fails instead of producing garbage.
func TestInflateContextTakeover(t *testing.T) {
	c := wsframe.Compression{ContextTakeover: true}
	d, _ := wsframe.NewDeflater(c)
	msg := []byte(`{"type":"chat","body":"a message long enough to be worth a back-reference"}`)
	first, _ := d.Deflate(nil, msg)
	second, _ := d.Deflate(nil, msg)
	if len(second)*5 > len(first) {
		t.Fatalf("the repeat compressed to %d bytes, the first copy to %d: takeover unused", len(second), len(first))
	}
	f := wsframe.NewInflater(c)
	for i, wire := range [][]byte{first, second} {
		got, err := f.Inflate(nil, wire, 1<<20)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("message %d: %q, %v", i, got, err)
		}
	}
	fresh := wsframe.NewInflater(c)
	if got, err := fresh.Inflate(nil, second, 1<<20); !errors.Is(err, wsframe.ErrBadDeflate) {
		t.Fatalf("inflating a back-reference without history: %q, %v; want ErrBadDeflate", got, err)
	}
}

// TestInflateLimit checks the decompression bomb limit at and around the boundary.
func TestInflateLimit(t *testing.T) {
	d, _ := wsframe.NewDeflater(wsframe.Compression{})
	wire, _ := d.Deflate(nil, make([]byte, 1<<20))
	f := wsframe.NewInflater(wsframe.Compression{})
	if _, err := f.Inflate(nil, wire, 1<<20); err != nil {
		t.Fatalf("exactly at the limit: %v", err)
	}
	if _, err := f.Inflate(nil, wire, 1<<20-1); !errors.Is(err, wsframe.ErrInflateTooBig) || wsframe.CloseCodeOf(err) != wsframe.CloseMessageTooBig {
		t.Fatalf("one byte over the limit: %v", err)
	}
	if len(wire) > 2000 {
		t.Errorf("1 MiB of zeros deflated to %d bytes", len(wire))
	}
}

// TestDeflateEmptyMessage checks RFC 7692 §7.2.3.6: an empty message compresses to 0x00.
func TestDeflateEmptyMessage(t *testing.T) {
	d, _ := wsframe.NewDeflater(wsframe.Compression{})
	wire, err := d.Deflate(nil, nil)
	if err != nil || !bytes.Equal(wire, []byte{0}) {
		t.Fatalf("empty message deflated to %x, %v; want 00", wire, err)
	}
	if _, err := wsframe.NewDeflater(wsframe.Compression{WindowBits: 16}); err == nil {
		t.Fatal("window bits 16 accepted")
	}
}

// TestInflaterLetsGoOfLargeMessages inflates one large message and keeps the
// Inflater, as an idle connection does: it must not keep the message alive.
func TestInflaterLetsGoOfLargeMessages(t *testing.T) {
	c := wsframe.Compression{ContextTakeover: true}
	payload := bigPayload(2 << 20)
	wire := benchCompressed(t, c, [][]byte{payload})[0]
	f := wsframe.NewInflater(c)
	held := retained(func() any {
		out, err := f.Inflate(nil, wire, 1<<30)
		if err != nil || !bytes.Equal(out, payload) {
			t.Fatalf("Inflate: %v", err)
		}
		return f
	})
	runtime.KeepAlive(wire)
	runtime.KeepAlive(payload)
	t.Logf("after inflating %d bytes from %d, the Inflater holds %d more bytes", len(payload), len(wire), held)
	if held > 256<<10 {
		t.Fatalf("the Inflater holds %d more bytes after a message of %d bytes compressed to %d", held, len(payload), len(wire))
	}
}
