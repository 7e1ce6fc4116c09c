package cmd

// SchemaKeys are the fields every event of a kind has, OptionalKeys those it has
// when they apply (README "The event log"); the binary tests in package cmd_test
// check events against them.
var (
	SchemaKeys = map[string][]string{
		"open":     {"event", "time", "conn", "url", "client", "server", "subprotocol", "extensions", "mode"},
		"message":  {"event", "time", "conn", "dir", "seq", "opcode", "len", "payload", "encoding", "frames", "compressed", "modified", "dropped", "injected", "hooked"},
		"close":    {"event", "time", "conn", "code", "reason", "by"},
		"refused":  {"event", "time", "conn", "url", "client", "server", "subprotocol", "extensions", "mode", "response"},
		"controls": {"event", "time", "conn", "dir", "opcode", "count", "bytes", "first", "seq_first", "seq_last"},
	}
	OptionalKeys = map[string][]string{
		"open":    {"request", "response"},
		"refused": {"request"},
		"message": {"truncated", "decoded", "decoded_encoding", "original", "original_encoding", "original_len", "original_decoded",
			"original_decoded_encoding", "decode_error", "would_modify", "would_payload", "would_encoding", "would_decoded",
			"would_decoded_encoding", "would_drop", "would_inject"},
	}
)
