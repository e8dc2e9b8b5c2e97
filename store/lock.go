package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"sync"
)

// lockKey is the PostgreSQL advisory lock key of the run lock ("blockrpt").
const lockKey int64 = 0x626c6f636b727074

// reacquireTries bounds the pooled connections CheckLock tries when taking
// the lock back: after a server restart the idle ones are all dead.
const reacquireTries = 4

// runLock is the state of the run lock taken by Lock.
type runLock struct {
	mu   sync.Mutex
	held bool      // taken by Lock, not released, not lost to another process
	conn *sql.Conn // PostgreSQL: the session holding it; nil when it must be taken back
}

// Lock takes the store-wide run lock and returns ErrLocked at once if
// another process (or another Lock call) holds it. On PostgreSQL it is a
// session advisory lock held on a dedicated connection; on SQLite an OS
// file lock on PATH + ".lock" (flock on Unix, LockFileEx on Windows), a
// file created 0600. Either way it goes away when the process dies, even by
// kill -9. release frees it and may be called more than once. On
// PostgreSQL the lock also goes away when the server restarts: CheckLock
// finds out and takes it back.
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
	db.lock.mu.Lock()
	db.lock.held, db.lock.conn = true, conn
	db.lock.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			db.lock.mu.Lock()
			defer db.lock.mu.Unlock()
			if c := db.lock.conn; c != nil {
				// Unlocking needs a live context even when ctx was canceled.
				_, _ = c.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, lockKey)
				c.Close()
			}
			db.lock.held, db.lock.conn = false, nil
		})
	}, nil
}

// CheckLock confirms that this process still holds the run lock taken by
// Lock. It returns an error wrapping ErrLockLost when the lock was never
// taken, was released, or another process holds it; when the database
// cannot be reached to confirm it, it returns that error without
// ErrLockLost, so a caller that waits out outages can retry. On PostgreSQL it asks the
// server whether the lock's session still holds it; when that session is
// gone (a server restart drops it with its locks), it takes the lock back
// on a new connection, and succeeds if nobody else took it in between.
// Once another process was seen holding it, the lock stays lost (that
// process may have resumed the run); a database that merely cannot be
// reached is tried again by the next call. On SQLite the file lock cannot be
// lost while the process lives: CheckLock succeeds while it is held.
func (db *DB) CheckLock(ctx context.Context) error {
	l := &db.lock
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return fmt.Errorf("check lock of %s: not held: %w", db.name, ErrLockLost)
	}
	if db.driver == SQLite {
		return nil
	}
	if l.conn != nil {
		var ok bool
		err := l.conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE locktype = 'advisory' AND ((classid::bigint << 32) | objid::bigint) = $1 AND objsubid = 1
			AND pid = pg_backend_pid() AND granted)`, lockKey).Scan(&ok)
		if err == nil && ok {
			return nil
		}
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("check lock of %s: %w", db.name, ctx.Err())
		}
		// Either the session is gone, or it lost the lock: discard it
		// (closing the session, so it cannot hold the lock in the pool)
		// and take the lock back on a new one.
		_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
		l.conn.Close()
		l.conn = nil
	}
	var err error
	for range reacquireTries {
		var conn *sql.Conn
		if conn, err = db.x.Conn(ctx); err != nil {
			break
		}
		var ok bool
		if err = conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey).Scan(&ok); err != nil {
			// Most likely a pooled connection that died with the server.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			conn.Close()
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if !ok {
			conn.Close()
			l.held = false
			return fmt.Errorf("check lock of %s: another process holds it: %w", db.name, ErrLockLost)
		}
		l.conn = conn
		return nil
	}
	return fmt.Errorf("check lock of %s: database unreachable: %s", db.name, oneLine(err))
}

// lockFileMode keeps the lock file, like the store, from other users.
const lockFileMode = 0o600

func (db *DB) lockFile() (func(), error) {
	name := db.path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, lockFileMode)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if err := lockExclusive(f); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	db.lock.mu.Lock()
	db.lock.held = true
	db.lock.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			db.lock.mu.Lock()
			db.lock.held = false
			db.lock.mu.Unlock()
			_ = unlockFile(f)
			f.Close()
		})
	}, nil
}
