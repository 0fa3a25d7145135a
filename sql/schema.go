// Package schema embeds the versioned migrations of both databases
// (sql/orders, sql/products) and applies them with goose. Import it as
//
//	schema "github.com/stockfence/stockfence/sql"
package schema

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

//go:embed orders/*.sql products/*.sql
var files embed.FS

// Set names the migrations of one database.
type Set string

// The two databases.
const (
	Orders   Set = "orders"
	Products Set = "products"
)

func (s Set) provider(db *sql.DB) (*goose.Provider, error) {
	sub, err := fs.Sub(files, string(s))
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectMySQL, db, sub, goose.WithDisableGlobalRegistry(true))
}

// Apply brings db up to the newest migration of set s. Several processes may
// start at once (two instances of a service): a MySQL named lock serialises
// them, so each migration runs exactly once.
func Apply(ctx context.Context, db *sql.DB, s Set) error {
	p, err := s.provider(db)
	if err != nil {
		return fmt.Errorf("load %s migrations: %w", s, err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	lock := "stockfence_migrate_" + string(s)
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 60)", lock).Scan(&got); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	if got.Int64 != 1 {
		return fmt.Errorf("take migration lock %s: timed out", lock)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK(?)", lock)
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply %s migrations: %w", s, err)
	}
	return nil
}

// Current reports whether every migration of set s has been applied to db;
// the services' /readyz uses it.
func Current(ctx context.Context, db *sql.DB, s Set) (bool, error) {
	p, err := s.provider(db)
	if err != nil {
		return false, err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return false, err
	}
	return !pending, nil
}
