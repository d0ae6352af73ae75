package worker

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
)

// logFile is a size-capped log: NAME.log, renamed to NAME.log.1 (replacing
// the previous one) when a write would take it past max bytes, so at most
// 2×max bytes are kept. Writes never fail towards the command: a file error
// drops the data rather than stalling the pipe the command writes to.
type logFile struct {
	mu   sync.Mutex
	path string
	max  int64
	f    *os.File // nil after an error until the next rotation succeeds
	size int64
	err  error // the first write error, reported once by close
}

func openLogFile(path string, max int64) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open log: %w", err)
	}
	return &logFile{path: path, max: max, f: f, size: fi.Size()}, nil
}

// Write appends p, rotating as often as needed so that no file exceeds max.
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		if l.size >= l.max {
			l.rotate()
		}
		chunk := p[:min(int64(len(p)), l.max-l.size)]
		p = p[len(chunk):]
		l.size += int64(len(chunk))
		if l.f == nil {
			continue
		}
		if _, err := l.f.Write(chunk); err != nil {
			l.fail(err)
		}
	}
	return n, nil
}

func (l *logFile) rotate() {
	if l.f != nil {
		if err := l.f.Close(); err != nil {
			l.fail(err)
		}
	}
	l.f, l.size = nil, 0
	if err := os.Rename(l.path, l.path+".1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.fail(err)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		l.fail(err)
		return
	}
	l.f = f
}

func (l *logFile) fail(err error) {
	if l.err == nil {
		l.err = err
	}
}

// tail returns the last n bytes kept (all if n <= 0), older file first.
func (l *logFile) tail(n int) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, err := readTail(l.path, int64(n))
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	if n > 0 && len(cur) >= n {
		return cur, nil
	}
	rest := int64(0)
	if n > 0 {
		rest = int64(n - len(cur))
	}
	old, err := readTail(l.path+".1", rest)
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	return append(old, cur...), nil
}

// readTail reads the last n bytes of path (all if n <= 0); a missing file
// is empty.
func readTail(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := int64(0)
	if n > 0 && fi.Size() > n {
		off = fi.Size() - n
	}
	buf := make([]byte, fi.Size()-off)
	k, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:k], nil
}

// close closes the file and reports the first error the log met.
func (l *logFile) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		if err := l.f.Close(); err != nil {
			l.fail(err)
		}
		l.f = nil
	}
	return l.err
}
