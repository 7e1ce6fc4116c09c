package sniff

import (
	"bytes"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wstap/wstap/internal/pcaptest"
)

// TestRefusedUpgrade: an upgrade the server answers with something other than 101
// is reported (issue #23: it was invisible), with the request and the answer, and
// no connection opens.
func TestRefusedUpgrade(t *testing.T) {
	lt, pkts := pcaptest.Read(t, "testdata/ws-plain.pcap")
	found := false
	for i := range pkts {
		d := pkts[i].Data
		start := bytes.Index(d, []byte("HTTP/1.1 101 "))
		if start < 0 {
			continue
		}
		end := bytes.Index(d[start:], []byte("\r\n\r\n"))
		if end < 0 {
			t.Fatal("the 101 is cut across packets")
		}
		head := "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nX-Pad: "
		pad := end + 4 - len(head) - 4
		if pad < 0 {
			t.Fatalf("the 101 is too short to replace: %d bytes", end+4)
		}
		copy(d[start:], head+strings.Repeat("x", pad)+"\r\n\r\n")
		found = true
		break
	}
	if !found {
		t.Fatal("no 101 in the capture")
	}
	file := filepath.Join(t.TempDir(), "refused.pcap")
	pcaptest.Write(t, file, lt, pkts)
	rec, st := sniffFile(t, file, Config{})
	refused := rec.kinds("refused")
	if len(refused) != 1 || st.Refused != 1 || st.Connections != 0 || len(rec.kinds("open", "message")) != 0 {
		t.Fatalf("refused %v, stats %+v, events:\n%s", refused, st, rec.dump())
	}
	pc := refused[0].pc
	if pc.Status != http.StatusForbidden || pc.Reason != "Forbidden" || pc.Method != "GET" || pc.Request.Get("Sec-Websocket-Key") == "" ||
		pc.URL == nil || pc.URL.Scheme != "ws" || pc.Client == nil || pc.Server == nil || pc.ID == "" {
		t.Fatalf("refused connection %+v", pc)
	}
}
