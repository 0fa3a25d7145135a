package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

const (
	// ProductBinary is the product service's binary (and process) name.
	ProductBinary = "productservice"
	// OrderBinary is the order service's binary (and process) name.
	OrderBinary = "orderservice"
)

// RepoRoot returns the repository root: the nearest directory at or above the
// working directory that holds go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work at or above the working directory: run from inside the repository")
		}
		dir = parent
	}
}

// Build compiles both services with one go build into <repoRoot>/bin and
// returns that directory. The binaries are built in a scratch directory and
// renamed into place, so a service already running from bin/ (make run), or a
// concurrent Build from another test package, never sees a half-written file.
// Compiler output is part of the error.
func Build(ctx context.Context, repoRoot string) (string, error) {
	binDir := filepath.Join(repoRoot, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("create bin dir: %w", err)
	}
	scratch, err := os.MkdirTemp(binDir, ".build-")
	if err != nil {
		return "", fmt.Errorf("create build dir: %w", err)
	}
	defer os.RemoveAll(scratch)

	// With -o naming a directory, go build writes each main package there
	// under its directory's name.
	cmd := exec.CommandContext(ctx, "go", "build", "-o", scratch+string(filepath.Separator),
		"./productservice/cmd/"+ProductBinary, "./orderservice/cmd/"+OrderBinary)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build services: %w\n%s", err, out)
	}
	for _, name := range []string{ProductBinary, OrderBinary} {
		if err := os.Rename(filepath.Join(scratch, name), filepath.Join(binDir, name)); err != nil {
			return "", fmt.Errorf("install %s: %w", name, err)
		}
	}
	return binDir, nil
}

// BuildForTests builds both services once for a test package, from its
// TestMain, and returns the directory of the binaries; a build that fails
// (or takes over 5 minutes) ends the test binary with the reason.
func BuildForTests() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, err := RepoRoot()
	if err == nil {
		var dir string
		if dir, err = Build(ctx, root); err == nil {
			return dir
		}
	}
	fmt.Fprintln(os.Stderr, "build services:", err)
	os.Exit(1)
	return ""
}
