package detector

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// serfLogger returns the *log.Logger given to Serf and memberlist: lines
// written through slog.NewLogLogger into a handler that turns their
// "[DEBUG]", "[INFO]", "[WARN]" and "[ERR]" prefixes into slog levels, so
// that memberlist's chatty debug lines stay below the caller's level and its
// warnings do not. observe, if not nil, sees every line (prefix stripped),
// whatever the level: it is how the detector learns of suspicions.
func serfLogger(l *slog.Logger, observe func(msg string)) *log.Logger {
	return slog.NewLogLogger(levelPrefixHandler{inner: l.Handler(), observe: observe}, slog.LevelInfo)
}

// levelPrefixHandler re-levels records whose message starts with a
// "[LEVEL] " prefix and strips the prefix.
type levelPrefixHandler struct {
	inner   slog.Handler
	observe func(msg string) // may be nil; must not block
}

var levelPrefixes = []struct {
	prefix string
	level  slog.Level
}{
	{"[TRACE] ", slog.LevelDebug - 4},
	{"[DEBUG] ", slog.LevelDebug},
	{"[INFO] ", slog.LevelInfo},
	{"[WARN] ", slog.LevelWarn},
	{"[ERR] ", slog.LevelError},
	{"[ERROR] ", slog.LevelError},
}

// Enabled answers for the most severe level a line may turn out to have
// (or yes, for the observer); Handle checks again once the real level is
// known.
func (h levelPrefixHandler) Enabled(ctx context.Context, _ slog.Level) bool {
	return h.observe != nil || h.inner.Enabled(ctx, slog.LevelError)
}

func (h levelPrefixHandler) Handle(ctx context.Context, r slog.Record) error {
	level, msg := r.Level, r.Message
	for _, p := range levelPrefixes {
		if rest, ok := strings.CutPrefix(msg, p.prefix); ok {
			level, msg = p.level, rest
			break
		}
	}
	if h.observe != nil {
		h.observe(msg)
	}
	if !h.inner.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h levelPrefixHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelPrefixHandler{inner: h.inner.WithAttrs(attrs), observe: h.observe}
}

func (h levelPrefixHandler) WithGroup(name string) slog.Handler {
	return levelPrefixHandler{inner: h.inner.WithGroup(name), observe: h.observe}
}

// The line memberlist (v0.7.0, and unchanged for years before) logs when
// this node's own probe of a member failed (direct, indirect and TCP) and it
// starts or confirms suspecting it. memberlist offers no other way to learn
// of a suspicion: Node.State in Members() is never updated
// (hashicorp/memberlist#266). TestKilledNodeIsReportedFailed fails if a
// memberlist upgrade changes the line.
const (
	suspectLinePrefix = "memberlist: Suspect "
	suspectLineSuffix = " has failed, no acks received"
)

// parseSuspectLine returns the member a memberlist suspicion line names.
func parseSuspectLine(msg string) (string, bool) {
	rest, ok := strings.CutPrefix(msg, suspectLinePrefix)
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, suspectLineSuffix)
	if !ok || name == "" {
		return "", false
	}
	return name, true
}
