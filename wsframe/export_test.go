package wsframe

// MaxResyncHeld is the bound on the bytes a resynchronisation holds while it
// verifies a position (plus the last piece fed).
const MaxResyncHeld = maxHunt

// ResyncHeld returns the bytes d's resynchronisation holds.
func ResyncHeld(d *Decoder) int {
	if d.hunt == nil {
		return 0
	}
	return len(d.hunt.buf)
}
