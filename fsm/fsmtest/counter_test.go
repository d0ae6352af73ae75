package fsmtest_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/fsmtest"
)

// counter is a small FSM for testing the suite itself: it counts how often
// each word was applied. Without a flaw it keeps the whole fsm contract;
// each flaw breaks one promise, to show that the suite notices.
//
// A command is a word of 1 to 8 lower-case letters; its result is
// "word=count", or "bad" for anything else. A query is a word; its answer
// is the word's count. The image is
//
//	magic "CNT1" | bodyLength:u32 | body | crc32c:u32 over everything before
//	body = applied:u64 last count*(word count:u64)
//
// with words as a length byte and the bytes, sorted.
type counter struct {
	flaw    string            // which promise to break, "" for none
	counts  map[string]uint64 // word -> times applied
	applied uint64            // valid commands applied
	last    []byte            // the last valid command
	buf     []byte            // scratch for the reuses-result flaw
}

// The flaws counter can have.
const (
	flawMapOrder       = "map-order"       // Snapshot walks the map unsorted
	flawRetainsCommand = "retains-command" // Apply keeps the caller's slice
	flawReusesResult   = "reuses-result"   // Apply returns a buffer it reuses
	flawQueryMutates   = "query-mutates"   // Query counts itself as applied
	flawRestoreMerges  = "restore-merges"  // Restore adds to the old state
	flawRestoreDrops   = "restore-drops"   // Restore forgets the last command
	flawNoChecksum     = "no-checksum"     // Restore ignores the checksum
	flawReadsOutside   = "reads-outside"   // Apply's result shows the instance's address
)

func newCounter(flaw string) *counter {
	return &counter{flaw: flaw, counts: map[string]uint64{}}
}

func validWord(b []byte) bool {
	if len(b) == 0 || len(b) > 8 {
		return false
	}
	for _, c := range b {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

func (c *counter) Apply(ctx fsm.Context, cmd []byte) []byte {
	if !validWord(cmd) {
		return []byte("bad")
	}
	c.counts[string(cmd)]++
	c.applied++
	c.last = bytes.Clone(cmd)
	if c.flaw == flawRetainsCommand {
		c.last = cmd
	}
	result := fmt.Appendf(nil, "%s=%d", cmd, c.counts[string(cmd)])
	switch c.flaw {
	case flawReusesResult:
		c.buf = append(c.buf[:0], result...)
		return c.buf
	case flawReadsOutside:
		// Something outside the state, the command and the Context: equal
		// replicas disagree.
		return fmt.Appendf(result, "@%p", c)
	}
	return result
}

func (c *counter) Query(q []byte) ([]byte, error) {
	if !validWord(q) {
		return nil, errors.New("counter: query is not a word")
	}
	if c.flaw == flawQueryMutates {
		c.applied++
	}
	return strconv.AppendUint(nil, c.counts[string(q)], 10), nil
}

func (c *counter) Snapshot(w io.Writer) error {
	body := binary.BigEndian.AppendUint64(nil, c.applied)
	body = appendWord(body, string(c.last))
	words := slices.Sorted(maps.Keys(c.counts))
	if c.flaw == flawMapOrder {
		words = words[:0]
		for word := range c.counts {
			words = append(words, word)
		}
	}
	for _, word := range words {
		body = binary.BigEndian.AppendUint64(appendWord(body, word), c.counts[word])
	}
	image := binary.BigEndian.AppendUint32([]byte("CNT1"), uint32(len(body)))
	image = append(image, body...)
	image = binary.BigEndian.AppendUint32(image, crc32.Checksum(image, crc32.MakeTable(crc32.Castagnoli)))
	_, err := w.Write(image)
	return err
}

func (c *counter) Restore(r io.Reader) error {
	image, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(image) < 12 || string(image[:4]) != "CNT1" || int(binary.BigEndian.Uint32(image[4:])) != len(image)-12 {
		return errors.New("counter: bad header or length")
	}
	sum := binary.BigEndian.Uint32(image[len(image)-4:])
	if c.flaw != flawNoChecksum && sum != crc32.Checksum(image[:len(image)-4], crc32.MakeTable(crc32.Castagnoli)) {
		return errors.New("counter: checksum mismatch")
	}
	return c.parse(image[8 : len(image)-4])
}

func (c *counter) parse(body []byte) error {
	if len(body) < 9 {
		return errors.New("counter: short body")
	}
	counts := map[string]uint64{}
	if c.flaw == flawRestoreMerges {
		counts = c.counts
	}
	applied := binary.BigEndian.Uint64(body)
	last, rest, ok := cutWord(body[8:])
	for ok && len(rest) > 0 {
		var word string
		if word, rest, ok = cutWord(rest); ok && len(rest) >= 8 {
			counts[word] += binary.BigEndian.Uint64(rest)
			rest = rest[8:]
		} else {
			ok = false
		}
	}
	if !ok {
		return errors.New("counter: truncated body")
	}
	c.counts, c.applied = counts, applied
	if c.flaw != flawRestoreDrops {
		c.last = []byte(last)
	}
	return nil
}

func appendWord(b []byte, word string) []byte {
	return append(append(b, byte(len(word))), word...)
}

func cutWord(b []byte) (word string, rest []byte, ok bool) {
	if len(b) == 0 || int(b[0]) > len(b)-1 {
		return "", nil, false
	}
	return string(b[1 : 1+b[0]]), b[1+b[0]:], true
}

// counterWorkload mixes words from a small set (eight of them, so that map
// order has room to show) with malformed commands and queries.
func counterWorkload(r *rand.Rand) fsmtest.Workload {
	words := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	bad := []string{"", "A", "toolongword", "a b"}
	var w fsmtest.Workload
	for range 100 {
		if r.IntN(10) == 0 {
			w.Commands = append(w.Commands, []byte(bad[r.IntN(len(bad))]))
		} else {
			w.Commands = append(w.Commands, []byte(words[r.IntN(len(words))]))
		}
	}
	for range 20 {
		w.Queries = append(w.Queries, []byte(words[r.IntN(len(words))]))
	}
	w.Queries = append(w.Queries, []byte(bad[r.IntN(len(bad))]))
	return w
}
