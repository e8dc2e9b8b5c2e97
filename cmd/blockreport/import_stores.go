package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/azstorage"
	"github.com/blockreport/blockreport/ingest"
)

// storeConfig is what import needs to read the stores bots keep their
// references in: what records lack (tenant, service URL), the bot they
// must belong to, and how to reach an Azure Storage account.
type storeConfig struct {
	Tenant               string
	ServiceURL           string
	ConnectionStringFile string
	StorageAccount       string
	cred                 credentialConfig
}

const storeFormatsHelp = "auto, conversationreference, teamsfx, csv, agents, botbuilder, teamsfx-table, companycommunicator or teamssdk"

func (c *storeConfig) register(fs *flagSet) {
	fs.stringVar(&c.Tenant, "tenant", "", "tenant id for records that have none (Teams SDK apps, single-tenant bots)", "BLOCKREPORT_IMPORT_TENANT")
	fs.stringVar(&c.ServiceURL, "service-url", "", "service URL for records that have none (default "+ingest.DefaultServiceURL+"; Company Communicator tables: AppConfig's cached one)",
		"BLOCKREPORT_IMPORT_SERVICE_URL", "SERVICE_URL")
	fs.stringVar(&c.ConnectionStringFile, "storage-connection-string-file", "", "file holding the Azure Storage connection string for azblob:// and aztable:// (else env AZURE_STORAGE_CONNECTION_STRING)",
		"BLOCKREPORT_STORAGE_CONNECTION_STRING_FILE")
	fs.stringVar(&c.StorageAccount, "storage-account", "", "storage account URL or name for azblob:// and aztable://, reached with the app's credential (Storage Blob/Table Data Reader role)",
		"BLOCKREPORT_STORAGE_ACCOUNT", "AZURE_STORAGE_ACCOUNT")
	c.cred.register(fs)
}

// defaults are the ingest.Defaults the flags give.
func (c *storeConfig) defaults() ingest.Defaults {
	return ingest.Defaults{TenantID: c.Tenant, ServiceURL: c.ServiceURL, AppID: c.cred.AppID}
}

// check validates the store flags (usage errors, exit 2).
func (c *storeConfig) check() error {
	if c.ServiceURL != "" {
		ref := blockreport.Reference{TenantID: "t", UserID: "u", ConversationType: blockreport.ConversationPersonal, ServiceURL: c.ServiceURL}
		if err := ingest.Validate(ref); err != nil {
			return usageErrorf("import: --service-url: %v", err)
		}
	}
	if len(c.Tenant) > ingest.MaxIDBytes || strings.ContainsAny(c.Tenant, " \t\n/") {
		return usageErrorf("import: --tenant %q is not a tenant id", c.Tenant)
	}
	return nil
}

// azureSource is a parsed azblob://CONTAINER[/PREFIX] or aztable://TABLE.
type azureSource struct {
	arg, kind, name, prefix string
}

// parseAzure parses an azblob:// or aztable:// argument; ok is false for a
// file name.
func parseAzure(arg string) (azureSource, bool, error) {
	kind, rest, ok := strings.Cut(arg, "://")
	if !ok || (kind != "azblob" && kind != "aztable") {
		return azureSource{}, false, nil
	}
	s := azureSource{arg: arg, kind: kind}
	s.name, s.prefix, _ = strings.Cut(rest, "/")
	if s.name == "" {
		return s, true, usageErrorf("import: %s: no %s name", arg, map[string]string{"azblob": "container", "aztable": "table"}[kind])
	}
	if kind == "aztable" && s.prefix != "" {
		return s, true, usageErrorf("import: %s: a table has no prefix (want aztable://TABLE)", arg)
	}
	if p, err := url.PathUnescape(s.prefix); err == nil {
		s.prefix = p
	}
	return s, true, nil
}

