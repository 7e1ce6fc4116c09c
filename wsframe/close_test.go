package wsframe_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wstap/wstap/wsframe"
)

func TestCloseCodeValidOnWire(t *testing.T) {
	valid := map[wsframe.CloseCode]bool{999: false, 1000: true, 1003: true, 1004: false, 1005: false, 1006: false,
		1007: true, 1011: true, 1014: true, 1015: false, 1016: false, 2999: false, 3000: true, 4999: true, 5000: false}
	for code, want := range valid {
		if got := code.ValidOnWire(); got != want {
			t.Errorf("%d.ValidOnWire() = %v, want %v", code, got, want)
		}
	}
}

func TestOpcodePredicates(t *testing.T) {
	for op := wsframe.Opcode(0); op < 16; op++ {
		reserved := (op >= 3 && op <= 7) || op >= 0xB
		if op.IsReserved() != reserved || op.IsControl() != (op >= 8) || op.IsData() != (op == 1 || op == 2) {
			t.Errorf("opcode %d (%s): reserved=%v control=%v data=%v", op, op, op.IsReserved(), op.IsControl(), op.IsData())
		}
	}
}

func TestCloseRoundTrip(t *testing.T) {
	tests := []struct {
		code   wsframe.CloseCode
		reason string
	}{
		{wsframe.CloseNormal, ""},
		{4001, "bye"},
		{wsframe.CloseGoingAway, strings.Repeat("é", 100)}, // 200 bytes: cut to 123 at a rune boundary
	}
	for _, tc := range tests {
		p := wsframe.AppendClose(nil, tc.code, tc.reason)
		if len(p) > wsframe.MaxControlPayload {
			t.Fatalf("close payload of %d bytes", len(p))
		}
		code, reason, err := wsframe.ParseClose(p)
		if err != nil || code != tc.code || !strings.HasPrefix(tc.reason, reason) || !utf8.ValidString(reason) {
			t.Errorf("AppendClose(%d, %q) parses as %d %q %v", tc.code, tc.reason, code, reason, err)
		}
	}
	if p := wsframe.AppendClose(nil, wsframe.CloseNoStatus, "ignored"); len(p) != 0 {
		t.Errorf("CloseNoStatus gives payload %x, want none", p)
	}
	if code, _, err := wsframe.ParseClose(nil); code != wsframe.CloseNoStatus || err != nil {
		t.Errorf("empty close payload: %d %v", code, err)
	}
	if _, _, err := wsframe.ParseClose([]byte{0x03, 0xee}); !errors.Is(err, wsframe.ErrCloseCode) { // 1006
		t.Errorf("close code 1006 on the wire: %v", err)
	}
}
