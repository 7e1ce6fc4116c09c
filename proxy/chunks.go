package proxy

// chunkBuf collects a message's inflated payload in chunks that never move, so that
// it grows without copying: a message inflating past the hook limit (a compression
// bomb) costs the limit, not the limit plus the copies a doubling buffer makes.
// Chunks double from firstChunk to maxChunk; a first chunk of firstChunk bytes is
// kept between messages, so small messages cost no allocation.
type chunkBuf struct {
	chunks [][]byte // all full but the last
	n      int      // bytes in all
	spare  []byte   // the first chunk, kept for the next message
}

const (
	firstChunk = 4 << 10
	maxChunk   = 256 << 10
)

// room returns the free space at the end of the last chunk, adding a chunk when it
// is full.
func (c *chunkBuf) room() []byte {
	k := len(c.chunks)
	if k > 0 && len(c.chunks[k-1]) < cap(c.chunks[k-1]) {
		last := c.chunks[k-1]
		return last[len(last):cap(last)]
	}
	var next []byte
	switch {
	case k > 0:
		next = make([]byte, 0, min(2*cap(c.chunks[k-1]), maxChunk))
	case c.spare != nil:
		next, c.spare = c.spare[:0], nil
	default:
		next = make([]byte, 0, firstChunk)
	}
	c.chunks = append(c.chunks, next)
	return next[:cap(next)]
}

// grew records that n bytes were written into the space room returned.
func (c *chunkBuf) grew(n int) {
	k := len(c.chunks) - 1
	c.chunks[k] = c.chunks[k][:len(c.chunks[k])+n]
	c.n += n
}

// bytes returns the payload as one slice: the only chunk itself, or a new slice
// joining the chunks.
func (c *chunkBuf) bytes() []byte {
	switch len(c.chunks) {
	case 0:
		return []byte{}
	case 1:
		return c.chunks[0]
	}
	out := make([]byte, 0, c.n)
	for _, ch := range c.chunks {
		out = append(out, ch...)
	}
	return out
}

// reset empties the buffer, keeping the first chunk when it is small.
func (c *chunkBuf) reset() {
	if len(c.chunks) > 0 && cap(c.chunks[0]) <= firstChunk {
		c.spare = c.chunks[0][:0]
	}
	clear(c.chunks)
	c.chunks, c.n = c.chunks[:0], 0
}
