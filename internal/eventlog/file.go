package eventlog

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
)

// tailScan is how much of an existing log OpenFile reads to find its last
// connection id.
const tailScan = 4 << 20

// connIDPattern finds connection ids in event lines.
var connIDPattern = regexp.MustCompile(`"conn":"c([0-9]{1,19})"`)

// OpenFile opens the event log at path for appending, creating it if need be: a
// second run adds to what the first wrote instead of destroying it. lastID is the
// highest connection number ("c12" → 12) found in the end of what the file holds,
// so that the new run's ids continue after it and no id means two connections in
// one file. A last line cut short (a crash mid-write) is ended first, so it stays a
// line of its own.
func OpenFile(path string) (f *os.File, lastID uint64, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if st.Size() == 0 || !st.Mode().IsRegular() {
		return f, 0, nil
	}
	n := min(st.Size(), tailScan)
	tail := make([]byte, n)
	if _, err := f.ReadAt(tail, st.Size()-n); err != nil && err != io.EOF {
		f.Close()
		return nil, 0, fmt.Errorf("eventlog: %s: %w", path, err)
	}
	for _, m := range connIDPattern.FindAllSubmatch(tail, -1) {
		if id, err := strconv.ParseUint(string(m[1]), 10, 64); err == nil && id > lastID {
			lastID = id
		}
	}
	if !bytes.HasSuffix(tail, []byte("\n")) {
		if _, err := f.Write([]byte("\n")); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("eventlog: %s: %w", path, err)
		}
	}
	return f, lastID, nil
}
