package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hasup/hasup/internal/api"
)

// clientCmd runs a command against the local agent's HTTP API.
func clientCmd(verb string, args []string, stdout, stderr io.Writer) int {
	c, err := newClient()
	if err != nil {
		fmt.Fprintf(stderr, "hasup %s: %v\n", verb, err)
		return exitConfig
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch verb {
	case "members":
		err = membersCmd(ctx, c, args, stdout, stderr)
	case "ensembles":
		err = ensemblesCmd(ctx, c, args, stdout, stderr)
	case "kv":
		err = kvCmd(ctx, c, args, stdout, stderr)
	case "workers":
		err = workersCmd(ctx, c, args, stdout, stderr)
	case "logs":
		err = logsCmd(ctx, c, args, stdout, stderr)
	case "join":
		if len(args) == 0 {
			return usageErr(stderr, "hasup join ADDR...")
		}
		var n int
		if n, err = c.Join(ctx, args); err == nil {
			fmt.Fprintf(stdout, "joined through %d of %d addresses\n", n, len(args))
		}
	case "leave":
		if len(args) != 0 {
			return usageErr(stderr, "hasup leave")
		}
		if err = c.Leave(ctx); err == nil {
			fmt.Fprintln(stdout, "the agent left the cluster and is exiting")
		}
	case "force-leave":
		if len(args) != 1 {
			return usageErr(stderr, "hasup force-leave NODE")
		}
		err = c.ForceLeave(ctx, args[0])
	case "status":
		err = statusCmd(ctx, c, args, stdout, stderr)
	}
	if err == nil {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "usage:", string(ue))
		return exitUsage
	}
	fmt.Fprintf(stderr, "hasup %s: %v\n", verb, err)
	switch {
	case errors.Is(err, api.ErrNotFound):
		return exitNotFound
	case errors.Is(err, api.ErrConflict):
		return exitConflict
	case errors.Is(err, api.ErrUnavailable):
		return exitUnavailable
	case errors.Is(err, api.ErrUnauthorized):
		return exitUnauthorized
	}
	return exitFailure
}

type usageError string

