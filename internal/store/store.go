// Package store keeps every local replica's durable state in one bbolt file
// per node. It is the only package that imports bbolt.
//
// # Layout
//
// A top bucket "ensembles" holds one bucket per ensemble, with the keys
// "hard" (the HardState), "ckpt" (the latest checkpoint) and a bucket "log"
// of entries keyed by their op number (8 bytes, big-endian, so keys sort by
// op). Every value is a record: a version byte, a CRC32C (Castagnoli) of the
// record's kind and payload, and the payload. A record that fails its
// checksum is reported as ErrCorrupt naming the ensemble and the record; it
// is never repaired by truncation, since it may hold something this replica
// acknowledged (the runtime then recovers the replica from its peers).
//
// # Group commit
//
// Commit applies the writes of any number of replicas' Readies in one bbolt
// transaction, so one fsync serves them all. Nothing in a Write may be
// acknowledged before Commit returns nil. The store never sets NoSync.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
	"github.com/hasup/hasup/internal/wire"
	bolt "go.etcd.io/bbolt"
)

// Errors.
var (
	// ErrLocked: another process holds the data file open.
	ErrLocked = errors.New("store: data file is locked by another process (is another hasup running with this data dir?)")
	// ErrCorrupt: a record fails its checksum or cannot be decoded.
	ErrCorrupt = errors.New("store: corrupt record")
	// ErrLost: the replica's state was lost (MarkLost) and no new state
	// has been written since: it must recover from its peers, neither
	// bootstrap nor join (it may have acknowledged ops).
	ErrLost = errors.New("store: replica state lost; it must recover")
)

const recordVersion = 1

var (
	bucketEnsembles = []byte("ensembles")
	keyHard         = []byte("hard")
	keyCkpt         = []byte("ckpt")
	keyLost         = []byte("lost")
	bucketLog       = []byte("log")
	crcTable        = crc32.MakeTable(crc32.Castagnoli)
)

// Store is one node's bbolt file. It is safe for concurrent use (bbolt
// serialises writers), though the runtime funnels writes through one
// group-commit loop.
type Store struct {
	db   *bolt.DB
	path string
}

// DefaultOpenTimeout bounds how long Open waits for the file lock: short, so
// that a second daemon on the same data dir fails at once and says why.
const DefaultOpenTimeout = time.Second

// Open opens (creating if needed) the store file at path. A file locked by
// another process fails within timeout with ErrLocked.
func Open(path string, timeout time.Duration) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
	}
	// The freelist is not written at each commit but rebuilt from the
	// pages at open (NoFreelistSync): it makes every group commit smaller,
	// and costs a scan of the file at start. Data pages and the meta page
	// are still synced at every commit; NoSync is never set.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketEnsembles)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: initialise %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Write is one replica's share of a group commit: the durable part of its
// Ready, with the same meaning (see ensemble.Ready).
type Write struct {
	Ensemble   hasup.EnsembleName
	Hard       *ensemble.HardState
	Checkpoint *ensemble.Checkpoint
	LogFrom    uint64
	Entries    []ensemble.Entry
}

// WriteOf extracts the durable part of a replica's Ready.
func WriteOf(name hasup.EnsembleName, rd ensemble.Ready) Write {
	return Write{Ensemble: name, Hard: rd.HardState, Checkpoint: rd.Checkpoint, LogFrom: rd.LogFrom, Entries: rd.Entries}
}

// Empty reports whether the write changes nothing.
func (w Write) Empty() bool { return w.Hard == nil && w.Checkpoint == nil && w.LogFrom == 0 }

