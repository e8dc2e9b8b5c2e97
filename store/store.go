package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"  // PostgreSQL driver "postgres"
	_ "modernc.org/sqlite" // SQLite driver "sqlite"
)

// ErrLocked means another blockreport run holds the store's run lock.
var ErrLocked = errors.New("another blockreport run holds the store lock")

// ErrLockLost means this process no longer holds the run lock it took
// (see DB.CheckLock): another run may be writing to the same run.
var ErrLockLost = errors.New("the store's run lock was lost")

// ErrNotFound means there is no such run.
var ErrNotFound = errors.New("not found")

// ErrNoStore means a sqlite: URL names a file that does not exist (see
// OpenExisting).
var ErrNoStore = errors.New("no such store file")

// Driver names as returned by DB.Driver.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// connectTimeout bounds connecting to an unreachable PostgreSQL server.
const connectTimeout = 8 * time.Second

// DB is a blockreport store on PostgreSQL or SQLite.
type DB struct {
	x      *sqlx.DB
	driver string
	path   string // SQLite file, for the lock file next to it
	// created is true when Open created the SQLite file (see Discard).
	created bool
	name    string // the URL with any password redacted, for errors
	logger  *slog.Logger
	lock    runLock
}

// ParseURL validates a database URL: "postgres://..." or "postgresql://..."
// (driver lib/pq) or "sqlite:PATH" (modernc.org/sqlite) and returns the
// database/sql driver name and data source name. Errors never contain a
// password.
func ParseURL(rawURL string) (driver, dsn string, err error) {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		u, err := url.Parse(rawURL)
		if err != nil {
			// url.Error repeats the URL; report only what is wrong.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return "", "", fmt.Errorf("database URL %s: %v", RedactURL(rawURL), err)
		}
		q := u.Query()
		if q.Get("connect_timeout") == "" {
			q.Set("connect_timeout", fmt.Sprint(int(connectTimeout/time.Second)))
			u.RawQuery = q.Encode()
		}
		return Postgres, u.String(), nil
	case strings.HasPrefix(rawURL, "sqlite:"):
		path := sqlitePath(rawURL)
		if path == "" {
			return "", "", fmt.Errorf("database URL %q: want sqlite:PATH", rawURL)
		}
		if strings.ContainsAny(path, "?#") {
			return "", "", fmt.Errorf("database URL %q: the SQLite path must not contain '?' or '#'", rawURL)
		}
		// WAL lets readers run beside the writer; busy_timeout makes a
		// second process wait for the write lock instead of failing;
		// a 64 MB page cache keeps a large import from spilling to disk
		// mid-transaction; _txlock=immediate takes the write lock at BEGIN so a transaction
		// never fails half-way on a lock upgrade.
		dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-65536)&_txlock=immediate"
		return SQLite, dsn, nil
	}
	return "", "", fmt.Errorf("database URL %s: want postgres://..., postgresql://... or sqlite:PATH", RedactURL(rawURL))
}

// sqlitePath returns the file path of a sqlite: URL ("sqlite:PATH" or
// "sqlite://PATH").
func sqlitePath(rawURL string) string {
	p := strings.TrimPrefix(rawURL, "sqlite:")
	if strings.HasPrefix(p, "//") {
		p = p[2:]
	}
	return p
}

// redacted replaces a password wherever RedactURL finds one.
const redacted = "xxxxx"

// kvPassword matches the password settings of a key=value connection string
// ("host=db password='pa ss'"), quoted or not.
var kvPassword = regexp.MustCompile(`(?i)\b((?:ssl)?password)\s*=\s*(?:'(?:[^'\\]|\\.)*'|\S*)`)

// RedactURL returns a database URL fit for errors, logs and help text: the
// password of its user info and the values of its password and sslpassword
// query parameters are replaced by "xxxxx", and so are those of a key=value
// connection string. A URL that does not parse is not shown at all (it
// might still hold a password). sqlite: URLs hold no password and are
// returned as they are.
func RedactURL(s string) string {
	if strings.HasPrefix(s, "sqlite:") {
		return s
	}
	if !strings.Contains(s, "://") && strings.Contains(s, "=") {
		return kvPassword.ReplaceAllString(s, "${1}="+redacted)
	}
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.Index(s, "://"); i >= 0 {
			return s[:i] + "://(unparsable URL)"
		}
		return "(unparsable URL)"
	}
	u.RawQuery = redactQuery(u.RawQuery)
	return u.Redacted()
}

// redactQuery replaces the values of the password parameters of a raw
// query, keeping everything else as it is, separators and order included.
// Both '&' and ';' count as separators, so that a password hidden behind a
// ';' is masked too.
func redactQuery(raw string) string {
	var b strings.Builder
	for raw != "" {
		param := raw
		sep := ""
		if i := strings.IndexAny(raw, "&;"); i >= 0 {
			param, sep, raw = raw[:i], raw[i:i+1], raw[i+1:]
		} else {
			raw = ""
		}
		key, _, hasValue := strings.Cut(param, "=")
		name := key
		if k, err := url.QueryUnescape(key); err == nil {
			name = k
		}
		if hasValue && (strings.EqualFold(name, "password") || strings.EqualFold(name, "sslpassword")) {
			param = key + "=" + redacted
		}
		b.WriteString(param)
		b.WriteString(sep)
	}
	return b.String()
}

