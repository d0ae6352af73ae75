package sim

import (
	"errors"
	"fmt"
	"slices"

	"github.com/hasup/hasup/ensemble"
)

// record is one Ready's writes, as one store transaction.
type record struct {
	hard    *ensemble.HardState
	ckpt    *ensemble.Checkpoint
	logFrom uint64
	entries []ensemble.Entry
	torn    bool // the crash hit it mid-write: its checksum fails, it was never synced
	corrupt bool // a bit flip after it was synced: its checksum fails
}

// disk is one replica's storage.
type disk struct {
	records []record
}

var errCorrupt = errors.New("sim: storage record fails its checksum")

func recordOf(rd ensemble.Ready) record {
	return record{hard: rd.HardState, ckpt: rd.Checkpoint, logFrom: rd.LogFrom, entries: slices.Clone(rd.Entries)}
}

func (r record) empty() bool { return r.hard == nil && r.ckpt == nil && r.logFrom == 0 }

func (d *disk) write(r record) {
	if r.empty() {
		return
	}
	d.records = append(d.records, r)
	if len(d.records) > 64 {
		d.compact()
	}
}

// compact folds the records into one, as a store's own compaction would.
// A disk with a damaged record is left alone: it is found at the next load.
func (d *disk) compact() {
	dur, err := d.load()
	if err != nil || dur == nil {
		return
	}
	h, c := dur.Hard, dur.Checkpoint
	base := record{hard: &h, ckpt: &c, logFrom: c.Op + 1, entries: dur.Entries}
	d.records = []record{base}
}

// dropTornTail discards a torn last record, as the store does when it opens:
// the next write goes where it was.
func (d *disk) dropTornTail() {
	if n := len(d.records); n > 0 && d.records[n-1].torn {
		d.records = d.records[:n-1]
	}
}

// load folds the records into the durable state. A torn last record is
// dropped (it was never synced, so never acknowledged); any other damaged
// record makes the whole storage corrupt. An empty disk loads as nil.
func (d *disk) load() (*ensemble.Durable, error) {
	recs := d.records
	if n := len(recs); n > 0 && recs[n-1].torn {
		recs = recs[:n-1]
	}
	if len(recs) == 0 {
		return nil, nil
	}
	var dur ensemble.Durable
	hasHard := false
	for i, r := range recs {
		if r.torn || r.corrupt {
			return nil, fmt.Errorf("%w: record %d of %d", errCorrupt, i, len(recs))
		}
		if r.hard != nil {
			dur.Hard, hasHard = *r.hard, true
		}
		if r.ckpt != nil && r.ckpt.Op > dur.Checkpoint.Op {
			drop := r.ckpt.Op - dur.Checkpoint.Op
			if drop >= uint64(len(dur.Entries)) {
				dur.Entries = nil
			} else {
				dur.Entries = slices.Clone(dur.Entries[drop:])
			}
			dur.Checkpoint = *r.ckpt
		}
		if r.logFrom > 0 {
			keep := r.logFrom - 1 - dur.Checkpoint.Op
			if r.logFrom-1 < dur.Checkpoint.Op {
				return nil, fmt.Errorf("sim: record %d writes log from %d below checkpoint %d", i, r.logFrom, dur.Checkpoint.Op)
			}
			if keep < uint64(len(dur.Entries)) {
				dur.Entries = slices.Clone(dur.Entries[:keep])
			} else if keep > uint64(len(dur.Entries)) && len(r.entries) > 0 {
				return nil, fmt.Errorf("sim: record %d leaves a hole in the log at %d", i, dur.Checkpoint.Op+uint64(len(dur.Entries))+1)
			}
			dur.Entries = append(dur.Entries, r.entries...)
		}
	}
	if !hasHard {
		return nil, nil // nothing that identifies a replica was ever synced
	}
	return &dur, nil
}