// Commit makes every write durable in one transaction: all or none.
func (s *Store) Commit(writes []Write) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		top := tx.Bucket(bucketEnsembles)
		for _, w := range writes {
			if w.Empty() {
				continue
			}
			if err := apply(top, w); err != nil {
				return fmt.Errorf("ensemble %s: %w", w.Ensemble, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: commit to %s: %w", s.path, err)
	}
	return nil
}

func apply(top *bolt.Bucket, w Write) error {
	b, err := top.CreateBucketIfNotExists([]byte(w.Ensemble))
	if err != nil {
		return err
	}
	log, err := b.CreateBucketIfNotExists(bucketLog)
	if err != nil {
		return err
	}
	if w.Hard != nil {
		if err := b.Delete(keyLost); err != nil { // the replica has state again
			return err
		}
		if err := b.Put(keyHard, record('h', wire.AppendHardState(nil, *w.Hard))); err != nil {
			return err
		}
	}
	if c := w.Checkpoint; c != nil {
		payload := binary.AppendUvarint(nil, c.Op)
		if err := b.Put(keyCkpt, record('c', append(payload, c.Data...))); err != nil {
			return err
		}
		if err := deleteRange(log, 1, c.Op); err != nil {
			return err
		}
	}
	if w.LogFrom > 0 {
		if err := deleteRange(log, w.LogFrom, ^uint64(0)); err != nil {
			return err
		}
		for _, e := range w.Entries {
			if err := log.Put(opKey(e.Op), record('e', wire.AppendEntry(nil, e))); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteRange deletes the log entries with lo <= op <= hi.
func deleteRange(log *bolt.Bucket, lo, hi uint64) error {
	c := log.Cursor()
	for k, _ := c.Seek(opKey(lo)); k != nil && binary.BigEndian.Uint64(k) <= hi; k, _ = c.Seek(opKey(lo)) {
		if err := log.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func opKey(op uint64) []byte { return binary.BigEndian.AppendUint64(nil, op) }

// record frames a payload: version, CRC32C of kind and payload, payload.
func record(kind byte, payload []byte) []byte {
	sum := crc32.Update(crc32.Update(0, crcTable, []byte{kind}), crcTable, payload)
	out := make([]byte, 0, 5+len(payload))
	out = append(out, recordVersion)
	out = binary.BigEndian.AppendUint32(out, sum)
	return append(out, payload...)
}

// unrecord checks a record and returns its payload (a copy: bbolt's memory
// is only valid inside the transaction).
func unrecord(kind byte, v []byte) ([]byte, error) {
	if len(v) < 5 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than a record header", ErrCorrupt, len(v))
	}
	if v[0] != recordVersion {
		return nil, fmt.Errorf("%w: record version %d", ErrCorrupt, v[0])
	}
	payload := v[5:]
	sum := crc32.Update(crc32.Update(0, crcTable, []byte{kind}), crcTable, payload)
	if binary.BigEndian.Uint32(v[1:5]) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return append([]byte(nil), payload...), nil
}

// Load returns a replica's durable state, or nil if it has none (never
// written, deleted, or written without a HardState: nothing that identifies
// a replica was made durable). A damaged record is an ErrCorrupt naming the
// ensemble and the record.
func (s *Store) Load(name hasup.EnsembleName) (*ensemble.Durable, error) {
	var d *ensemble.Durable
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEnsembles).Bucket([]byte(name))
		if b != nil && b.Get(keyHard) == nil && b.Get(keyLost) != nil {
			return ErrLost
		}
		if b == nil || b.Get(keyHard) == nil {
			return nil
		}
		var err error
		d, err = load(b)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: load ensemble %s from %s: %w", name, s.path, err)
	}
	return d, nil
}

func load(b *bolt.Bucket) (*ensemble.Durable, error) {
	d := &ensemble.Durable{}
	p, err := unrecord('h', b.Get(keyHard))
	if err != nil {
		return nil, fmt.Errorf("hard state: %w", err)
	}
	if d.Hard, err = wire.DecodeHardState(p); err != nil {
		return nil, fmt.Errorf("hard state: %w: %v", ErrCorrupt, err)
	}
	if v := b.Get(keyCkpt); v != nil {
		p, err := unrecord('c', v)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		op, k := binary.Uvarint(p)
		if k <= 0 {
			return nil, fmt.Errorf("checkpoint: %w: op", ErrCorrupt)
		}
		d.Checkpoint = ensemble.Checkpoint{Op: op, Data: p[k:]}
	}
	if log := b.Bucket(bucketLog); log != nil {
		next := d.Checkpoint.Op + 1
		err := log.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("log key %x: %w: not an op number", k, ErrCorrupt)
			}
			op := binary.BigEndian.Uint64(k)
			if op < next {
				return nil // covered by the checkpoint (Commit deletes these; tolerate leftovers)
			}
			if op != next {
				return fmt.Errorf("log: %w: op %d follows %d", ErrCorrupt, op, next-1)
			}
			p, err := unrecord('e', v)
			if err != nil {
				return fmt.Errorf("log op %d: %w", op, err)
			}
			e, err := wire.DecodeEntry(p)
			if err != nil || e.Op != op {
				return fmt.Errorf("log op %d: %w: %v (entry op %d)", op, ErrCorrupt, err, e.Op)
			}
			d.Entries = append(d.Entries, e)
			next++
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Ensembles lists the ensembles with state in the store, in name order.
func (s *Store) Ensembles() ([]hasup.EnsembleName, error) {
	var out []hasup.EnsembleName
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEnsembles).ForEach(func(k, _ []byte) error {
			out = append(out, hasup.EnsembleName(k))
			return nil
		})
	})
	return out, err
}

// MarkLost replaces a replica's state (found corrupt) by a marker that
// Load reports as ErrLost until the replica writes a hard state again:
// unlike Delete, a crash before then cannot make the replica look new.
func (s *Store) MarkLost(name hasup.EnsembleName) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		top := tx.Bucket(bucketEnsembles)
		if top.Bucket([]byte(name)) != nil {
			if err := top.DeleteBucket([]byte(name)); err != nil {
				return err
			}
		}
		b, err := top.CreateBucket([]byte(name))
		if err != nil {
			return err
		}
		return b.Put(keyLost, record('l', nil))
	})
	if err != nil {
		return fmt.Errorf("store: mark ensemble %s lost in %s: %w", name, s.path, err)
	}
	return nil
}

// Delete removes a replica's state: after it retired, or before it starts
// again as a new incarnation after its storage was found corrupt.
func (s *Store) Delete(name hasup.EnsembleName) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		top := tx.Bucket(bucketEnsembles)
		if top.Bucket([]byte(name)) == nil {
			return nil
		}
		return top.DeleteBucket([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("store: delete ensemble %s from %s: %w", name, s.path, err)
	}
	return nil
}
