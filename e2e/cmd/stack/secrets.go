package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/stockfence/stockfence/e2e/stack"
)

// secrets are the local stack's tokens, generated on the first run and kept
// per checkout so a restarted stack accepts the tokens printed before.
type secrets struct {
	AdminToken        string `json:"adminToken"`
	ServiceToken      string `json:"serviceToken"`
	CustomerJWTSecret string `json:"customerJwtSecret"`
}

// loadSecrets reads path, generating whichever secret is missing (all of
// them when the file does not exist) and writing the file back, mode 0600.
func loadSecrets(path string) (secrets, error) {
	var s secrets
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return s, fmt.Errorf("read secrets: %w", err)
	default:
		if err := json.Unmarshal(raw, &s); err != nil {
			return s, fmt.Errorf("read secrets %s (delete it to start over): %w", path, err)
		}
	}
	changed := false
	for _, field := range []*string{&s.AdminToken, &s.ServiceToken, &s.CustomerJWTSecret} {
		if *field == "" {
			*field = stack.NewSecret()
			changed = true
		}
	}
	if !changed {
		// Tighten a file someone loosened; the tokens grant admin access.
		if err := os.Chmod(path, 0o600); err != nil {
			return s, fmt.Errorf("chmod secrets: %w", err)
		}
		return s, nil
	}
	return s, writeSecrets(path, s)
}

// writeSecrets replaces path atomically, so an interrupted write never leaves
// a truncated file behind.
func writeSecrets(path string, s secrets) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode secrets: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secrets-*.json") // created with mode 0600
	if err != nil {
		return fmt.Errorf("write secrets: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename there is nothing left to remove
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write secrets: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write secrets: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write secrets: %w", err)
	}
	return nil
}