// storageAccount returns the account the azblob:// and aztable://
// arguments read: from --storage-connection-string-file, else
// AZURE_STORAGE_CONNECTION_STRING, else --storage-account with the app's
// credential. Problems with these settings are usage errors; the
// connection string itself never appears in them.
func (c *storeConfig) storageAccount(getenv func(string) string, logger *slog.Logger) (*azstorage.Account, error) {
	var cs, from string
	switch {
	case c.ConnectionStringFile != "":
		b, err := os.ReadFile(c.ConnectionStringFile)
		if err != nil {
			return nil, usageErrorf("import: --storage-connection-string-file: %v", err)
		}
		cs, from = string(b), "--storage-connection-string-file "+c.ConnectionStringFile
	case getenv("AZURE_STORAGE_CONNECTION_STRING") != "":
		cs, from = getenv("AZURE_STORAGE_CONNECTION_STRING"), "AZURE_STORAGE_CONNECTION_STRING"
	case c.StorageAccount != "":
		if err := c.cred.check("import", getenv); err != nil {
			return nil, err
		}
		if c.cred.tenant == "" {
			return nil, usageErrorf("import: --storage-account: the storage token comes from the tenant of the account: set --app-tenant")
		}
		cred, err := c.cred.credential(blockreport.CloudPublic, logger)
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		a, err := azstorage.NewTokenAccount(c.StorageAccount, cred, c.cred.tenant)
		if err != nil {
			return nil, usageErrorf("import: --storage-account: %v", err)
		}
		return a, nil
	default:
		return nil, usageErrorf("import: azblob:// and aztable:// need a storage account: set AZURE_STORAGE_CONNECTION_STRING, --storage-connection-string-file, or --storage-account with the app's credential")
	}
	a, err := azstorage.ParseConnectionString(cs)
	if err != nil {
		return nil, usageErrorf("import: %s: %v", from, err)
	}
	return a, nil
}

// azureSources are the importSources of the azblob:// and aztable://
// arguments.
func azureSources(ctx context.Context, args []azureSource, acct *azstorage.Account, format ingest.Format, d ingest.Defaults) ([]importSource, error) {
	var out []importSource
	for _, a := range args {
		switch a.kind {
		case "azblob":
			blobs, err := azstorage.NewBlobs(acct, nil)
			if err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
			out = append(out, importSource{name: a.arg, size: -1,
				open: func(read *atomic.Int64) (iter.Seq2[ingest.Record, error], func(), error) {
					return blobRecords(ctx, blobs, a, format, d, read), func() {}, nil
				}})
		case "aztable":
			tables := azstorage.NewTables(acct, nil)
			out = append(out, importSource{name: a.arg, size: -1,
				open: func(read *atomic.Int64) (iter.Seq2[ingest.Record, error], func(), error) {
					return tableRecords(ctx, tables, a, format, d, read), func() {}, nil
				}})
		}
	}
	return out, nil
}

// blobRecords streams the records of every blob of the container whose
// key (its name, URL-decoded) starts with the prefix.
func blobRecords(ctx context.Context, blobs *azstorage.Blobs, src azureSource, format ingest.Format, d ingest.Defaults, read *atomic.Int64) iter.Seq2[ingest.Record, error] {
	return func(yield func(ingest.Record, error) bool) {
		for bl, err := range blobs.List(ctx, src.name, azstorage.Prefixes(src.prefix)...) {
			if err != nil {
				yield(ingest.Record{}, err)
				return
			}
			read.Add(int64(len(bl.Body)))
			key := ingest.BlobKey(bl.Name)
			if src.prefix != "" && !strings.HasPrefix(key, src.prefix) && !strings.HasPrefix(bl.Name, src.prefix) {
				continue
			}
			for f, err := range ingest.DecodeStore(bytes.NewReader(bl.Body), key, format, d) {
				if err != nil {
					yield(ingest.Record{}, err)
					return
				}
				// Name the blob as stored, so that it can be found; a
				// document holding several records names each by its key.
				k := bl.Name
				if f.Key != key {
					k = bl.Name + "#" + f.Key
				}
				if !yieldFound(yield, src.arg, k, 0, f) {
					return
				}
			}
		}
	}
}

