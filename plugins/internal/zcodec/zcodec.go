// Package zcodec holds what the gzip and deflate codecs share: their max and level
// options, inflating up to a limit, and compressing into a new buffer.
package zcodec

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"

	"github.com/wstap/wstap/plugins"
)

// DefaultMax is the default limit of an inflated payload: 16 MiB, the default
// --max-hook-message.
const DefaultMax = 16 << 20

// OptionDocs documents the max and level options.
var OptionDocs = []plugins.OptionDoc{
	{Name: "max", Usage: "largest inflated payload, in bytes (16MiB, 64KB and 1048576 all work)", Default: "16MiB"},
	{Name: "level", Usage: "compression level for Encode: -1 (the library default) or 0 (none) to 9 (best)", Default: "-1"},
}

// Options reads the max and level options.
func Options(o *plugins.Options) (max int64, level int, err error) {
	if max, err = o.Size("max", DefaultMax); err != nil {
		return 0, 0, err
	}
	if level, err = o.Int("level", flate.DefaultCompression); err != nil {
		return 0, 0, err
	}
	if level < flate.DefaultCompression || level > flate.BestCompression {
		return 0, 0, o.Errorf("level", "%d, want -1 to 9", level)
	}
	return max, level, nil
}

// ReadAll reads r (a decompressor) to its end; more than max bytes is an error, so
// a compression bomb costs at most max bytes of memory.
func ReadAll(r io.Reader, max int64) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > max {
		return nil, fmt.Errorf("inflated payload exceeds max (%d bytes)", max)
	}
	return out, nil
}

// Compress writes p through the compressor newWriter returns for a new buffer,
// closes it and returns the buffer's bytes.
func Compress[W io.WriteCloser](newWriter func(io.Writer) (W, error), p []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := newWriter(&buf)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(p); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
