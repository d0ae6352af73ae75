package api

import (
	"context"
	"errors"
	"fmt"
)

// A CLI's view: a Client against an agent's API (here on a fake backend
// with a kv ensemble "orders").
func ExampleClient() {
	_, srv := newFakeServer(Options{})
	defer srv.Close()
	c, ctx := &Client{Addr: srv.URL}, context.Background()

	rev, _ := c.KVPut(ctx, "orders", "config/a", []byte("on"), nil)
	v, _, _ := c.KVGet(ctx, "orders", "config/a", Linearizable)
	fmt.Printf("%s at revision %d\n", v, rev)

	stale := rev - 1
	_, err := c.KVPut(ctx, "orders", "config/a", []byte("off"), &stale)
	fmt.Println("conflict:", errors.Is(err, ErrConflict))

	_, _, err = c.KVGet(ctx, "orders", "missing", "")
	fmt.Println("not found:", errors.Is(err, ErrNotFound))
	// Output:
	// on at revision 1
	// conflict: true
	// not found: true
}
