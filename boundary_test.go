package jobrun

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// storeFile reports whether a file of the package belongs to the bbolt store.
func storeFile(name string) bool { return storeOf(name) != "" }

// storeOf names the store whose file name is: "bolt" (bolt*.go), "pg" (pg*.go, the
// PostgreSQL store), or "" for a file of the engine or the public API.
func storeOf(name string) string {
	for _, prefix := range []string{"bolt", "pg"} {
		if strings.HasPrefix(name, prefix) {
			return prefix
		}
	}
	return ""
}

// storeEntryPoints are the public functions that take or return bbolt's types, or
// open a file, and delegate to the store: only they may name it outside its files.
var storeEntryPoints = []string{"Open", "New", "DB", "EnqueueTx", "SendTx"}

// TestStorageBoundary fails if a file outside the bbolt store (bolt*.go) imports
// bbolt or names anything the store's files declare (its buckets, its transaction,
// its key layouts), apart from the entry points that delegate to it, and likewise
// for the PostgreSQL store (pg*.go), whose files name nothing of the bbolt store's
// either. The engine reaches storage through the store interfaces only
// (storage.go).
func TestStorageBoundary(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		sources[name] = string(b)
	}
	violations, declared, err := boundaryViolations(sources)
	if err != nil {
		t.Fatal(err)
	}
	if declared < 20 {
		t.Fatalf("found only %d declarations in the store's files; did they move?", declared)
	}
	for _, v := range violations {
		t.Error(v)
	}
}

// TestStorageBoundaryCatches shows that the boundary check finds each kind of
// crossing.
func TestStorageBoundaryCatches(t *testing.T) {
	store := `package jobrun
import "go.etcd.io/bbolt"
var bucketJobs = []byte("jobs")
type txn struct{ tx *bbolt.Tx }
func openTxn(tx *bbolt.Tx) *txn { return &txn{tx} }
`
	for _, tc := range []struct{ name, file, src, want string }{
		{"an engine file imports bbolt", "engine.go", `package jobrun
import "go.etcd.io/bbolt"
func loop(db *bbolt.DB) {}
`, "imports go.etcd.io/bbolt"},
		{"an engine file names a bucket", "engine.go", `package jobrun
func look() []byte { return bucketJobs }
`, "names bucketJobs"},
		{"an engine file opens a transaction", "list.go", `package jobrun
func list() { _ = openTxn(nil) }
`, "names openTxn"},
		{"a type assertion to the store's transaction", "manage.go", `package jobrun
func peek(w any) { _ = w.(*txn) }
`, "names txn"},
		{"runner.go beyond its entry points", "runner.go", `package jobrun
import "go.etcd.io/bbolt"
func New(db *bbolt.DB) {}
func helper(db *bbolt.DB) {}
`, "uses bbolt.DB outside the store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			violations, _, err := boundaryViolations(map[string]string{"bolt.go": store, tc.file: tc.src})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(violations, func(v string) bool { return strings.Contains(v, tc.want) }) {
				t.Fatalf("violations %q, want one saying %q", violations, tc.want)
			}
		})
	}
	// The entry points themselves are allowed.
	violations, _, err := boundaryViolations(map[string]string{"bolt.go": store, "runner.go": `package jobrun
import "go.etcd.io/bbolt"
func New(db *bbolt.DB) { _ = openTxn(nil) }
`})
	if err != nil || len(violations) > 0 {
		t.Fatalf("an entry point that delegates: %v, %v", violations, err)
	}
}

// boundaryViolations checks the package's non-test sources, by file name, and returns
// every crossing of the store's boundary and how many names the store declares.
func boundaryViolations(sources map[string]string) (violations []string, declared int, err error) {
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	storeDecls := map[string]string{} // identifier → the store file declaring it
	for name, src := range sources {
		f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
		if err != nil {
			return nil, 0, err
		}
		files[name] = f
		if storeFile(name) {
			collectDecls(f, name, storeDecls)
		}
	}
	report := func(format string, args ...any) { violations = append(violations, fmt.Sprintf(format, args...)) }
	for name, f := range files {
		home := storeOf(name)
		if home == "bolt" {
			continue // it came first: the others name nothing of its
		}
		importsBolt := false
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, "go.etcd.io/bbolt") {
				importsBolt = true
				if name != "runner.go" {
					report("%s imports %s: only the store's files and the entry points in runner.go may", name, p)
				}
			}
		}
		checkIdent := func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok {
				if file, ok := storeDecls[id.Name]; ok && storeOf(file) != home {
					report("%s: names %s, which the store declares (%s)", fset.Position(id.Pos()), id.Name, file)
				}
			}
			return true
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && name == "runner.go" && (fd.Recv == nil || recvName(fd) == "Runner") &&
				slices.Contains(storeEntryPoints, fd.Name.Name) {
				continue
			}
			if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.IMPORT {
				continue
			}
			ast.Inspect(d, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "bbolt" && importsBolt {
						report("%s: uses bbolt.%s outside the store", fset.Position(sel.Pos()), sel.Sel.Name)
					}
					ast.Inspect(sel.X, checkIdent)
					return false // sel.Sel is a field or method name, not a declaration
				}
				return checkIdent(n)
			})
		}
	}
	slices.Sort(violations)
	return violations, len(storeDecls), nil
}

// collectDecls notes the package-level names file declares, but exported functions
// (public entry points such as Salvage) and methods.
func collectDecls(f *ast.File, file string, decls map[string]string) {
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil && !d.Name.IsExported() {
				decls[d.Name.Name] = file
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					decls[s.Name.Name] = file
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.Name != "_" {
							decls[n.Name] = file
						}
					}
				}
			}
		}
	}
}

func recvName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return ""
	}
	typ := fd.Recv.List[0].Type
	if st, ok := typ.(*ast.StarExpr); ok {
		typ = st.X
	}
	if id, ok := typ.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}
