package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// lockKey is the PostgreSQL advisory lock key of the run lock ("blockrpt").
const lockKey int64 = 0x626c6f636b727074

// Lock takes the store-wide run lock and returns ErrLocked at once if
// another process (or another Lock call) holds it. On PostgreSQL it is a
// session advisory lock held on a dedicated connection; on SQLite a flock on
// PATH + ".lock". Either way it goes away when the process dies, even by
// kill -9. release frees it and may be called more than once.
func (db *DB) Lock(ctx context.Context) (release func(), err error) {
	if db.driver == SQLite {
		return db.lockFile()
	}
	conn, err := db.x.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", db.name, err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey).Scan(&ok); err != nil {
		conn.Close()
		return nil, fmt.Errorf("lock %s: %w", db.name, err)
	}
	if !ok {
		conn.Close()
		return nil, ErrLocked
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			// Unlocking needs a live context even when ctx was canceled.
			_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, lockKey)
			conn.Close()
		})
	}, nil
}

func (db *DB) lockFile() (func(), error) {
	name := db.path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			f.Close()
		})
	}, nil
}
