package store

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrate applies pending migrations. It is idempotent; Open already calls
// it.
func (db *DB) Migrate(ctx context.Context) error {
	p, err := db.migrations()
	if err != nil {
		return err
	}
	// Not p.Close: it would close db.
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", db.name, err)
	}
	return nil
}

// SchemaVersion returns the version of the newest applied migration.
func (db *DB) SchemaVersion(ctx context.Context) (int64, error) {
	p, err := db.migrations()
	if err != nil {
		return 0, err
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("schema version of %s: %w", db.name, err)
	}
	return v, nil
}

func (db *DB) migrations() (*goose.Provider, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	dialect := goose.DialectPostgres
	var opts []goose.ProviderOption
	if db.driver == SQLite {
		dialect = goose.DialectSQLite3
		sub = sqliteFS{sub}
	} else {
		// Two processes starting at once must not both migrate.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db.x.DB, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

// sqliteTypes is the per-driver part of the schema: the migrations are
// written for PostgreSQL, and these are the only rewrites SQLite needs.
// INTEGER PRIMARY KEY is SQLite's auto-assigned row id; timestamps are
// fixed-width RFC 3339 text there (see DB.ts).
var sqliteTypes = strings.NewReplacer(
	"BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY",
	"TIMESTAMPTZ", "TEXT",
)

// sqliteFS serves the migrations with sqliteTypes applied to each .sql file.
type sqliteFS struct{ fs.FS }

func (s sqliteFS) Open(name string) (fs.File, error) {
	f, err := s.FS.Open(name)
	if err != nil || !strings.HasSuffix(name, ".sql") {
		return f, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	b = []byte(sqliteTypes.Replace(string(b)))
	return &memFile{Reader: bytes.NewReader(b), info: sizedInfo{info, int64(len(b))}}, nil
}

type memFile struct {
	*bytes.Reader
	info fs.FileInfo
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *memFile) Close() error               { return nil }

type sizedInfo struct {
	fs.FileInfo
	size int64
}

func (i sizedInfo) Size() int64 { return i.size }