// fileMode is the mode of a SQLite store file Open creates: the store
// holds names and emails. SQLite creates its -wal and -shm files with the
// mode of the database file.
const fileMode = 0o600

// Open parses url, connects, pings (giving up after a few seconds on an
// unreachable server) and applies pending migrations. A SQLite file that
// does not exist yet is created with mode 0600.
func Open(ctx context.Context, rawURL string, logger *slog.Logger) (*DB, error) {
	return open(ctx, rawURL, logger, true)
}

// OpenExisting is Open for commands that only read a store: a sqlite: URL
// whose file does not exist is an error wrapping ErrNoStore that names the
// path, and nothing is created. PostgreSQL URLs open as with Open.
func OpenExisting(ctx context.Context, rawURL string, logger *slog.Logger) (*DB, error) {
	return open(ctx, rawURL, logger, false)
}

func open(ctx context.Context, rawURL string, logger *slog.Logger, create bool) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	driver, dsn, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	db := &DB{driver: driver, name: RedactURL(rawURL), logger: logger}
	if driver == SQLite {
		db.path = sqlitePath(rawURL)
		_, statErr := os.Stat(db.path)
		if err := prepareFile(db.path, create); err != nil {
			return nil, err
		}
		db.created = errors.Is(statErr, fs.ErrNotExist)
	}
	x, err := sqlx.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", db.name, err)
	}
	db.x = x
	if driver == SQLite {
		// One connection: SQLite has one writer anyway, and a single
		// connection makes every statement see the same pragmas. Callers
		// stream in pages (Pending) so no cursor holds it for long.
		x.SetMaxOpenConns(1)
	}
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := x.PingContext(pctx); err != nil {
		x.Close()
		if pctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("connect to %s: no answer within %s", db.name, connectTimeout)
		}
		return nil, fmt.Errorf("connect to %s: %s", db.name, oneLine(err))
	}
	if err := db.Migrate(ctx); err != nil {
		x.Close()
		return nil, err
	}
	return db, nil
}

// prepareFile makes sure the SQLite file at path exists before the driver
// opens it: created empty with fileMode when create is set, else an error
// wrapping ErrNoStore. The driver would create a missing file with mode
// 0644 (less the umask) on its own.
func prepareFile(path string, create bool) error {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("sqlite:%s is a directory, not a store file", path)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("sqlite:%s: %w", path, err)
	case !create:
		return fmt.Errorf("sqlite:%s: %w", path, ErrNoStore)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	if errors.Is(err, fs.ErrExist) {
		return nil // another process created it meanwhile
	}
	if err != nil {
		return fmt.Errorf("create sqlite:%s: %w", path, err)
	}
	return f.Close()
}

// oneLine keeps the first line of an error message.
func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Close closes the database.
func (db *DB) Close() error { return db.x.Close() }

// Discard closes the store and, if Open created its SQLite file and it
// still holds no reference, removes that file and the files beside it
// (-wal, -shm, .lock): a command that created a store and then stored
// nothing (an import that was rejected or interrupted) leaves no empty
// store behind. Any other store is only closed.
func (db *DB) Discard(ctx context.Context) error {
	empty := false
	if db.created {
		n, err := db.CountReferences(ctx)
		empty = err == nil && n == 0
	}
	if err := db.Close(); err != nil || !empty {
		return err
	}
	for _, suffix := range []string{"", "-wal", "-shm", ".lock"} {
		if err := os.Remove(db.path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove empty store %s: %w", db.path+suffix, err)
		}
	}
	return nil
}

// Name returns the store's URL with any password redacted, for messages.
func (db *DB) Name() string { return db.name }

// Driver returns "postgres" or "sqlite".
func (db *DB) Driver() string { return db.driver }

// rebind turns the "?" placeholders of q into the driver's.
func (db *DB) rebind(q string) string {
	return sqlx.Rebind(sqlx.BindType(db.driver), q)
}

// sqliteTime is the text form of timestamps on SQLite: fixed width, so that
// text order is time order.
const sqliteTime = "2006-01-02T15:04:05.000000Z"

// ts converts t to the value stored for a timestamp column (per driver).
func (db *DB) ts(t time.Time) any {
	t = t.UTC().Truncate(time.Microsecond)
	if db.driver == SQLite {
		return t.Format(sqliteTime)
	}
	return t
}

// nullTS is ts with the zero time stored as NULL.
func (db *DB) nullTS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return db.ts(t)
}

// timeCol scans a timestamp column of either driver into a UTC time.Time;
// NULL scans as the zero time.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.t = time.Time{}
	case time.Time:
		*c.t = v.UTC()
	case string:
		return c.parse(v)
	case []byte:
		return c.parse(string(v))
	default:
		return fmt.Errorf("scan timestamp: unsupported type %T", src)
	}
	return nil
}

func (c timeCol) parse(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("scan timestamp %q: %w", s, err)
	}
	*c.t = t.UTC()
	return nil
}

// nullText returns nil for an empty b (stored as NULL), else b as a string.
func nullText(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// placeholders returns n groups "(?,...,?)" of cols placeholders, joined by
// commas, for a multi-row VALUES list.
func placeholders(n, cols int) string {
	group := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	var b strings.Builder
	b.Grow(n * (len(group) + 1))
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(group)
	}
	return b.String()
}

// rollback ends tx when it was not committed.
func rollback(tx *sqlx.Tx) { _ = tx.Rollback() }

// queryer is what both *sqlx.DB and *sqlx.Tx offer.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}
