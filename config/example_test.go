package config_test

import (
	"fmt"
	"os"

	"github.com/hasup/hasup/config"
)

func ExampleLoad() {
	cfg, err := config.Load(config.Options{
		File:  "testdata/hasup.yaml",
		Env:   []string{"HASUP_HTTP_TOKEN=s3cret", "HASUP_FENCE=7"}, // os.Environ() in the agent
		Flags: map[string]string{"bootstrap-expect": "1"},           // the flags the user set
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	fmt.Println(cfg.NodeName, cfg.DataDir, cfg.BootstrapExpect, cfg.HTTPToken)
	for _, w := range cfg.Workers {
		fmt.Println(w.Name, w.Mode, w.Command, w.Env, w.Restart.MaxDelay, w.StopGrace)
	}
	// Output:
	// n1 ./data/n1 1 s3cret
	// billing singleton [/usr/bin/billing --serve] map[LOG_LEVEL:info] 30s 5s
}

func ExampleCheck() {
	err := config.Check("testdata/hasup.yaml")
	fmt.Println(err)
	// Output: <nil>
}
