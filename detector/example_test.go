package detector_test

import (
	"context"
	"fmt"

	"github.com/hasup/hasup/detector"
)

// A single node on loopback: it reports itself alive, with the address of
// its consensus transport.
func Example() {
	cfg := detector.DefaultConfig()
	cfg.NodeName = "n1"
	cfg.BindAddr = "127.0.0.1"
	cfg.BindPort = 0 // any free port; d.Addr() tells which
	cfg.Profile = detector.ProfileLocal
	cfg.RPCAddr = "127.0.0.1:7947"
	cfg.Tags = map[string]string{"zone": "a"}
	d, err := detector.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	e := <-d.Events()
	fmt.Println(e.Member.ID, e.Member.State, e.Member.Addr, e.Member.Tags)
	fmt.Println("alive:", d.NumAlive())

	cancel() // shuts down without leaving; call d.Leave() first to leave
	fmt.Println("run:", <-done)
	// Output:
	// n1 alive 127.0.0.1:7947 map[zone:a]
	// alive: 1
	// run: <nil>
}

func ExampleGenerateKey() {
	s, err := detector.GenerateKey() // what `hasup keygen` prints
	if err != nil {
		fmt.Println(err)
		return
	}
	key, err := detector.DecodeKey(s) // what the `encrypt:` config key becomes
	fmt.Println(len(key), err)
	// Output: 32 <nil>
}
