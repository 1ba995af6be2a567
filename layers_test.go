package main

// The files of package main use each other in one direction only: main.go
// at the top, then the server, the routes, the handlers, the parked
// request's life, keep-alive, connections, errors, metrics. A file that
// calls up as well as down is two concerns tangled.

import (
	"go/token"
	"go/types"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
)

// sharedReceiver is the type every file adds methods to (handlers are
// methods): naming it is not a use of the file that declares it.
const sharedReceiver = "server"

func TestFilesUseEachOtherOneWay(t *testing.T) {
	uses := fileUses(t, ".")
	for a, targets := range uses {
		for b := range targets {
			if a < b && uses[b][a] != nil {
				t.Errorf("%s and %s use each other: %s uses %s; %s uses %s", a, b,
					strings.Join(uses[a][b].names(), ", "), b, strings.Join(uses[b][a].names(), ", "), a)
			}
		}
	}
	// A cycle through more than two files is as tangled.
	order := topoOrder(uses)
	if order == nil {
		t.Errorf("the files of package main use each other in a cycle: %v", uses)
	}
	t.Logf("from the top down: %s", strings.Join(order, " > "))
}

// nameSet is the names one file uses of another.
type nameSet map[string]bool

func (n nameSet) names() []string { return slices.Sorted(maps.Keys(n)) }

// fileUses maps each non-test file of dir to the files whose package-level
// objects it uses (functions, methods, types, constants, variables, struct
// fields aside), with their names. The package is type-checked, so that
// a method is told from another of the same name.
func fileUses(t *testing.T, dir string) map[string]map[string]nameSet {
	t.Helper()
	pkgs, err := packages.Load(&packages.Config{
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo,
		Dir:  dir,
	}, ".")
	if err != nil || len(pkgs) != 1 || len(pkgs[0].Errors) > 0 {
		t.Fatalf("loading the package: %v %v", err, pkgs)
	}
	pkg := pkgs[0]
	fileOf := func(pos token.Pos) string { return filepath.Base(pkg.Fset.Position(pos).Filename) }
	uses := map[string]map[string]nameSet{}
	for id, obj := range pkg.TypesInfo.Uses {
		if obj.Pkg() != pkg.Types || obj.Name() == sharedReceiver {
			continue
		}
		if v, ok := obj.(*types.Var); ok && (v.IsField() || v.Parent() != pkg.Types.Scope()) {
			continue // a field, a local or a parameter: not a file's own
		}
		if obj.Parent() != nil && obj.Parent() != pkg.Types.Scope() {
			continue // declared inside a function
		}
		from, to := fileOf(id.Pos()), fileOf(obj.Pos())
		if from == to || strings.HasSuffix(from, "_test.go") {
			continue
		}
		if uses[from] == nil {
			uses[from] = map[string]nameSet{}
		}
		if uses[from][to] == nil {
			uses[from][to] = nameSet{}
		}
		uses[from][to][obj.Name()] = true
	}
	for _, f := range pkg.GoFiles {
		if uses[filepath.Base(f)] == nil {
			uses[filepath.Base(f)] = map[string]nameSet{}
		}
	}
	return uses
}

// topoOrder lists the files so that each uses only files after it; nil if
// there is a cycle.
func topoOrder(uses map[string]map[string]nameSet) []string {
	usedBy := map[string]int{}
	for a := range uses {
		usedBy[a] += 0
		for b := range uses[a] {
			usedBy[b]++
		}
	}
	var order []string
	for len(usedBy) > 0 {
		var top []string
		for f, n := range usedBy {
			if n == 0 {
				top = append(top, f)
			}
		}
		if len(top) == 0 {
			return nil
		}
		slices.Sort(top)
		for _, f := range top {
			delete(usedBy, f)
			for b := range uses[f] {
				usedBy[b]--
			}
		}
		order = append(order, top...)
	}
	return order
}
