package hasup_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The dependency rules of DESIGN.md, enforced: the consensus core stays
// pure, and each third-party system is imported by one package only.

// forbiddenInCore lists imports that would let I/O, clocks, concurrency or
// hidden randomness into the deterministic core.
var forbiddenInCore = []string{"time", "net", "os", "sync", "sync/atomic", "log", "log/slog", "math/rand", "io/fs", "syscall", "unsafe", "runtime"}

// onlyIn maps an import path prefix to the one directory allowed to import it.
var onlyIn = map[string]string{
	"github.com/hashicorp/serf":         "detector",
	"github.com/hashicorp/memberlist":   "detector",
	"github.com/spf13/viper":            "config",
	"go.etcd.io/bbolt":                  "internal/store",
	"github.com/anishathalye/porcupine": "sim",
}

type goFile struct {
	path string // slash-separated, relative to the module root
	file *ast.File
}

func parseTree(t *testing.T) []goFile {
	t.Helper()
	var files []goFile
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		files = append(files, goFile{path: filepath.ToSlash(path), file: f})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func imports(f *ast.File) []string {
	var out []string
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		out = append(out, p)
	}
	return out
}

func TestEnsembleIsPure(t *testing.T) {
	for _, gf := range parseTree(t) {
		if !strings.HasPrefix(gf.path, "ensemble/") || strings.HasSuffix(gf.path, "_test.go") {
			continue
		}
		for _, p := range imports(gf.file) {
			for _, bad := range forbiddenInCore {
				if p == bad {
					t.Errorf("%s imports %q: the consensus core must stay pure (DESIGN.md)", gf.path, p)
				}
			}
		}
	}
}

// TestEnsembleUsesNoHiddenState fails if the core starts goroutines or
// draws from the global random source (only the *rand.Rand in its Config).
func TestEnsembleUsesNoHiddenState(t *testing.T) {
	allowed := map[string]bool{"Rand": true, "New": true, "NewPCG": true, "Source": true, "PCG": true}
	fset := token.NewFileSet()
	for _, gf := range parseTree(t) {
		if !strings.HasPrefix(gf.path, "ensemble/") || strings.HasSuffix(gf.path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, gf.path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: the core starts a goroutine", fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && id.Name == "rand" && !allowed[n.Sel.Name] {
					t.Errorf("%s: the core uses the global random source (rand.%s)", fset.Position(n.Pos()), n.Sel.Name)
				}
			}
			return true
		})
	}
}

func TestImportBoundaries(t *testing.T) {
	for _, gf := range parseTree(t) {
		for _, p := range imports(gf.file) {
			for prefix, dir := range onlyIn {
				if strings.HasPrefix(p, prefix) && !strings.HasPrefix(gf.path, dir+"/") {
					t.Errorf("%s imports %q, which only %s/ may import", gf.path, p, dir)
				}
			}
			if p == "github.com/hasup/hasup/sim" && !strings.HasSuffix(gf.path, "_test.go") {
				t.Errorf("%s imports the simulator; only tests may", gf.path)
			}
		}
	}
}
