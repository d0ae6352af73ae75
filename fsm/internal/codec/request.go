package codec

// Op is an FSM's request kind: a byte on the wire, with a name for error
// messages. Each FSM leaves 0 unused so that zeroed bytes never decode.
type Op interface {
	~uint8
	String() string
}

// BeginRequest starts an encoded request of kind o whose layout is at
// version, with room for n more bytes of fields.
//
// Every request starts with its op byte and a version byte. The version
// belongs to that op's layout, so that one op can change without touching
// the others.
func BeginRequest[O Op](o O, version byte, n int) []byte {
	return append(make([]byte, 0, 2+n), byte(o), version)
}

// ReadOp reads the op and version bytes BeginRequest wrote, and records a
// problem if the version is not want. It does not judge the op: the caller
// knows which ops exist and reports an unknown one.
func ReadOp[O Op](d *Decoder, want byte) O {
	o := O(d.U8("op"))
	if v := d.U8("version"); d.err == nil && v != want {
		d.Failf("op %s: unsupported version %d, want %d", o, v, want)
	}
	return o
}
