// Package azstorage reads the documents bots keep their conversation
// references in straight from Azure Storage: every blob of a container
// (azblob, the Azure SDK for Go) and every entity of a table (a small Table
// REST client signing with SharedKeyLite, or a bearer token). Both yield
// (key, body) pairs for ingest.DecodeStore; neither knows what a reference
// is.
//
// Credentials are a connection string (the account key) or the account's
// URL with a token credential holding the Storage Blob Data Reader or
// Storage Table Data Reader role. Errors name the account and, for a
// refusal, the role that is missing; they never carry the key or a token.
package azstorage

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Account is a storage account's endpoints and credential.
type Account struct {
	Name          string
	BlobEndpoint  string // e.g. https://acct.blob.core.windows.net (no trailing /)
	TableEndpoint string // e.g. https://acct.table.core.windows.net
	key           []byte // shared key; nil with a token credential
	tokens        TokenSource
	tenant        string
}

// TokenSource gives bearer tokens for a tenant and scope (auth.Credential
// is one).
type TokenSource interface {
	Token(ctx context.Context, tenant, scope string) (string, error)
}

// StorageScope is the OAuth scope of Azure Storage data access.
const StorageScope = "https://storage.azure.com/.default"

// The Azurite emulator's well-known account (its README, "Default Storage
// Account"). Not a secret: it is published for local development.
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// ParseConnectionString reads an Azure Storage connection string
// (AccountName, AccountKey, DefaultEndpointsProtocol, EndpointSuffix,
// BlobEndpoint, TableEndpoint; "UseDevelopmentStorage=true" is Azurite on
// its default ports). Errors name the setting, never the key's value.
func ParseConnectionString(s string) (*Account, error) {
	settings := map[string]string{}
	for _, part := range strings.Split(strings.TrimSpace(s), ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("connection string: %q is not NAME=VALUE", redactPart(part))
		}
		settings[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if strings.EqualFold(settings["usedevelopmentstorage"], "true") {
		proxy := "http://127.0.0.1"
		if p := settings["developmentstorageproxyuri"]; p != "" {
			proxy = strings.TrimSuffix(p, "/")
		}
		return &Account{Name: devAccount, key: mustKey(devKey),
			BlobEndpoint: proxy + ":10000/" + devAccount, TableEndpoint: proxy + ":10002/" + devAccount}, nil
	}
	a := &Account{Name: settings["accountname"]}
	if k := settings["accountkey"]; k != "" {
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			return nil, errors.New("connection string: AccountKey is not base64")
		}
		a.key = key
	}
	if settings["sharedaccesssignature"] != "" {
		return nil, errors.New("connection string: SharedAccessSignature is not supported; use AccountKey or the account URL with a credential")
	}
	proto := settings["defaultendpointsprotocol"]
	if proto == "" {
		proto = "https"
	}
	if proto != "https" && proto != "http" {
		return nil, fmt.Errorf("connection string: DefaultEndpointsProtocol %q: want https or http", proto)
	}
	suffix := settings["endpointsuffix"]
	if suffix == "" {
		suffix = "core.windows.net"
	}
	a.BlobEndpoint = strings.TrimSuffix(settings["blobendpoint"], "/")
	a.TableEndpoint = strings.TrimSuffix(settings["tableendpoint"], "/")
	if a.Name == "" {
		return nil, errors.New("connection string: no AccountName")
	}
	if a.key == nil {
		return nil, errors.New("connection string: no AccountKey")
	}
	if a.BlobEndpoint == "" {
		a.BlobEndpoint = proto + "://" + a.Name + ".blob." + suffix
	}
	if a.TableEndpoint == "" {
		a.TableEndpoint = proto + "://" + a.Name + ".table." + suffix
	}
	for _, e := range []string{a.BlobEndpoint, a.TableEndpoint} {
		if err := checkEndpoint(e); err != nil {
			return nil, fmt.Errorf("connection string: %w", err)
		}
	}
	return a, nil
}

func redactPart(p string) string {
	if k, _, ok := strings.Cut(p, "="); ok {
		return k + "=…"
	}
	if len(p) > 12 {
		return p[:4] + "…"
	}
	return p
}

func mustKey(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// NewTokenAccount is the account at accountURL (https://NAME.blob.core.windows.net
// or https://NAME.table.core.windows.net, or the bare name) reached with
// tokens for tenant from tokens.
func NewTokenAccount(accountURL string, tokens TokenSource, tenant string) (*Account, error) {
	name := accountURL
	suffix := "core.windows.net"
	if strings.Contains(accountURL, "://") {
		u, err := url.Parse(accountURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("account URL %q: not a URL", accountURL)
		}
		if u.Scheme != "https" {
			return nil, fmt.Errorf("account URL %q: tokens go over https only", accountURL)
		}
		host := u.Hostname()
		n, rest, ok := strings.Cut(host, ".")
		if !ok {
			return nil, fmt.Errorf("account URL %q: want https://ACCOUNT.blob.core.windows.net", accountURL)
		}
		name = n
		if _, s, ok := strings.Cut(rest, "."); ok && (strings.HasPrefix(rest, "blob.") || strings.HasPrefix(rest, "table.")) {
			suffix = s
		}
	}
	if name == "" || strings.ContainsAny(name, "/:.") {
		return nil, fmt.Errorf("account URL %q: no account name", accountURL)
	}
	return &Account{Name: name, tokens: tokens, tenant: tenant,
		BlobEndpoint: "https://" + name + ".blob." + suffix, TableEndpoint: "https://" + name + ".table." + suffix}, nil
}

// checkEndpoint accepts https, or http to a loopback host (the emulator).
func checkEndpoint(e string) error {
	u, err := url.Parse(e)
	if err != nil || u.Host == "" {
		return fmt.Errorf("endpoint %q is not a URL", e)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if h == "localhost" || h == "127.0.0.1" || h == "::1" || strings.HasPrefix(h, "127.") {
			return nil
		}
		return fmt.Errorf("endpoint %q is plain http: the account key would be sent in the clear (http is allowed for a loopback emulator only)", e)
	}
	return fmt.Errorf("endpoint %q: want https", e)
}

// Error is a failure to read the account: unreachable, refused, or a
// missing container or table. Its message names the account and, for a
// refusal, what the credential lacks.
type Error struct {
	Account string
	Op      string // "list blobs in container x", "query table y"
	Status  int    // HTTP status; 0 when unreachable
	Code    string // x-ms-error-code
	Hint    string
	Err     error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "storage account %s: %s: ", e.Account, e.Op)
	switch {
	case e.Status == 0 && e.Err != nil:
		fmt.Fprintf(&b, "unreachable: %v", e.Err)
	case e.Code != "":
		fmt.Fprintf(&b, "%d %s", e.Status, e.Code)
	default:
		fmt.Fprintf(&b, "HTTP %d", e.Status)
	}
	if e.Hint != "" {
		b.WriteString(": " + e.Hint)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// hint explains a refusal: which role the credential needs, or that the
// key is wrong.
func (a *Account) hint(service string, status int, code string) string {
	role := "Storage Blob Data Reader"
	if service == "table" {
		role = "Storage Table Data Reader"
	}
	switch {
	case status == 403 && a.key != nil:
		return "the account key was refused (AccountKey wrong or rotated)"
	case status == 403, status == 401:
		return "the credential lacks the " + role + " role on the account (assign it, then wait a few minutes)"
	case status == 404 && (code == "ContainerNotFound" || code == "TableNotFound" || code == "ResourceNotFound"):
		return "no such " + map[string]string{"blob": "container", "table": "table"}[service]
	}
	return ""
}

func encodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }
