// Package config reads the configuration of a hasup agent: a YAML file,
// HASUP_* environment variables and command-line flags, merged into one
// typed, validated Config. It is the only package that imports viper; flags
// are parsed in cmd/hasup, which passes the ones the user set to Load.
//
// # Precedence
//
// Each key takes its value from the first of these that sets it:
//
//  1. a flag (Options.Flags),
//  2. an environment variable (Options.Env),
//  3. the file (Options.File),
//  4. the default.
//
// A list or map replaces the one from a lower source whole: HASUP_TAGS=rack=r1
// drops the file's zone tag rather than adding to it. In the file, a key set
// to null (key: ~, or key: with nothing after it) is the same as leaving it
// out.
//
// # Environment and flags
//
// Every key except ensembles and workers can be set by environment and
// flag; Settings lists them. The variable is HASUP_ followed by the key path
// upper-cased, with dots as underscores: http_addr is HASUP_HTTP_ADDR,
// tls.cert_file is HASUP_TLS_CERT_FILE. A flag is named by the key path or
// its dashed form (http-addr, tls-cert-file). Lists are comma-separated
// (HASUP_JOIN=10.0.0.1:7946,10.0.0.2:7946), maps are comma-separated
// key=value pairs (HASUP_TAGS=zone=a,rack=r1). Ensembles and workers, lists
// of structures, are set in the file only; commands that workers run come
// only from the local file, never from the network. An empty environment
// variable counts as unset; HASUP_ variables that name no key (HASUP_NODE,
// HASUP_FENCE and the others hasup gives workers) are ignored.
//
// # Keys
//
// Durations are Go duration strings ("250ms", "1s", "1m30s"); a bare number
// is an error, except 0. Sizes of ensembles (replicas) are 3 or 5, or 1 for
// development. Each field's doc comment in Config says why its default is
// what it is.
//
//	key                      unit / form                     default
//	node_name                name                            host name up to its first dot, lower-cased
//	data_dir                 directory path                  ./data/<node_name>
//	bind_addr                IP address                      127.0.0.1
//	advertise_addr           IP address                      bind_addr
//	serf_port                TCP+UDP port, 0..65535          7946 (0: any free port, tests only)
//	rpc_port                 TCP port, 0..65535              7947 (0: any free port, tests only)
//	http_addr                host:port                       127.0.0.1:7900
//	http_token               string                          "" (no token)
//	join                     list of host:port               [] (wait to be joined)
//	bootstrap_expect         nodes, 1..7                     1
//	profile                  lan | local                     lan
//	encrypt                  base64 of 16, 24 or 32 bytes    "" (gossip not encrypted)
//	tags                     map of tag key → value          {}
//	log_level                debug | info | warn | error     info
//	tls.cert_file            PEM file path                   "" (TLS off; all three or none)
//	tls.key_file             PEM file path                   ""
//	tls.ca_file              PEM file path                   ""
//	ensembles[].name         name                            required
//	ensembles[].type         name of an FSM type             kv
//	ensembles[].replicas     1 | 3 | 5                       3
//	ensembles[].constraints  list of k=v, k!=v, k, !k        []
//	workers[].name           name                            required
//	workers[].mode           singleton | every               singleton
//	workers[].replicas       1 | 3 | 5                       3
//	workers[].command        list: program, arguments        required
//	workers[].env            map of variable → value         {}
//	workers[].dir            directory path                  "" (the agent's working directory)
//	workers[].restart.attempts   restarts, 0..1000           5 (0: move on the first failure)
//	workers[].restart.interval   duration, > 0               1m (window the attempts count in)
//	workers[].restart.delay      duration, >= 0              1s (doubles per restart, with jitter)
//	workers[].restart.max_delay  duration, >= delay          30s
//	workers[].check.http     http(s) URL                     "" (at most one of http, tcp, exec)
//	workers[].check.tcp      host:port                       ""
//	workers[].check.exec     list: program, arguments        []
//	workers[].check.interval duration, > 0                   10s
//	workers[].check.timeout  duration, > 0, < interval       2s
//	workers[].check.failures consecutive failures, 1..100    3
//	workers[].stop_grace     duration, 0..10m                5s
//
// # Names
//
// Node, ensemble and worker names, and FSM type names, are RFC 1123 DNS
// labels: 1 to 63 lower-case letters, digits and dashes, starting and ending
// with a letter or digit ([a-z0-9]([a-z0-9-]*[a-z0-9])?). They appear in
// URLs (/v1/workers/billing), file names (worker logs), environment values
// (HASUP_WORKER, HASUP_NODE) and Serf node names, and must need no escaping
// in any of them. Ensemble and worker names share one name space, since a
// worker is an ensemble of its own. Tag keys and values, and the words of
// constraints, use ASCII letters, digits and . _ - / : (as placement does);
// tag keys starting with "hasup." are reserved. Worker environment names
// are [A-Za-z_][A-Za-z0-9_]*, and may not start with HASUP_.
//
// Keys are case-sensitive, in the file as in YAML; so are tag keys and
// worker environment names, which are kept exactly as written.
//
// # Errors
//
// Unknown keys, values of the wrong type and values out of range are all
// errors, reported together, one per line, each naming its source and key
// path:
//
//	hasup.yaml: unknown key "worker" (line 12; did you mean "workers"?)
//	hasup.yaml: workers[1].restart.delay: "fast" is not a duration (write e.g. "1s", "250ms", "1m30s") (line 20)
//	HASUP_SERF_PORT: serf_port: 99999 is out of range 0..65535
//
// Each is an *Error wrapping ErrInvalid. A file that cannot be read is
// reported with the file system's error instead.
//
// # How it works
//
// The file is parsed with go.yaml.in/yaml/v3 into nodes and checked against
// Config's struct tags by reflection: that gives exact key names, line
// numbers and case-sensitive maps, which viper (it lower-cases keys and
// reads dots as nesting) cannot. The checked values, in their Go types, are
// then layered in a fresh viper instance with the environment and flags
// (see merge in load.go) and decoded into Config by viper's UnmarshalExact.
// Limits: the file is at most 4 MiB and 100 000 YAML nodes (counting alias
// expansions); YAML merge keys (<<) are not supported; a file holds one
// YAML document.
package config
