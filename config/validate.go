package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Validate reports every problem with c, as *Error values (without a
// source) joined with errors.Join, each wrapping ErrInvalid. It does not
// touch the file system: Load and Check also check that the TLS files exist.
func (c Config) Validate() error {
	return c.problems().err()
}

// Limits that Validate enforces, each explained where its field is.
const (
	maxNameLen        = 63
	maxBootstrap      = 7
	maxTagBytes       = 256
	maxAttempts       = 1000
	maxFailures       = 100
	maxStopGrace      = 10 * time.Minute
	reservedTagPrefix = "hasup."
	reservedEnvPrefix = "HASUP_"
)

// nameRE is the rule for node, ensemble, worker and FSM type names: an RFC
// 1123 DNS label. Names appear in URLs (/v1/workers/billing), file names
// (worker logs), environment values (HASUP_WORKER) and Serf node names, so
// they hold nothing that needs escaping in any of them.
var (
	nameRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// problems returns every problem with c, each with its key path.
func (c Config) problems() problems {
	var p problems
	c.checkNode(&p)
	c.checkCluster(&p)
	c.checkTags(&p)
	names := map[string]string{} // ensemble and worker names → the key that took it
	for i, e := range c.Ensembles {
		e.check(&p, fmt.Sprintf("ensembles[%d]", i), names)
	}
	for i, w := range c.Workers {
		w.check(&p, fmt.Sprintf("workers[%d]", i), names)
	}
	return p
}

// checkNode checks this node's identity, addresses and local settings.
func (c Config) checkNode(p *problems) {
	if msg := nameProblem(c.NodeName); msg != "" {
		if c.NodeName == hostNodeName() {
			msg += "; it was taken from the host name: set node_name"
		}
		p.add("node_name", "%s", msg)
	}
	if c.DataDir == "" {
		p.add("data_dir", "must not be empty")
	} else if strings.ContainsRune(c.DataDir, 0) {
		p.add("data_dir", "must not contain a NUL byte")
	}
	bind := net.ParseIP(c.BindAddr)
	if bind == nil {
		p.add("bind_addr", "%q is not an IP address", c.BindAddr)
	}
	switch adv := net.ParseIP(c.AdvertiseAddr); {
	case adv == nil:
		p.add("advertise_addr", "%q is not an IP address", c.AdvertiseAddr)
	case adv.IsUnspecified() && c.AdvertiseAddr == c.BindAddr:
		p.add("advertise_addr", "must be set when bind_addr is %s, which other nodes cannot reach", c.BindAddr)
	case adv.IsUnspecified():
		p.add("advertise_addr", "%s cannot be reached by other nodes", c.AdvertiseAddr)
	}
	portProblem(p, "serf_port", c.SerfPort, 0)
	portProblem(p, "rpc_port", c.RPCPort, 0)
	if c.RPCPort != 0 && c.RPCPort == c.SerfPort {
		p.add("rpc_port", "%d is also serf_port; they must differ", c.RPCPort)
	}
	if msg := hostPortProblem(c.HTTPAddr, true, 0); msg != "" {
		p.add("http_addr", "%s", msg)
	}
	for _, r := range c.HTTPToken {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			p.add("http_token", "must not contain white space or control characters")
			break
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.add("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.TLS.Enabled() && (c.TLS.CertFile == "" || c.TLS.KeyFile == "" || c.TLS.CAFile == "") {
		for _, f := range tlsFiles(c.TLS) {
			if f.path == "" {
				p.add(f.key, "must be set: mutual TLS needs cert_file, key_file and ca_file, or none of them")
			}
		}
	}
}

// tlsFiles lists the TLS files with their keys.
func tlsFiles(t TLS) []struct{ key, path string } {
	return []struct{ key, path string }{
		{"tls.cert_file", t.CertFile}, {"tls.key_file", t.KeyFile}, {"tls.ca_file", t.CAFile},
	}
}

// checkCluster checks how the node finds and forms the cluster.
func (c Config) checkCluster(p *problems) {
	for i, addr := range c.Join {
		if msg := hostPortProblem(addr, false, 1); msg != "" {
			p.add(fmt.Sprintf("join[%d]", i), "%s", msg)
		}
	}
	if c.BootstrapExpect < 1 || c.BootstrapExpect > maxBootstrap {
		p.add("bootstrap_expect", "%d is out of range 1..%d", c.BootstrapExpect, maxBootstrap)
	}
	switch c.Profile {
	case ProfileLAN, ProfileLocal:
	default:
		p.add("profile", "%q is not one of lan, local", c.Profile)
	}
	if c.Encrypt != "" {
		key, err := base64.StdEncoding.DecodeString(c.Encrypt)
		switch {
		case err != nil:
			p.add("encrypt", "is not base64 (make a key with hasup keygen)")
		case len(key) != 16 && len(key) != 24 && len(key) != 32:
			p.add("encrypt", "decodes to %d bytes; a key has 16, 24 or 32 (make one with hasup keygen)", len(key))
		}
	}
}

// checkTags checks the node's tags.
func (c Config) checkTags(p *problems) {
	total := 0
	for _, k := range sortedKeys(c.Tags) {
		v := c.Tags[k]
		at := mapKeyPath("tags", k)
		total += len(k) + len(v)
		if msg := wordProblem("key", k); msg != "" {
			p.add(at, "%s", msg)
		} else if strings.HasPrefix(strings.ToLower(k), reservedTagPrefix) {
			p.add(at, "keys starting with %q are reserved for hasup", reservedTagPrefix)
		}
		if msg := wordProblem("value", v); msg != "" {
			p.add(at, "%s", msg)
		}
	}
	if total > maxTagBytes {
		p.add("tags", "keys and values take %d bytes; at most %d fit beside hasup's own in Serf's node metadata", total, maxTagBytes)
	}
}

// check checks an ensemble at key path at, and claims its name in names.
func (e Ensemble) check(p *problems, at string, names map[string]string) {
	claimName(p, at, e.Name, names)
	if msg := nameProblem(e.Type); msg != "" {
		p.add(at+".type", "%s", msg)
	}
	replicasProblem(p, at+".replicas", e.Replicas)
	for i, c := range e.Constraints {
		if msg := constraintProblem(c); msg != "" {
			p.add(fmt.Sprintf("%s.constraints[%d]", at, i), "%s", msg)
		}
	}
}

// check checks a worker at key path at, and claims its name in names.
func (w Worker) check(p *problems, at string, names map[string]string) {
	claimName(p, at, w.Name, names)
	switch w.Mode {
	case ModeSingleton, ModeEvery:
	default:
		p.add(at+".mode", "%q is not one of singleton, every", w.Mode)
	}
	replicasProblem(p, at+".replicas", w.Replicas)
	switch {
	case len(w.Command) == 0:
		p.add(at+".command", "must name a program: a list such as [\"/usr/bin/billing\", \"--serve\"]")
	case w.Command[0] == "":
		p.add(at+".command[0]", "the program must not be empty")
	}
	for _, k := range sortedKeys(w.Env) {
		switch {
		case !envNameRE.MatchString(k):
			p.add(mapKeyPath(at+".env", k), "%q is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", k)
		case strings.HasPrefix(strings.ToUpper(k), reservedEnvPrefix):
			p.add(mapKeyPath(at+".env", k), "names starting with %s are set by hasup", reservedEnvPrefix)
		case strings.ContainsRune(w.Env[k], 0):
			p.add(mapKeyPath(at+".env", k), "must not contain a NUL byte")
		}
	}
	w.Restart.check(p, at+".restart")
	w.Check.check(p, at+".check")
	if w.StopGrace < 0 || w.StopGrace > maxStopGrace {
		p.add(at+".stop_grace", "%v is out of range 0s..%v", w.StopGrace, maxStopGrace)
	}
}

func (r Restart) check(p *problems, at string) {
	if r.Attempts < 0 || r.Attempts > maxAttempts {
		p.add(at+".attempts", "%d is out of range 0..%d", r.Attempts, maxAttempts)
	}
	if r.Interval <= 0 {
		p.add(at+".interval", "must be positive, not %v", r.Interval)
	}
	if r.Delay < 0 {
		p.add(at+".delay", "must not be negative, not %v", r.Delay)
	}
	if r.MaxDelay < r.Delay {
		p.add(at+".max_delay", "%v is less than delay %v", r.MaxDelay, r.Delay)
	}
}

func (c HealthCheck) check(p *problems, at string) {
	probes := 0
	if c.HTTP != "" {
		probes++
		if u, err := url.Parse(c.HTTP); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add(at+".http", "%q is not an http:// or https:// URL with a host", c.HTTP)
		}
	}
	if c.TCP != "" {
		probes++
		if msg := hostPortProblem(c.TCP, false, 1); msg != "" {
			p.add(at+".tcp", "%s", msg)
		}
	}
	if c.Exec != nil {
		probes++
		if len(c.Exec) == 0 || c.Exec[0] == "" {
			p.add(at+".exec", "must name a program: a list such as [\"/usr/bin/check\", \"--quick\"]")
		}
	}
	if probes > 1 {
		p.add(at, "set at most one of http, tcp and exec")
	}
	if c.Interval <= 0 {
		p.add(at+".interval", "must be positive, not %v", c.Interval)
	}
	switch {
	case c.Timeout <= 0:
		p.add(at+".timeout", "must be positive, not %v", c.Timeout)
	case c.Timeout >= c.Interval && c.Interval > 0:
		p.add(at+".timeout", "%v must be less than interval %v, so that checks never overlap", c.Timeout, c.Interval)
	}
	if c.Failures < 1 || c.Failures > maxFailures {
		p.add(at+".failures", "%d is out of range 1..%d", c.Failures, maxFailures)
	}
}

// claimName checks the name at path at and that no earlier ensemble or
// worker took it: a worker is an ensemble of its own, so the two share one
// name space.
func claimName(p *problems, at, name string, names map[string]string) {
	if msg := nameProblem(name); msg != "" {
		p.add(at+".name", "%s", msg)
		return
	}
	if first, taken := names[name]; taken {
		p.add(at+".name", "%q is already the name of %s; ensemble and worker names must be unique", name, first)
		return
	}
	names[name] = at
}

// nameProblem says why s is not a name, or returns "".
func nameProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > maxNameLen:
		return fmt.Sprintf("%q is longer than %d characters", s, maxNameLen)
	case !nameRE.MatchString(s):
		return fmt.Sprintf("%q is not a name: use lower-case letters, digits and inner dashes (like web-1)", s)
	}
	return ""
}

