// Package deflate is the "deflate" codec: it inflates payloads the app compressed
// itself with DEFLATE for the hooks after it, and compresses a changed payload again
// on the way out. By default the payload is a raw DEFLATE stream (RFC 1951, what
// pako.deflateRaw or zlib with negative window bits produce); with zlib=true it is a
// zlib stream (RFC 1950: a two-byte header, DEFLATE, an Adler-32 checksum). This is
// compression inside the message, not the permessage-deflate extension, which wstap
// handles on its own.
//
//	--hook deflate --hook replace:match=foo,with=bar
//	--hook base64 --hook deflate:zlib=true,max=1MiB
//
// Decode fails on anything but one complete stream (ending with its final block, and
// for zlib its checksum) with nothing after it, and when the inflated payload would
// exceed max bytes, so a compression bomb costs at most max bytes of memory. Raw
// DEFLATE has no header or checksum, so some random bytes happen to inflate: prefer
// zlib=true when the app sends zlib.
package deflate

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/wstap/wstap/plugins"
	"github.com/wstap/wstap/plugins/internal/zcodec"
)

// DefaultMax is the default limit of an inflated payload: 16 MiB, the default
// --max-hook-message.
const DefaultMax = zcodec.DefaultMax

func init() {
	plugins.Register(plugins.Registration{
		Name:        "deflate",
		Description: "inflate raw DEFLATE (RFC 1951) or zlib (RFC 1950) payloads, re-compress changed ones",
		Options: append([]plugins.OptionDoc{
			{Name: "zlib", Usage: "the payload is a zlib stream (RFC 1950) instead of raw DEFLATE", Default: "false"},
		}, zcodec.OptionDocs...),
		New: New,
	})
}

// Codec is a configured deflate codec.
type Codec struct {
	zlib  bool
	max   int64
	level int
}

// New builds a deflate codec from its options.
func New(o *plugins.Options) (plugins.Element, error) {
	c := &Codec{}
	var err error
	if c.zlib, err = o.Bool("zlib", false); err != nil {
		return nil, err
	}
	if c.max, c.level, err = zcodec.Options(o); err != nil {
		return nil, err
	}
	return c, nil
}

// Name returns "deflate".
func (c *Codec) Name() string { return "deflate" }

// Decode inflates m.Payload, up to the codec's limit.
func (c *Codec) Decode(_ context.Context, m *plugins.Message) ([]byte, error) {
	// bytes.Reader is an io.ByteReader, so the decompressors read no further than the
	// end of the stream and src.Len() tells what follows it.
	src := bytes.NewReader(m.Payload)
	var zr io.ReadCloser
	if c.zlib {
		var err error
		if zr, err = zlib.NewReader(src); err != nil {
			return nil, fmt.Errorf("deflate: zlib: %w", err)
		}
	} else {
		zr = flate.NewReader(src)
	}
	defer zr.Close()
	out, err := zcodec.ReadAll(zr, c.max)
	if err != nil {
		return nil, fmt.Errorf("deflate: %w", err)
	}
	if src.Len() != 0 {
		return nil, errors.New("deflate: trailing data after the end of the stream")
	}
	return out, nil
}

// Encode compresses decoded into one complete stream.
func (c *Codec) Encode(_ context.Context, _ *plugins.Message, decoded []byte) ([]byte, error) {
	newWriter := func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, c.level) }
	if c.zlib {
		newWriter = func(w io.Writer) (io.WriteCloser, error) { return zlib.NewWriterLevel(w, c.level) }
	}
	out, err := zcodec.Compress(newWriter, decoded)
	if err != nil {
		return nil, fmt.Errorf("deflate: %w", err)
	}
	return out, nil
}

var _ plugins.Codec = (*Codec)(nil)
