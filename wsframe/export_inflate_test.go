package wsframe

// InflaterWindow returns the history f inflates the next message with.
func InflaterWindow(f *Inflater) []byte { return f.window }