// replicasProblem checks an ensemble size.
func replicasProblem(p *problems, at string, n int) {
	if n != 1 && n != 3 && n != 5 {
		p.add(at, "%d is not 3 or 5 (or 1, for development)", n)
	}
}

// portProblem checks a port number, lowest allowed low.
func portProblem(p *problems, at string, port, low int) {
	if port < low || port > 65535 {
		p.add(at, "%d is out of range %d..65535", port, low)
	}
}

// hostPortProblem says why s is not host:port, or returns "". The host is
// an IP address or a DNS name; an empty host is allowed when emptyHost is
// (it means every interface); the port is low..65535.
func hostPortProblem(s string, emptyHost bool, low int) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not host:port", s)
	}
	switch {
	case host == "" && !emptyHost:
		return fmt.Sprintf("%q has no host", s)
	case host != "" && net.ParseIP(host) == nil && !isDNSName(host):
		return fmt.Sprintf("%q: %q is neither an IP address nor a host name", s, host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < low || n > 65535 {
		return fmt.Sprintf("%q: port %q is not a number in %d..65535", s, port, low)
	}
	return ""
}

// isDNSName reports whether s is a syntactically valid host name.
func isDNSName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(s, "."), ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r == '-' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
				return false
			}
		}
	}
	return true
}