// tableRecords streams the records of a table's entities. Company
// Communicator's UserData and TeamData tables are read by their partition,
// with AppConfig's cached service URL as the fallback for rows without one.
func tableRecords(ctx context.Context, tables *azstorage.Tables, src azureSource, format ingest.Format, d ingest.Defaults, read *atomic.Int64) iter.Seq2[ingest.Record, error] {
	return func(yield func(ingest.Record, error) bool) {
		filter := ""
		if src.name == "UserData" || src.name == "TeamData" {
			filter = "PartitionKey eq '" + src.name + "'"
			if d.ServiceURL == "" {
				u, err := cachedServiceURL(ctx, tables)
				if err != nil {
					yield(ingest.Record{}, err)
					return
				}
				d.ServiceURL = u
			}
		}
		for e, err := range tables.Query(ctx, src.name, filter) {
			if err != nil {
				yield(ingest.Record{}, err)
				return
			}
			read.Add(int64(len(e.Raw)))
			for f, err := range ingest.DecodeStore(bytes.NewReader(e.Raw), e.Key(), format, d) {
				if err != nil {
					yield(ingest.Record{}, err)
					return
				}
				if !yieldFound(yield, src.arg, e.Key(), 0, f) {
					return
				}
			}
		}
	}
}

// cachedServiceURL reads Company Communicator's AppConfig Settings/ServiceUrl
// ("" when the table or the row is missing).
func cachedServiceURL(ctx context.Context, tables *azstorage.Tables) (string, error) {
	for e, err := range tables.Query(ctx, "AppConfig", "PartitionKey eq 'Settings' and RowKey eq 'ServiceUrl'") {
		var se *azstorage.Error
		if errors.As(err, &se) && se.Status == 404 {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		var row struct{ Value string }
		if json.Unmarshal(e.Raw, &row) == nil {
			return row.Value, nil
		}
	}
	return "", nil
}

// yieldFound passes one decoded record on as a Record or a Problem, with
// its provenance.
func yieldFound(yield func(ingest.Record, error) bool, source, key string, line int, f ingest.Found) bool {
	if f.Reason != "" {
		return yield(ingest.Record{}, ingest.Problem{File: source, Line: line, Key: key, Reason: f.Reason})
	}
	ref := f.Ref
	ref.Source, ref.SourceKey = source, key
	if key == "" && line > 0 {
		ref.SourceKey = "line " + strconv.Itoa(line)
	}
	return yield(ingest.Record{File: source, Line: line, Key: key, Ref: ref}, nil)
}

// storeFileRecords reads a file in a store format (or one FormatAuto
// detects as a store's) with ingest.DecodeStore; other files go to
// ingest.Read.
func storeFileRecords(r io.Reader, name string, format ingest.Format, d ingest.Defaults) iter.Seq2[ingest.Record, error] {
	br := bufio.NewReaderSize(r, 64<<10)
	if format == ingest.FormatAuto {
		prefix, _ := br.Peek(64 << 10)
		if !ingest.DetectStore(prefix) {
			return withProvenance(ingest.ReadFor(br, name, format, d.AppID))
		}
	} else if !ingest.IsStoreFormat(format) {
		return withProvenance(ingest.ReadFor(br, name, format, d.AppID))
	}
	return func(yield func(ingest.Record, error) bool) {
		for f, err := range ingest.DecodeStore(br, "", format, d) {
			if err != nil {
				yield(ingest.Record{}, fmt.Errorf("read %s: %w", name, err))
				return
			}
			if !yieldFound(yield, name, f.Key, f.Line, f) {
				return
			}
		}
	}
}

// withProvenance sets the source and key of the records of ingest.Read.
func withProvenance(recs iter.Seq2[ingest.Record, error]) iter.Seq2[ingest.Record, error] {
	return func(yield func(ingest.Record, error) bool) {
		for rec, err := range recs {
			if err == nil {
				rec.Ref.Source = rec.File
				rec.Ref.SourceKey = rec.Key
				if rec.Ref.SourceKey == "" && rec.Line > 0 {
					rec.Ref.SourceKey = "line " + strconv.Itoa(rec.Line)
				}
			}
			if !yield(rec, err) {
				return
			}
		}
	}
}
