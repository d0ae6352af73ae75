package lock_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/lock"
)

func Example() {
	tab := lock.New()
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	// The ensemble gives each command its time and fence; here, by hand.
	at := func(op uint64, d time.Duration) fsm.Context {
		return fsm.NewContext(op, start.Add(d).UnixNano(), 0, 0)
	}

	res, _ := lock.DecodeResult(tab.Apply(at(1, 0), lock.AcquireCmd("backup", "node-a", 10*time.Second)))
	fmt.Println("node-a holds backup with fence", res.Fence)

	res, err := lock.DecodeResult(tab.Apply(at(2, 5*time.Second), lock.AcquireCmd("backup", "node-b", 10*time.Second)))
	fmt.Println("node-b refused:", errors.Is(err, lock.ErrHeld), "holder", res.Owner)

	// node-a stops renewing; at 10s its lease has run out by command time.
	res, _ = lock.DecodeResult(tab.Apply(at(3, 10*time.Second), lock.AcquireCmd("backup", "node-b", 10*time.Second)))
	fmt.Println("node-b holds backup with fence", res.Fence)

	_, err = lock.DecodeResult(tab.Apply(at(4, 11*time.Second), lock.ReleaseCmd("backup", "node-a")))
	fmt.Println("node-a release:", errors.Is(err, lock.ErrNotHolder))

	answer, _ := tab.Query(lock.HolderQuery("backup"))
	res, _ = lock.DecodeResult(answer)
	fmt.Println("holder", res.Owner, "until", res.Expiry.Format(time.TimeOnly), "held at 15s:", res.HeldAt(start.Add(15*time.Second)))
	// Output:
	// node-a holds backup with fence 1
	// node-b refused: true holder node-a
	// node-b holds backup with fence 2
	// node-a release: true
	// holder node-b until 12:00:20 held at 15s: true
}