// constraintProblem says why s is not a placement constraint, or returns
// "". The forms are those of supervisor/placement.ParseConstraint:
// "key=value", "key!=value", "key" and "!key".
func constraintProblem(s string) string {
	var key, value string
	hasValue := true
	switch {
	case strings.Contains(s, "!="):
		key, value, _ = strings.Cut(s, "!=")
	case strings.Contains(s, "="):
		key, value, _ = strings.Cut(s, "=")
	case strings.HasPrefix(s, "!"):
		key, hasValue = s[1:], false
	default:
		key, hasValue = s, false
	}
	if msg := wordProblem("key", key); msg != "" {
		return fmt.Sprintf("%q: %s (write key=value, key!=value, key or !key)", s, msg)
	}
	if hasValue {
		if msg := wordProblem("value", value); msg != "" {
			return fmt.Sprintf("%q: %s", s, msg)
		}
	}
	return ""
}

// wordProblem says why s cannot be a tag key or value (what names which),
// or returns "". The alphabet is placement's: it keeps "zone=a" and
// "zone=a,rack=b" unambiguous.
func wordProblem(what, s string) string {
	if s == "" {
		return fmt.Sprintf("empty %s", what)
	}
	for _, r := range s {
		if !(strings.ContainsRune("._-/:", r) || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return fmt.Sprintf("%s %q holds %q; use letters, digits and . _ - / :", what, s, r)
		}
	}
	return ""
}

// sortedKeys returns m's keys in order, so that problems come out in the
// same order every time.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
