// Package kv is hasup's built-in replicated key-value store: an fsm.FSM with
// etcd-style revisions.
//
// # Revisions
//
// The store has a revision that starts at 0 and grows by exactly one with
// every mutation that takes effect: a Put, an Append, a Delete of a present
// key, a CAS whose expectation held. Each key records the revision that
// created it (CreateRevision) and the revision of its last change
// (ModRevision); a key deleted and created again gets a new CreateRevision.
// Failed and malformed commands and all queries leave the revision alone, so
// a client can tell from the revision alone whether anything changed.
//
// # Commands, queries and results
//
// Clients build commands with PutCmd, DeleteCmd, CASCmd and AppendCmd and
// queries with GetQuery and ListQuery, and read what comes back with
// DecodeResult and DecodeList. Apply cannot fail (every replica must agree on
// what it did), so a command's error travels inside its result bytes and
// DecodeResult returns it: errors.Is(err, ErrCASConflict) and so on. A
// malformed command decodes to ErrBadCommand and leaves the state unchanged.
//
// # Design
//
// Keys live in a map for point access and, once more, in a sorted slice that
// List and Snapshot walk, so no output ever depends on map order. Creating or
// deleting a key costs a copy of part of the slice (O(n)); a B-tree would
// make that O(log n) but costs a dependency or a few hundred lines, and the
// stores hasup hosts are small configuration and coordination stores.
// Rejected: sorting the keys on every List or Snapshot, which makes reads
// pay O(n log n) for what writes can keep cheaply.
package kv

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/internal/codec"
)

// Limits on what one key or value may hold. They bound the memory one command
// can claim and keep every result and list page far below the transport's
// frame limit.
const (
	// MaxKeyBytes is the longest key (and List prefix) the store accepts.
	MaxKeyBytes = 4 << 10
	// MaxValueBytes is the longest value the store accepts, including a value
	// grown by Append.
	MaxValueBytes = 1 << 20
	// MaxListBytes bounds the encoded size of one List answer. A page stops
	// before the entry that would cross it (it always holds at least one
	// entry, which fits since MaxKeyBytes+MaxValueBytes is far smaller) and
	// says More, so one query cannot make the primary build an unbounded
	// reply.
	MaxListBytes = 4 << 20
)

// Errors of the kv store. Operation errors (CAS conflict, not found, too
// large, bad command) come back from DecodeResult; the others from Query,
// Restore and the decoders.
var (
	// ErrBadCommand means Apply was given bytes that are not a valid command;
	// the error names what was wrong and the state did not change.
	ErrBadCommand = errors.New("kv: bad command")
	// ErrBadQuery means Query was given bytes that are not a valid query.
	ErrBadQuery = errors.New("kv: bad query")
	// ErrCASConflict means a CAS found the key at another revision than
	// expected (or present when it expected it absent) and changed nothing.
	ErrCASConflict = errors.New("kv: compare-and-swap conflict")
	// ErrNotFound means a Delete named a key that does not exist.
	ErrNotFound = errors.New("kv: key not found")
	// ErrKeyTooLarge means a key or prefix is longer than MaxKeyBytes.
	ErrKeyTooLarge = errors.New("kv: key too large")
	// ErrValueTooLarge means a value, or a value grown by Append, would be
	// longer than MaxValueBytes.
	ErrValueTooLarge = errors.New("kv: value too large")
	// ErrBadResult means DecodeResult or DecodeList was given bytes that no
	// Store produced.
	ErrBadResult = errors.New("kv: bad result")
	// ErrBadSnapshot means Restore was given a truncated, corrupted or
	// unsupported image.
	ErrBadSnapshot = errors.New("kv: bad snapshot")
)

// Store is a replicated key-value store with revisions. The zero value is not
// usable; call New. Like every fsm.FSM it is not safe for concurrent use.
type Store struct {
	revision uint64            // the store's revision: mutations so far
	entries  map[string]*entry // key -> current value and revisions
	keys     []string          // the keys of entries, sorted
}

// entry is one key's state. Its value is owned by the store: never handed
// out, always copied into results and snapshots.
type entry struct {
	value          []byte
	createRevision uint64
	modRevision    uint64
}

var _ fsm.FSM = (*Store)(nil)

// New returns an empty store at revision 0.
func New() *Store {
	return &Store{entries: make(map[string]*entry)}
}

// Apply executes one command built by PutCmd, DeleteCmd, CASCmd or AppendCmd
// and returns a result for DecodeResult. The store needs nothing from ctx:
// its revisions come from its own counter.
func (s *Store) Apply(_ fsm.Context, cmd []byte) []byte {
	req, err := decodeRequest(cmd)
	if err != nil {
		return s.result(nil, false, err)
	}
	switch req.op {
	case opPut:
		return s.put(req.key, req.value)
	case opDelete:
		return s.delete(req.key)
	case opCAS:
		return s.cas(req.key, req.value, req.revision)
	case opAppend:
		return s.append(req.key, req.value)
	}
	return s.result(nil, false, codec.NewOpError(codeBadCommand, "op %s is a query, not a command", req.op))
}

