package kv_test

import (
	"errors"
	"fmt"

	"github.com/hasup/hasup/fsm"
	"github.com/hasup/hasup/fsm/kv"
)

func Example() {
	s := kv.New()
	ctx := fsm.NewContext(1, 0, 0, 0) // the ensemble supplies this; kv ignores it

	// Create a key only if it is absent, then update it at its revision.
	res, _ := kv.DecodeResult(s.Apply(ctx, kv.CASCmd([]byte("config/leader"), []byte("node-a"), 0)))
	fmt.Println("created at revision", res.ModRevision)
	_, err := kv.DecodeResult(s.Apply(ctx, kv.CASCmd([]byte("config/leader"), []byte("node-b"), 0)))
	fmt.Println("second create:", errors.Is(err, kv.ErrCASConflict))
	res, _ = kv.DecodeResult(s.Apply(ctx, kv.CASCmd([]byte("config/leader"), []byte("node-b"), res.ModRevision)))
	fmt.Println("updated at revision", res.ModRevision)

	s.Apply(ctx, kv.AppendCmd([]byte("config/log"), []byte("a,")))
	s.Apply(ctx, kv.AppendCmd([]byte("config/log"), []byte("b,")))

	answer, _ := s.Query(kv.GetQuery([]byte("config/leader")))
	got, _ := kv.DecodeResult(answer)
	fmt.Printf("leader %s, created %d, modified %d\n", got.Value, got.CreateRevision, got.ModRevision)

	answer, _ = s.Query(kv.ListQuery([]byte("config/"), nil, 10))
	page, _ := kv.DecodeList(answer)
	for _, e := range page.Entries {
		fmt.Printf("%s = %s\n", e.Key, e.Value)
	}
	// Output:
	// created at revision 1
	// second create: true
	// updated at revision 2
	// leader node-b, created 1, modified 2
	// config/leader = node-b
	// config/log = a,b,
}
