package history

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/wstap/wstap/internal/eventlog"
	"github.com/wstap/wstap/plugins"
)

// logIndex finds message lines in the event log by connection, direction and
// sequence number, for the payloads the store evicted. It indexes the file as far
// as it has been written, when a look-up misses.
type logIndex struct {
	mu      sync.Mutex
	offsets map[logKey]int64
	done    int64 // bytes of the file indexed
}

type logKey struct {
	conn string
	dir  plugins.Direction
	seq  uint64
}

// readBack returns the payloads of a message from the event log.
func (s *Store) readBack(conn string, dir plugins.Direction, seq uint64) ([][]byte, bool) {
	s.mu.Lock()
	if s.logIdx == nil {
		s.logIdx = &logIndex{offsets: map[logKey]int64{}}
	}
	idx := s.logIdx
	s.mu.Unlock()
	f, err := os.Open(s.logPath)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	off, ok := idx.find(f, logKey{conn, dir, seq})
	if !ok {
		return nil, false
	}
	line, err := bufio.NewReader(io.NewSectionReader(f, off, 1<<62)).ReadBytes('\n')
	if err != nil && err != io.EOF {
		return nil, false
	}
	ev, err := eventlog.ParseEvent(line)
	if err != nil || ev.Event != "message" {
		return nil, false
	}
	parts := make([][]byte, numParts)
	parts[Payload], parts[DecodedPart], parts[Original] = ev.Payload, ev.Decoded, ev.Original
	parts[OriginalDecoded], parts[WouldPayload] = ev.OriginalDecoded, ev.WouldPayload
	if parts[Payload] == nil {
		parts[Payload] = []byte{}
	}
	return parts, true
}

// find returns the offset of the message line k, indexing the rest of the file
// when it is not known yet.
func (x *logIndex) find(f *os.File, k logKey) (int64, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if off, ok := x.offsets[k]; ok {
		return off, true
	}
	if _, err := f.Seek(x.done, io.SeekStart); err != nil {
		return 0, false
	}
	br := bufio.NewReaderSize(f, 1<<20)
	off := x.done
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		n := len(line)
		head = append(head[:0], line[:min(len(line), 512)]...) // the fields looked at come first
		for err == bufio.ErrBufferFull {                       // a long line: skip its rest
			line, err = br.ReadSlice('\n')
			n += len(line)
		}
		if err != nil {
			break // the end of what was written (a partial last line is not indexed)
		}
		if key, ok := messageKey(head); ok {
			x.offsets[key] = off
		}
		off += int64(n)
		x.done = off
	}
	off, ok := x.offsets[k]
	return off, ok
}

// messageKey reads the connection, direction and sequence number of a message
// line from its head, which the JSONL writer writes in a fixed order:
// {"event":"message","time":"…","conn":"c1","dir":"c2s","seq":12,…
func messageKey(line []byte) (logKey, bool) {
	if !bytes.HasPrefix(line, []byte(`{"event":"message",`)) {
		return logKey{}, false
	}
	field := func(name string) []byte {
		i := bytes.Index(line, []byte(`"`+name+`":`))
		if i < 0 {
			return nil
		}
		v := line[i+len(name)+3:]
		if len(v) > 0 && v[0] == '"' {
			end := bytes.IndexByte(v[1:], '"')
			if end < 0 {
				return nil
			}
			return v[1 : 1+end]
		}
		end := bytes.IndexAny(v, ",}")
		if end < 0 {
			return nil
		}
		return v[:end]
	}
	conn, dir, seq := field("conn"), field("dir"), field("seq")
	n, err := strconv.ParseUint(string(seq), 10, 64)
	if conn == nil || err != nil {
		return logKey{}, false
	}
	d := plugins.ClientToServer
	if string(dir) == "s2c" {
		d = plugins.ServerToClient
	}
	return logKey{string(conn), d, n}, true
}
