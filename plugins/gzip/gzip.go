// Package gzip is the "gzip" codec: it inflates payloads the app compressed itself
// with gzip (RFC 1952) for the hooks after it, and compresses a changed payload again
// on the way out. This is compression inside the message, not the permessage-deflate
// extension, which wstap handles on its own.
//
//	--hook gzip --hook replace:match=foo,with=bar
//	--hook base64 --hook gzip:max=1MiB,level=9
//
// Decode fails on anything but one or more complete gzip members with nothing after
// them, and when the inflated payload would exceed max bytes, so a compression bomb
// costs at most max bytes of memory.
package gzip

import (
	"bytes"
	"compress/gzip"
	"context"
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
		Name:        "gzip",
		Description: "inflate gzip-compressed payloads (RFC 1952), re-compress changed ones",
		Options:     zcodec.OptionDocs,
		New:         New,
	})
}

// Codec is a configured gzip codec.
type Codec struct {
	max   int64
	level int
}

// New builds a gzip codec from its options.
func New(o *plugins.Options) (plugins.Element, error) {
	c := &Codec{}
	var err error
	if c.max, c.level, err = zcodec.Options(o); err != nil {
		return nil, err
	}
	return c, nil
}

// Name returns "gzip".
func (c *Codec) Name() string { return "gzip" }

// Decode inflates m.Payload, up to the codec's limit.
func (c *Codec) Decode(_ context.Context, m *plugins.Message) ([]byte, error) {
	// The reader is multistream: it reads members up to the end of the payload, so
	// trailing data is a header error.
	zr, err := gzip.NewReader(bytes.NewReader(m.Payload))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	out, err := zcodec.ReadAll(zr, c.max)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return out, nil
}

// Encode compresses decoded into one gzip member.
func (c *Codec) Encode(_ context.Context, _ *plugins.Message, decoded []byte) ([]byte, error) {
	out, err := zcodec.Compress(func(w io.Writer) (*gzip.Writer, error) { return gzip.NewWriterLevel(w, c.level) }, decoded)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return out, nil
}

var _ plugins.Codec = (*Codec)(nil)
