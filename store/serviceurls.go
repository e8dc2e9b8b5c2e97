package store

import (
	"context"
	"fmt"
)

// ServiceURLCount is how many references that are not opted out share one
// service URL.
type ServiceURLCount struct {
	URL        string `db:"service_url"`
	References int    `db:"n"`
}

// ServiceURLs counts the references that are not opted out by service URL,
// most used first: what a run would send to. Opted-out references are
// never sent anything.
func (db *DB) ServiceURLs(ctx context.Context) ([]ServiceURLCount, error) {
	var out []ServiceURLCount
	if err := db.x.SelectContext(ctx, &out, `SELECT service_url, COUNT(*) AS n FROM conversation_references
		WHERE NOT opted_out GROUP BY service_url ORDER BY n DESC, service_url`); err != nil {
		return nil, fmt.Errorf("count references by service URL: %w", err)
	}
	return out, nil
}
