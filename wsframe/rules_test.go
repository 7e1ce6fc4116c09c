package wsframe_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/wstap/wstap/wsframe"
)

// readAll reads messages until an error and returns them (payloads copied) with the
// error (nil for a clean EOF).
func readAll(r *wsframe.Reader, a *wsframe.Assembler) ([]wsframe.Message, error) {
	var msgs []wsframe.Message
	for {
		m, err := a.ReadMessage(r)
		if errors.Is(err, io.EOF) {
			return msgs, nil
		}
		if err != nil {
			return msgs, err
		}
		c := *m
		c.Payload = bytes.Clone(m.Payload)
		c.Wire = bytes.Clone(m.Wire)
		c.Frames = append([]wsframe.Header(nil), m.Frames...)
		msgs = append(msgs, c)
	}
}

func deflated(t testing.TB, s string) string {
	d, err := wsframe.NewDeflater(wsframe.Compression{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Deflate(nil, []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestRFC6455Rules drives every RFC 6455 §5 / RFC 7692 rule through the Reader and the
// Assembler and asserts the error, its close code, and the messages before it.
func TestRFC6455Rules(t *testing.T) {
	client := wsframe.Rules{Sender: wsframe.Client}
	server := wsframe.Rules{Sender: wsframe.Server}
	deflateClient := wsframe.Rules{Sender: wsframe.Client, Extensions: wsframe.RSV1}
	lenient := wsframe.Rules{Sender: wsframe.Client, Lenient: true}
	T, F := true, false
	const op0, opText, opBin, opClose, opPing, opPong = wsframe.OpContinuation, wsframe.OpText, wsframe.OpBinary, wsframe.OpClose, wsframe.OpPing, wsframe.OpPong

	tests := []struct {
		name    string
		rules   wsframe.Rules
		cfg     wsframe.AssemblerConfig
		inflate bool
		in      []byte
		want    []string // payloads of the messages read before the error
		wantErr error
		code    wsframe.CloseCode
	}{
		// §5.2 base framing.
		{name: "masked text from client", rules: client, in: frame(T, 0, opText, T, "hello"), want: []string{"hello"}},
		{name: "unmasked text from server", rules: server, in: frame(T, 0, opText, F, "hello"), want: []string{"hello"}},
		{name: "annotated bits", rules: server,
			in:   bits(t, "1 000 0001 | 0 0000011 | 01100001 01100010 01100011"), // FIN, text, unmasked, len 3, "abc"
			want: []string{"abc"}},
		{name: "empty frames", rules: client, in: cat(frame(T, 0, opText, T, ""), frame(T, 0, opBin, T, "")), want: []string{"", ""}},
		{name: "reserved opcode 3", rules: client, in: frame(T, 0, 3, T, "x"), wantErr: wsframe.ErrReservedOpcode, code: 1002},
		{name: "reserved opcode 0xB", rules: client, in: frame(T, 0, 0xB, T, "x"), wantErr: wsframe.ErrReservedOpcode, code: 1002},
		{name: "reserved opcode lenient", rules: lenient, in: frame(T, 0, 7, T, "x"), wantErr: wsframe.ErrReservedOpcode, code: 1002},
		{name: "RSV1 without extension", rules: client, in: frame(T, wsframe.RSV1, opText, T, "x"), wantErr: wsframe.ErrReservedBits, code: 1002},
		{name: "RSV2 with deflate", rules: deflateClient, in: frame(T, wsframe.RSV2, opText, T, "x"), wantErr: wsframe.ErrReservedBits, code: 1002},
		{name: "RSV3", rules: client, in: frame(T, wsframe.RSV3, opBin, T, "x"), wantErr: wsframe.ErrReservedBits, code: 1002},
		{name: "RSV bits lenient", rules: lenient, in: frame(T, wsframe.RSV2|wsframe.RSV3, opBin, T, "x"), want: []string{"x"}},
		// §5.1 / §5.3 masking.
		{name: "unmasked client frame", rules: client, in: frame(T, 0, opText, F, "hi"), wantErr: wsframe.ErrUnmaskedClientFrame, code: 1002},
		{name: "masked server frame", rules: server, in: frame(T, 0, opText, T, "hi"), wantErr: wsframe.ErrMaskedServerFrame, code: 1002},
		{name: "unmasked client frame lenient", rules: lenient, in: frame(T, 0, opText, F, "hi"), want: []string{"hi"}},
		// §5.2 payload length.
		{name: "16-bit length for 5 bytes", rules: server,
			in: cat(bits(t, "1 000 0010 | 0 1111110 | 00000000 00000101"), []byte("abcde")), wantErr: wsframe.ErrNonMinimalLength, code: 1002},
		{name: "64-bit length for 200 bytes", rules: server,
			in: cat([]byte{0x82, 127, 0, 0, 0, 0, 0, 0, 0, 200}, make([]byte, 200)), wantErr: wsframe.ErrNonMinimalLength, code: 1002},
		{name: "non-minimal length lenient", rules: wsframe.Rules{Sender: wsframe.Server, Lenient: true},
			in: cat(bits(t, "1 000 0010 | 0 1111110 | 00000000 00000101"), []byte("abcde")), want: []string{"abcde"}},
		{name: "64-bit length MSB", rules: server,
			in: []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, wantErr: wsframe.ErrLengthMSB, code: 1002},
		{name: "126 bytes uses 16-bit length", rules: client, in: frame(T, 0, opBin, T, string(make([]byte, 126))), want: []string{string(make([]byte, 126))}},
		{name: "65536 bytes uses 64-bit length", rules: server, in: frame(T, 0, opBin, F, string(make([]byte, 65536))), want: []string{string(make([]byte, 65536))}},
		// §5.4 fragmentation and §5.5 control frames.
		{name: "fragments with interleaved ping", rules: client,
			in:   cat(frame(F, 0, opText, T, "hel"), frame(T, 0, opPing, T, "p"), frame(F, 0, op0, T, "lo "), frame(T, 0, opPong, T, ""), frame(T, 0, op0, T, "world")),
			want: []string{"p", "", "hello world"}},
		{name: "continuation without start", rules: client, in: frame(T, 0, op0, T, "x"), wantErr: wsframe.ErrUnexpectedContinue, code: 1002},
		{name: "new message inside fragments", rules: client,
			in: cat(frame(F, 0, opText, T, "a"), frame(T, 0, opBin, T, "b")), wantErr: wsframe.ErrExpectedContinue, code: 1002},
		{name: "control frame of 126 bytes", rules: client, in: frame(T, 0, opPing, T, string(make([]byte, 126))), wantErr: wsframe.ErrControlTooLong, code: 1002},
		{name: "control frame of 125 bytes", rules: client, in: frame(T, 0, opPing, T, string(make([]byte, 125))), want: []string{string(make([]byte, 125))}},
		{name: "fragmented ping", rules: client, in: frame(F, 0, opPing, T, "x"), wantErr: wsframe.ErrFragmentedControl, code: 1002},
		// §5.5.1 close payload.
		{name: "close with code and reason", rules: client, in: frame(T, 0, opClose, T, "\x0f\xa1bye"), want: []string{"\x0f\xa1bye"}},
		{name: "close empty", rules: client, in: frame(T, 0, opClose, T, ""), want: []string{""}},
		{name: "close of one byte", rules: client, in: frame(T, 0, opClose, T, "\x03"), wantErr: wsframe.ErrClosePayload, code: 1002},
		{name: "close code 1005 on the wire", rules: client, in: frame(T, 0, opClose, T, "\x03\xed"), wantErr: wsframe.ErrCloseCode, code: 1002},
		{name: "close code 999", rules: client, in: frame(T, 0, opClose, T, "\x03\xe7"), wantErr: wsframe.ErrCloseCode, code: 1002},
		{name: "close code 2000", rules: client, in: frame(T, 0, opClose, T, "\x07\xd0"), wantErr: wsframe.ErrCloseCode, code: 1002},
		{name: "close reason bad UTF-8", rules: client, in: frame(T, 0, opClose, T, "\x03\xe8\xff"), wantErr: wsframe.ErrInvalidCloseUTF8, code: 1007},
		{name: "close code 1005 lenient", rules: lenient, cfg: wsframe.AssemblerConfig{Lenient: true}, in: frame(T, 0, opClose, T, "\x03\xed"), want: []string{"\x03\xed"}},
		// §8.1 UTF-8.
		{name: "text bad UTF-8", rules: client, in: frame(T, 0, opText, T, "ok\xc3"), wantErr: wsframe.ErrInvalidUTF8, code: 1007},
		{name: "text rune split across fragments", rules: client,
			in: cat(frame(F, 0, opText, T, "caf\xc3"), frame(T, 0, op0, T, "\xa9")), want: []string{"café"}},
		{name: "text bad UTF-8 across fragments", rules: client,
			in: cat(frame(F, 0, opText, T, "caf\xc3"), frame(T, 0, op0, T, "x")), wantErr: wsframe.ErrInvalidUTF8, code: 1007},
		{name: "binary may be anything", rules: client, in: frame(T, 0, opBin, T, "\xff\xfe"), want: []string{"\xff\xfe"}},
		{name: "text bad UTF-8 lenient", rules: lenient, cfg: wsframe.AssemblerConfig{Lenient: true}, in: frame(T, 0, opText, T, "\xff"), want: []string{"\xff"}},
		// Limits (1009), checked from the header before any payload arrives.
		{name: "frame too big", rules: client, cfg: wsframe.AssemblerConfig{Limits: wsframe.Limits{MaxFrameSize: 10, MaxMessageSize: 100}},
			in: frame(F, 0, opBin, T, string(make([]byte, 11)))[:8], wantErr: wsframe.ErrFrameTooBig, code: 1009},
		{name: "announced 1 TiB", rules: server, in: []byte{0x82, 127, 0, 0, 1, 0, 0, 0, 0, 0}, wantErr: wsframe.ErrMessageTooBig, code: 1009},
		{name: "message too big across fragments", rules: client, cfg: wsframe.AssemblerConfig{Limits: wsframe.Limits{MaxMessageSize: 10}},
			in: cat(frame(F, 0, opBin, T, "123456"), frame(T, 0, op0, T, "123456")), wantErr: wsframe.ErrMessageTooBig, code: 1009},
		{name: "too many fragments", rules: client, cfg: wsframe.AssemblerConfig{Limits: wsframe.Limits{MaxFragments: 2}},
			in: cat(frame(F, 0, opBin, T, "1"), frame(F, 0, op0, T, "2"), frame(T, 0, op0, T, "3")), wantErr: wsframe.ErrTooManyFrames, code: 1009},
		// RFC 7692.
		{name: "compressed text", rules: deflateClient, inflate: true, in: frame(T, wsframe.RSV1, opText, T, deflated(t, "hello hello hello")), want: []string{"hello hello hello"}},
		{name: "uncompressed text under deflate", rules: deflateClient, inflate: true, in: frame(T, 0, opText, T, "plain"), want: []string{"plain"}},
		{name: "RSV1 on continuation", rules: deflateClient, inflate: true,
			in: cat(frame(F, wsframe.RSV1, opText, T, "a"), frame(T, wsframe.RSV1, op0, T, "b")), wantErr: wsframe.ErrContinuationRSV1, code: 1002},
		{name: "RSV1 on ping", rules: deflateClient, inflate: true, in: frame(T, wsframe.RSV1, opPing, T, ""), wantErr: wsframe.ErrControlCompressed, code: 1002},
		{name: "corrupt deflate data", rules: deflateClient, inflate: true, in: frame(T, wsframe.RSV1, opBin, T, "\xff\xff\xff"), wantErr: wsframe.ErrBadDeflate, code: 1002},
		{name: "decompression bomb", rules: deflateClient, inflate: true, cfg: wsframe.AssemblerConfig{Limits: wsframe.Limits{MaxMessageSize: 1000}},
			in: frame(T, wsframe.RSV1, opBin, T, deflated(t, string(make([]byte, 100000)))), wantErr: wsframe.ErrInflateTooBig, code: 1009},
		{name: "compressed text bad UTF-8", rules: deflateClient, inflate: true, in: frame(T, wsframe.RSV1, opText, T, deflated(t, "\xc3")), wantErr: wsframe.ErrInvalidUTF8, code: 1007},
		// Truncation.
		{name: "truncated header", rules: client, in: frame(T, 0, opText, T, "hello")[:4], wantErr: io.ErrUnexpectedEOF, code: wsframe.CloseAbnormal},
		{name: "truncated payload", rules: client, in: frame(T, 0, opText, T, "hello")[:8], wantErr: io.ErrUnexpectedEOF, code: wsframe.CloseAbnormal},
		{name: "stream ends inside a fragmented message", rules: server, in: frame(F, 0, opText, F, "abc"), wantErr: io.ErrUnexpectedEOF, code: wsframe.CloseAbnormal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if tc.inflate {
				cfg.Inflater = wsframe.NewInflater(wsframe.Compression{ContextTakeover: true})
			}
			r := wsframe.NewReader(bytes.NewReader(tc.in), tc.rules, 0)
			msgs, err := readAll(r, wsframe.NewAssembler(cfg))
			var got []string
			for _, m := range msgs {
				got = append(got, string(m.Payload))
			}
			if len(got) != len(tc.want) {
				t.Fatalf("read %d messages %q, want %d %q (err %v)", len(got), got, len(tc.want), tc.want, err)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("message %d = %q, want %q", i, got[i], tc.want[i])
				}
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				if code := wsframe.CloseCodeOf(err); code != tc.code {
					t.Errorf("close code %d, want %d (error %v)", code, tc.code, err)
				}
			}
		})
	}
}