func (u usageError) Error() string { return string(u) }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// parse parses flags that may come after positional arguments, and
// returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError(err.Error())
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func formatFlag(fs *flag.FlagSet) *string {
	return fs.String("format", "text", "output format: text or json")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func membersCmd(ctx context.Context, c *api.Client, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("members", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := formatFlag(fs)
	if pos, err := parse(fs, args); err != nil || len(pos) > 0 {
		return usageError("hasup members [-format json]")
	}
	ms, err := c.Members(ctx)
	if err != nil {
		return err
	}
	if *format == "json" {
		return printJSON(stdout, ms)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDR\tSTATUS\tTAGS")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, m.Addr, m.Status, tagString(m.Tags))
	}
	return tw.Flush()
}

func tagString(tags map[string]string) string {
	var parts []string
	for k, v := range tags {
		parts = append(parts, k+"="+v)
	}
	if len(parts) == 0 {
		return "-"
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func ensemblesCmd(ctx context.Context, c *api.Client, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ensembles", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := formatFlag(fs)
	pos, err := parse(fs, args)
	if err != nil || len(pos) > 1 {
		return usageError("hasup ensembles [NAME] [-format json]")
	}
	var es []api.Ensemble
	if len(pos) == 1 {
		e, err := c.Ensemble(ctx, pos[0])
		if err != nil {
			return err
		}
		es = []api.Ensemble{e}
	} else if es, err = c.Ensembles(ctx); err != nil {
		return err
	}
	if *format == "json" {
		if len(pos) == 1 {
			return printJSON(stdout, es[0])
		}
		return printJSON(stdout, es)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tREPLICAS\tEPOCH\tVIEW\tPRIMARY\tMEMBERS\tCOMMIT")
	for _, e := range es {
		primary := e.Primary
		if primary == "" {
			primary = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%d\n", e.Name, e.Type, e.Replicas, e.Epoch, e.View, primary, strings.Join(e.Members, ","), e.Commit)
	}
	return tw.Flush()
}

func kvCmd(ctx context.Context, c *api.Client, args []string, stdout, stderr io.Writer) error {
	const u = "hasup kv get ENSEMBLE KEY [-consistency linearizable|lease|stale] | put ENSEMBLE KEY VALUE [-cas REV] | delete ENSEMBLE KEY | list ENSEMBLE [-prefix P] [-format json]"
	if len(args) == 0 {
		return usageError(u)
	}
	fs := flag.NewFlagSet("kv "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	consistency := fs.String("consistency", "linearizable", "linearizable, lease or stale")
	cas := fs.String("cas", "", "write only if the key's revision is REV (0: only if absent)")
	prefix := fs.String("prefix", "", "list only keys with this prefix")
	format := formatFlag(fs)
	pos, err := parse(fs, args[1:])
	if err != nil {
		return usageError(u)
	}
	switch args[0] {
	case "get":
		if len(pos) != 2 {
			return usageError(u)
		}
		v, _, err := c.KVGet(ctx, pos[0], pos[1], api.Consistency(*consistency))
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", v)
		return err
	case "put":
		if len(pos) != 3 {
			return usageError(u)
		}
		var casp *uint64
		if *cas != "" {
			n, err := strconv.ParseUint(*cas, 10, 64)
			if err != nil {
				return usageError("-cas wants a revision number: " + err.Error())
			}
			casp = &n
		}
		rev, err := c.KVPut(ctx, pos[0], pos[1], []byte(pos[2]), casp)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "revision %d\n", rev)
		return err
	case "delete":
		if len(pos) != 2 {
			return usageError(u)
		}
		return c.KVDelete(ctx, pos[0], pos[1])
	case "list":
		if len(pos) != 1 {
			return usageError(u)
		}
		kvs, err := c.KVList(ctx, pos[0], *prefix)
		if err != nil {
			return err
		}
		if *format == "json" {
			return printJSON(stdout, kvs)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tREVISION\tVALUE")
		for _, kv := range kvs {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", kv.Key, kv.Revision, kv.Value)
		}
		return tw.Flush()
	}
	return usageError(u)
}

func workersCmd(ctx context.Context, c *api.Client, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("workers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := formatFlag(fs)
	if pos, err := parse(fs, args); err != nil || len(pos) > 0 {
		return usageError("hasup workers [-format json]")
	}
	ws, err := c.Workers(ctx)
	if err != nil {
		return err
	}
	if *format == "json" {
		return printJSON(stdout, ws)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tNODE\tMODE\tSTATE\tROLE\tRESTARTS\tFENCE\tHEALTHY")
	for _, w := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%v\n", w.Name, w.Node, w.Mode, w.State, w.Role, w.Restarts, w.Fence, w.Healthy)
	}
	return tw.Flush()
}

func logsCmd(ctx context.Context, c *api.Client, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("bytes", 16<<10, "how many of the last bytes to print")
	follow := fs.Bool("f", false, "keep printing new output until interrupted")
	pos, err := parse(fs, args)
	if err != nil || len(pos) != 1 {
		return usageError("hasup logs WORKER [-bytes N] [-f]")
	}
	b, err := c.WorkerLogs(ctx, pos[0], *n)
	if err != nil {
		return err
	}
	if _, err := stdout.Write(b); err != nil || !*follow {
		return err
	}
	// Follow: poll, and print what follows the last bytes seen.
	last := b
	for {
		time.Sleep(time.Second) // polling the agent, until interrupted
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		b, err := c.WorkerLogs(fctx, pos[0], 1<<20)
		cancel()
		if err != nil {
			return err
		}
		if tail := newTail(last, b); len(tail) > 0 {
			if _, err := stdout.Write(tail); err != nil {
				return err
			}
		}
		last = b
	}
}

// newTail returns what cur adds after the end of prev (all of cur if prev's
// end is not found in it, say after a rotation).
func newTail(prev, cur []byte) []byte {
	k := min(len(prev), 4096)
	if k == 0 {
		return cur
	}
	if i := bytes.LastIndex(cur, prev[len(prev)-k:]); i >= 0 {
		return cur[i+k:]
	}
	return cur
}

func usageErr(stderr io.Writer, u string) int {
	fmt.Fprintln(stderr, "usage:", u)
	return exitUsage
}

// statusCmd prints the agent's node, whether the cluster formed, its
// members by state and its ensembles.
func statusCmd(ctx context.Context, c *api.Client, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := formatFlag(fs)
	if pos, err := parse(fs, args); err != nil || len(pos) > 0 {
		return usageError("hasup status [-format json]")
	}
	h, err := c.Health(ctx)
	if err != nil {
		return err
	}
	ms, err := c.Members(ctx)
	if err != nil {
		return err
	}
	es, err := c.Ensembles(ctx)
	if err != nil && !errors.Is(err, api.ErrUnavailable) {
		return err
	}
	if *format == "json" {
		return printJSON(stdout, map[string]any{"health": h, "members": ms, "ensembles": es})
	}
	states := map[string]int{}
	for _, m := range ms {
		states[m.Status]++
	}
	fmt.Fprintf(stdout, "node %s; cluster formed: %v; members: %d alive, %d suspect, %d failed, %d left\n",
		h.Node, h.Registry, states["alive"], states["suspect"], states["failed"], states["left"])
	for _, e := range es {
		primary := e.Primary
		if primary == "" {
			primary = "none"
		}
		fmt.Fprintf(stdout, "ensemble %s (%s): primary %s, epoch %d, view %d, commit %d, members %s\n",
			e.Name, e.Type, primary, e.Epoch, e.View, e.Commit, strings.Join(e.Members, ","))
	}
	return nil
}

// newClient is the client of the local agent: HASUP_HTTP_ADDR (host:port,
// or an https:// URL), HASUP_HTTP_TOKEN, and for https HASUP_CACERT (the
// CA that signed the agent's certificate; default: the system's) and,
// optionally, HASUP_CLIENT_CERT and HASUP_CLIENT_KEY.
func newClient() (*api.Client, error) {
	c := &api.Client{Addr: envOr("HASUP_HTTP_ADDR", "127.0.0.1:7900"), Token: os.Getenv("HASUP_HTTP_TOKEN")}
	if !strings.HasPrefix(c.Addr, "https://") {
		return c, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if f := os.Getenv("HASUP_CACERT"); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("HASUP_CACERT: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("HASUP_CACERT %s: no PEM certificate", f)
		}
	}
	if cf, kf := os.Getenv("HASUP_CLIENT_CERT"), os.Getenv("HASUP_CLIENT_KEY"); cf != "" || kf != "" {
		cert, err := tls.LoadX509KeyPair(cf, kf)
		if err != nil {
			return nil, fmt.Errorf("HASUP_CLIENT_CERT/HASUP_CLIENT_KEY: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	c.HTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	return c, nil
}
