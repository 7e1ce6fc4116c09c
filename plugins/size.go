package plugins

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// ErrSize reports a byte size that [ParseSize] cannot read.
var ErrSize = errors.New("plugins: not a byte size")

// sizeUnits maps unit suffixes, lower-cased, to their multipliers: SI (kB = 1000)
// and IEC (KiB = 1024), as people write them on command lines.
var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "kib": 1 << 10, "ki": 1 << 10,
	"m": 1e6, "mb": 1e6, "mib": 1 << 20, "mi": 1 << 20,
	"g": 1e9, "gb": 1e9, "gib": 1 << 30, "gi": 1 << 30,
	"t": 1e12, "tb": 1e12, "tib": 1 << 40, "ti": 1 << 40,
}

// ParseSize reads a byte size such as "16MiB", "64KB", "1.5 GiB" or "1048576"
// (units are case-insensitive; KiB, MiB… are powers of 1024, kB, MB… of 1000). It
// rejects negative, fractional-byte and absurdly large values.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, ErrSize
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, ErrSize
	}
	v := f * mult
	if v > 1<<62 || v != math.Trunc(v) {
		return 0, ErrSize
	}
	return int64(v), nil
}
