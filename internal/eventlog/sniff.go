package eventlog

import (
	"strconv"
	"time"

	"github.com/wstap/wstap/plugins"
)

// Events only the sniffer produces, and the counted control frames. In the JSONL log they
// share the head of the other events ("event", "time", "conn") and add "dir":
//
//	{"event":"gap","time":…,"conn":"c1","dir":"c2s","bytes":1448,"lost":true}
//	{"event":"resync","time":…,"conn":"c1","dir":"c2s","skipped":37}
//	{"event":"undecodable","time":…,"conn":"c1","dir":"s2c","seq":4,"opcode":"text","len":81,
//	 "frames":1,"compressed":true,"reason":"…"}
//	{"event":"error","time":…,"conn":"c1","dir":"c2s","error":"wsframe: reserved opcode 0x3"}
//
// gap: bytes of the stream missing from the capture; lost is true when a message was
// in progress (it is lost). resync: the decoder found a frame header again, after
// skipping that many bytes. undecodable: a message seen but not shown (len is its
// compressed length; no payload). error: a protocol error (the decoder
// resynchronises) or a message over the size limit (skipped).

// Gap writes a "gap" event.
func (j *JSONL) Gap(c *plugins.Conn, dir plugins.Direction, t time.Time, bytes int64, lost bool) {
	j.line(func(b []byte) []byte {
		b = j.head(b, "gap", t, c)
		b = appendField(b, "dir", dir.String())
		b = append(b, `,"bytes":`...)
		b = strconv.AppendInt(b, bytes, 10)
		b = appendBool(b, "lost", lost)
		return append(b, '}')
	})
}

// Resync writes a "resync" event.
func (j *JSONL) Resync(c *plugins.Conn, dir plugins.Direction, t time.Time, skipped int64) {
	j.line(func(b []byte) []byte {
		b = j.head(b, "resync", t, c)
		b = appendField(b, "dir", dir.String())
		b = append(b, `,"skipped":`...)
		b = strconv.AppendInt(b, skipped, 10)
		return append(b, '}')
	})
}

// Undecodable writes an "undecodable" event for a message without its payload.
func (j *JSONL) Undecodable(r *plugins.Record, reason string) {
	j.line(func(b []byte) []byte {
		b = j.head(b, "undecodable", r.Time, r.Conn)
		b = appendField(b, "dir", r.Dir.String())
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, r.Seq, 10)
		b = appendField(b, "opcode", r.Opcode.String())
		b = append(b, `,"len":`...)
		b = strconv.AppendInt(b, r.Len, 10)
		b = append(b, `,"frames":`...)
		b = strconv.AppendInt(b, int64(r.Frames), 10)
		b = appendBool(b, "compressed", r.Compressed)
		b = appendField(b, "reason", reason)
		return append(b, '}')
	})
}

// StreamError writes an "error" event.
func (j *JSONL) StreamError(c *plugins.Conn, dir plugins.Direction, t time.Time, err error) {
	j.line(func(b []byte) []byte {
		b = j.head(b, "error", t, c)
		b = appendField(b, "dir", dir.String())
		b = appendField(b, "error", err.Error())
		return append(b, '}')
	})
}

// Gap prints the lost bytes, and whether a message was lost with them.
func (t *Terminal) Gap(c *plugins.Conn, dir plugins.Direction, ts time.Time, bytes int64, lost bool) {
	t.event(c, dir, ts, func(b []byte) []byte {
		b = append(b, "gap: "...)
		b = strconv.AppendInt(b, bytes, 10)
		b = append(b, " bytes missing from the capture"...)
		if lost {
			b = append(b, "; the message in progress is lost"...)
		}
		return b
	})
}

// Resync prints how many bytes the decoder skipped to find a frame header again.
func (t *Terminal) Resync(c *plugins.Conn, dir plugins.Direction, ts time.Time, skipped int64) {
	t.event(c, dir, ts, func(b []byte) []byte {
		b = append(b, "resync: frame header found after skipping "...)
		b = strconv.AppendInt(b, skipped, 10)
		return append(b, " bytes"...)
	})
}

// Undecodable prints a message that cannot be shown, with the reason.
func (t *Terminal) Undecodable(r *plugins.Record, reason string) {
	t.event(r.Conn, r.Dir, r.Time, func(b []byte) []byte {
		b = appendOpLen(b, r.Opcode, r.Len)
		b = append(b, "Z undecodable: "...)
		return append(b, reason...)
	})
}

// StreamError prints a protocol error.
func (t *Terminal) StreamError(c *plugins.Conn, dir plugins.Direction, ts time.Time, err error) {
	t.event(c, dir, ts, func(b []byte) []byte {
		b = append(b, "error: "...)
		return append(b, err.Error()...)
	})
}

// Controls writes a "controls" event: pings or pongs of one direction counted
// instead of logged one by one (plugins.Pipeline.ControlBurst):
//
//	{"event":"controls","time":…,"conn":"c1","dir":"c2s","opcode":"ping","count":9995,"bytes":39980,
//	 "first":"…","seq_first":5,"seq_last":9999}
//
// time is the last one's; first the first one's.
func (j *JSONL) Controls(c *plugins.Conn, dir plugins.Direction, s plugins.ControlSummary) {
	j.line(func(b []byte) []byte {
		b = j.head(b, "controls", s.Last, c)
		b = appendField(b, "dir", dir.String())
		b = appendField(b, "opcode", s.Opcode.String())
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, s.Count, 10)
		b = append(b, `,"bytes":`...)
		b = strconv.AppendInt(b, s.Bytes, 10)
		b = append(b, `,"first":"`...)
		b = j.appendTime(b, s.First)
		b = append(b, `","seq_first":`...)
		b = strconv.AppendUint(b, s.FirstSeq, 10)
		b = append(b, `,"seq_last":`...)
		b = strconv.AppendUint(b, s.LastSeq, 10)
		return append(b, '}')
	})
}

// Controls prints how many pings or pongs were counted instead of printed.
func (t *Terminal) Controls(c *plugins.Conn, dir plugins.Direction, s plugins.ControlSummary) {
	t.event(c, dir, s.Last, func(b []byte) []byte {
		b = append(b, s.Opcode.String()...)
		b = append(b, " ×"...)
		b = strconv.AppendInt(b, s.Count, 10)
		b = append(b, " ("...)
		b = strconv.AppendInt(b, s.Bytes, 10)
		b = append(b, " bytes) in "...)
		b = append(b, s.Last.Sub(s.First).Round(time.Millisecond).String()...)
		return append(b, ", counted, not shown one by one"...)
	})
}