// Query answers a query built by GetQuery (read it with DecodeResult) or
// ListQuery (read it with DecodeList). A malformed query returns an error
// wrapping ErrBadQuery or ErrKeyTooLarge that names what was wrong.
func (s *Store) Query(q []byte) ([]byte, error) {
	req, err := decodeRequest(q)
	if err != nil {
		return nil, queryError(err)
	}
	switch req.op {
	case opGet:
		return s.result(req.key, true, nil), nil
	case opList:
		return s.list(req.key, req.after, req.limit), nil
	}
	return nil, fmt.Errorf("%w: op %s is a command, not a query", ErrBadQuery, req.op)
}

// put sets key to a copy of value: the command bytes belong to the caller.
func (s *Store) put(key, value []byte) []byte {
	s.set(string(key), bytes.Clone(value))
	return s.result(key, false, nil)
}

// delete removes key, or reports ErrNotFound without bumping the revision.
func (s *Store) delete(key []byte) []byte {
	k := string(key)
	if _, ok := s.entries[k]; !ok {
		return s.result(key, false, codec.NewOpError(codeNotFound, "key %s", codec.Quote(key)))
	}
	s.revision++
	delete(s.entries, k)
	i, _ := slices.BinarySearch(s.keys, k)
	s.keys = slices.Delete(s.keys, i, i+1)
	return s.result(key, false, nil)
}

// cas sets key to value if the key's ModRevision is expect, where 0 stands
// for an absent key. On a conflict the result carries the key's current
// revisions, so the client can retry without another read.
func (s *Store) cas(key, value []byte, expect uint64) []byte {
	var current uint64
	if e, ok := s.entries[string(key)]; ok {
		current = e.modRevision
	}
	if current != expect {
		return s.result(key, false, codec.NewOpError(codeCASConflict,
			"key %s is at revision %d, expected %d", codec.Quote(key), current, expect))
	}
	return s.put(key, value)
}

// append adds suffix to key's value, creating the key if it is absent.
func (s *Store) append(key, suffix []byte) []byte {
	k := string(key)
	e, ok := s.entries[k]
	if !ok {
		return s.put(key, suffix)
	}
	if n := len(e.value) + len(suffix); n > MaxValueBytes {
		return s.result(key, false, codec.NewOpError(codeValueTooLarge,
			"appending %d bytes to key %s would make %d, limit %d", len(suffix), codec.Quote(key), n, MaxValueBytes))
	}
	// append may grow the slice in place: the store owns it and never
	// hands it out, and growing by doubling keeps an append-heavy key
	// linear rather than quadratic.
	s.set(k, append(e.value, suffix...))
	return s.result(key, false, nil)
}

// set stores value under key as the next revision. It takes ownership of
// value.
func (s *Store) set(key string, value []byte) {
	s.revision++
	e, ok := s.entries[key]
	if !ok {
		e = &entry{createRevision: s.revision}
		s.entries[key] = e
		i, _ := slices.BinarySearch(s.keys, key)
		s.keys = slices.Insert(s.keys, i, key)
	}
	e.value = value
	e.modRevision = s.revision
}

// result encodes the outcome of an operation on key: the store's revision
// and the key's state as it stands now, its value only if withValue (a
// mutation's result leaves it out, since results are kept in the client
// table and the client just sent it).
func (s *Store) result(key []byte, withValue bool, err *opError) []byte {
	res := Result{Revision: s.revision}
	// The empty key is never stored, so a nil key finds nothing.
	if e, ok := s.entries[string(key)]; ok {
		res.Found = true
		res.CreateRevision = e.createRevision
		res.ModRevision = e.modRevision
		if withValue {
			res.Value = e.value
		}
	}
	return appendResult(nil, res, err)
}

// list encodes one page of the keys that start with prefix and sort after
// after, at most limit of them (0: no count limit) and at most MaxListBytes.
func (s *Store) list(prefix, after []byte, limit uint32) []byte {
	p := string(prefix)
	i, _ := slices.BinarySearch(s.keys, p)
	if len(after) > 0 {
		j, found := slices.BinarySearch(s.keys, string(after))
		if found {
			j++
		}
		i = max(i, j)
	}
	page := listPage{revision: s.revision}
	size := listHeaderBytes
	for ; i < len(s.keys) && strings.HasPrefix(s.keys[i], p); i++ {
		e := s.entries[s.keys[i]]
		n := entryBytes(len(s.keys[i]), len(e.value))
		if (limit > 0 && len(page.keys) == int(limit)) || (len(page.keys) > 0 && size+n > MaxListBytes) {
			page.more = true
			break
		}
		size += n
		page.keys = append(page.keys, s.keys[i])
	}
	return s.appendPage(make([]byte, 0, size), page)
}

// listPage names the keys of one List answer.
type listPage struct {
	revision uint64
	keys     []string
	more     bool
}
