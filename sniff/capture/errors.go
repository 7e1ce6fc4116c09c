package capture

import (
	"errors"
	"fmt"
)

// ErrPermission is matched (with errors.Is) by the error Open returns when
// the process may not open a packet socket: it lacks CAP_NET_RAW.
var ErrPermission = errors.New("live capture needs the CAP_NET_RAW capability")

// ErrUnsupported is matched by the error Open returns on an operating
// system other than Linux.
var ErrUnsupported = errors.New("live capture needs Linux (AF_PACKET)")

// permissionError is the error of an Open that lacked CAP_NET_RAW. It
// matches ErrPermission and unwraps to the system's error (EPERM or
// EACCES, which match fs.ErrPermission).
type permissionError struct {
	iface string
	err   error
}

func (e *permissionError) Error() string {
	return fmt.Sprintf("capture on %s: %v: run as root, or grant it: sudo setcap cap_net_raw+ep $(which wstap) (%v)",
		e.iface, ErrPermission, e.err)
}

func (e *permissionError) Is(target error) bool { return target == ErrPermission }

func (e *permissionError) Unwrap() error { return e.err }

// Stats are the kernel's counters for a Handle, since its filter was
// attached.
type Stats struct {
	// Received counts the frames that passed the filter, including those
	// the kernel then dropped.
	Received uint64
	// Dropped counts the frames dropped because the socket's buffer was
	// full: the reader did not keep up.
	Dropped uint64
}
