package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strconv"

	"github.com/hasup/hasup/fsm"
)

// Counter is a replicated counter: an fsm.FSM whose whole state is one
// int64.
//
// Commands and queries are short ASCII texts, so that a log of them reads
// like what it does:
//
//	add N   adds N (a decimal int64, negative to subtract); answers the new count
//	get     answers the count
//
// "get" works both as a query (Query: answered from one replica's state)
// and as a command (Apply: ordered in the log with the adds). An answer is
// the count in decimal, or "error: ..." when a command cannot run (bad
// syntax, or a sum that would overflow): Apply cannot fail, because every
// replica must agree on what it did, so the error is part of the result.
//
// Counter reads nothing but its state and the command: not the clock, not a
// random source, not a map's order. That is all determinism asks of it, and
// fsmtest.Run checks it (see counter_test.go).
type Counter struct {
	count int64
}

var _ fsm.FSM = (*Counter)(nil)

// NewCounter returns a counter at zero.
func NewCounter() *Counter { return &Counter{} }

// The snapshot image is
//
//	magic "CTR1" | count:i64 | crc32c:u32 of the 12 bytes before
//
// big-endian, 16 bytes in all. Its fixed length makes it self-delimiting, and
// the checksum lets Restore refuse a damaged image rather than start a
// replica from wrong state.
const (
	imageMagic = "CTR1"
	imageBytes = 4 + 8 + 4
)

// castagnoli is the CRC-32C table, the checksum hasup uses throughout.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors of the counter.
var (
	// ErrRejected: the counter refused a command (bad syntax, or a sum
	// past the int64 range); the state did not change.
	ErrRejected = errors.New("counter: command rejected")
	// ErrBadQuery: Query was given something other than "get".
	ErrBadQuery = errors.New("counter: bad query")
	// ErrBadImage: Restore was given a truncated or damaged image.
	ErrBadImage = errors.New("counter: bad snapshot image")
)

// AddCmd returns the command that adds n.
func AddCmd(n int64) []byte { return strconv.AppendInt([]byte("add "), n, 10) }

// GetCmd returns the command (or query) that answers the count.
func GetCmd() []byte { return []byte("get") }

// DecodeResult reads an answer of Apply or Query: the count, or the
// command's error.
func DecodeResult(b []byte) (int64, error) {
	if msg, ok := bytes.CutPrefix(b, []byte("error: ")); ok {
		return 0, fmt.Errorf("%w: %s", ErrRejected, msg)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("counter: bad answer %q", b)
	}
	return n, nil
}

// Apply runs "add N" or "get". It keeps nothing of cmd.
func (c *Counter) Apply(_ fsm.Context, cmd []byte) []byte {
	if string(cmd) == "get" {
		return c.answer()
	}
	arg, ok := bytes.CutPrefix(cmd, []byte("add "))
	if !ok {
		return fmt.Appendf(nil, "error: unknown command %q", cmd)
	}
	n, err := strconv.ParseInt(string(arg), 10, 64)
	if err != nil {
		return fmt.Appendf(nil, "error: add: %q is not an int64", arg)
	}
	if (n > 0 && c.count > math.MaxInt64-n) || (n < 0 && c.count < math.MinInt64-n) {
		return fmt.Appendf(nil, "error: add %d to %d overflows", n, c.count)
	}
	c.count += n
	return c.answer()
}

// Query answers "get" from this replica's state.
func (c *Counter) Query(q []byte) ([]byte, error) {
	if string(q) != "get" {
		return nil, fmt.Errorf("%w: %q, want \"get\"", ErrBadQuery, q)
	}
	return c.answer(), nil
}

// answer returns the count in decimal, in a new slice: results are kept in
// the ensemble's client table and must not change afterwards.
func (c *Counter) answer() []byte { return strconv.AppendInt(nil, c.count, 10) }

// Snapshot writes the image.
func (c *Counter) Snapshot(w io.Writer) error {
	b := make([]byte, 0, imageBytes)
	b = append(b, imageMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.count))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	_, err := w.Write(b)
	return err
}

// Restore replaces the state with the image's. On error it changes
// nothing.
func (c *Counter) Restore(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, imageBytes+1))
	switch {
	case err != nil:
		return fmt.Errorf("%w: %v", ErrBadImage, err)
	case len(b) != imageBytes:
		return fmt.Errorf("%w: %d bytes, want %d", ErrBadImage, len(b), imageBytes)
	case string(b[:4]) != imageMagic:
		return fmt.Errorf("%w: magic %q, want %q", ErrBadImage, b[:4], imageMagic)
	case binary.BigEndian.Uint32(b[12:]) != crc32.Checksum(b[:12], castagnoli):
		return fmt.Errorf("%w: checksum mismatch", ErrBadImage)
	}
	c.count = int64(binary.BigEndian.Uint64(b[4:]))
	return nil
}
