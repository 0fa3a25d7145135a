package authz_test

import (
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stockfence/stockfence/e2e/stack"
)

// secretComparisonsAllowed are the comparisons of secrets that need not be
// constant time, as "file: expression": both sides come from the
// operator's configuration, never from a request.
var secretComparisonsAllowed = map[string]bool{
	"productservice/cmd/productservice/config.go: cfg.ServiceToken == cfg.AdminToken": true,
}

// TestSecretsAreComparedInConstantTime reads the services' code (every
// non-test file of orderservice, productservice and shared) and fails on any
// ==, != or non-constant-time comparison function (strings.EqualFold,
// strings.Compare, bytes.Equal, bytes.Compare, reflect.DeepEqual) applied to
// something named like a secret (token, secret, password), other than a test
// for emptiness. Request credentials must go through bearer.Equal
// (crypto/subtle over SHA-256 digests) or the JWT library's HMAC check
// (hmac.Equal), whose time does not depend on where a guess goes wrong.
func TestSecretsAreComparedInConstantTime(t *testing.T) {
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	for _, module := range []string{"orderservice", "productservice", "shared"} {
		err := filepath.WalkDir(filepath.Join(root, module), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			files++
			rel, _ := filepath.Rel(root, path)
			ast.Inspect(f, func(n ast.Node) bool {
				var operands []ast.Expr
				switch n := n.(type) {
				case *ast.BinaryExpr:
					if n.Op == token.EQL || n.Op == token.NEQ {
						operands = []ast.Expr{n.X, n.Y}
					}
				case *ast.CallExpr:
					if variableTime(n.Fun) {
						operands = n.Args
					}
				}
				if !namesSecret(operands) {
					return true
				}
				expr := rel + ": " + exprString(fset, n)
				if !secretComparisonsAllowed[expr] {
					t.Errorf("%s: %s compares a secret in variable time; use bearer.Equal",
						fset.Position(n.Pos()), exprString(fset, n))
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatalf("read %s: %v", module, err)
		}
	}
	if files < 50 {
		t.Fatalf("read only %d files: is the repository root right (%s)?", files, root)
	}
}

// variableTime reports whether fun is a comparison function whose time
// depends on the data.
func variableTime(fun ast.Expr) bool {
	sel, ok := fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	if !ok {
		return false
	}
	switch pkg.Name + "." + sel.Sel.Name {
	case "strings.EqualFold", "strings.Compare", "bytes.Equal", "bytes.Compare", "reflect.DeepEqual", "slices.Equal":
		return true
	}
	return false
}

// namesSecret reports whether any operand is named like a secret, unless the
// comparison is with the empty string (a test for presence) or nil.
func namesSecret(operands []ast.Expr) bool {
	secret := false
	for _, e := range operands {
		if lit, ok := e.(*ast.BasicLit); ok && lit.Value == `""` {
			return false
		}
		if id, ok := e.(*ast.Ident); ok && id.Name == "nil" {
			return false
		}
		var name string
		switch e := e.(type) {
		case *ast.Ident:
			name = e.Name
		case *ast.SelectorExpr:
			name = e.Sel.Name
		case *ast.CallExpr: // []byte(secret), string(token)
			if len(e.Args) == 1 {
				secret = secret || namesSecret(e.Args)
			}
			continue
		}
		lower := strings.ToLower(name)
		for _, word := range []string{"token", "secret", "password", "passwd"} {
			secret = secret || strings.Contains(lower, word)
		}
	}
	return secret
}

func exprString(fset *token.FileSet, n ast.Node) string {
	var b strings.Builder
	_ = printer.Fprint(&b, fset, n)
	return b.String()
}
