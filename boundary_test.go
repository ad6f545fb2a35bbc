package jobrun

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// storeFile reports whether a file of the package belongs to the bbolt store.
func storeFile(name string) bool { return strings.HasPrefix(name, "bolt") }

// storeEntryPoints are the public functions that take or return bbolt's types, or
// open a file, and delegate to the store: only they may name it outside its files.
var storeEntryPoints = []string{"Open", "New", "DB", "EnqueueTx"}

// TestStorageBoundary fails if a file outside the bbolt store (bolt*.go) imports
// bbolt or names anything the store's files declare (its buckets, its transaction,
// its key layouts), apart from the entry points that delegate to it. The engine
// reaches storage through the store interfaces only (storage.go).
func TestStorageBoundary(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*ast.File{}
	storeDecls := map[string]string{} // identifier → the store file declaring it
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = f
		if !storeFile(name) {
			continue
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && !d.Name.IsExported() {
					storeDecls[d.Name.Name] = name
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch s := spec.(type) {
					case *ast.TypeSpec:
						storeDecls[s.Name.Name] = name
					case *ast.ValueSpec:
						for _, n := range s.Names {
							storeDecls[n.Name] = name
						}
					}
				}
			}
		}
	}
	if len(storeDecls) < 20 {
		t.Fatalf("found only %d declarations in the store's files; did they move?", len(storeDecls))
	}
	for name, f := range files {
		if storeFile(name) {
			continue
		}
		importsBolt := false
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, "go.etcd.io/bbolt") {
				importsBolt = true
				if name != "runner.go" {
					t.Errorf("%s imports %s: only the store's files and the entry points in runner.go may", name, p)
				}
			}
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && name == "runner.go" && (fd.Recv == nil || recvName(fd) == "Runner") &&
				slices.Contains(storeEntryPoints, fd.Name.Name) {
				continue
			}
			ast.Inspect(d, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.SelectorExpr:
					if x, ok := n.X.(*ast.Ident); ok && x.Name == "bbolt" && importsBolt {
						t.Errorf("%s: uses bbolt.%s outside the store", fset.Position(n.Pos()), n.Sel.Name)
					}
					ast.Inspect(n.X, func(m ast.Node) bool { return checkIdent(t, fset, m, storeDecls) })
					return false // n.Sel is a field or method name, not a declaration
				}
				return checkIdent(t, fset, n, storeDecls)
			})
		}
	}
}

func checkIdent(t *testing.T, fset *token.FileSet, n ast.Node, storeDecls map[string]string) bool {
	if id, ok := n.(*ast.Ident); ok {
		if file, ok := storeDecls[id.Name]; ok {
			t.Errorf("%s: names %s, which the store declares (%s)", fset.Position(id.Pos()), id.Name, file)
		}
	}
	return true
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
