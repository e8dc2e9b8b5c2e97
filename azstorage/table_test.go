package azstorage

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// verify checks a SharedKeyLite Table signature as the documentation
// defines it: HMAC-SHA256 of "x-ms-date\n/<account><encoded URI path>".
func verify(t *testing.T, r *http.Request, account, wantResource string) {
	t.Helper()
	date := r.Header.Get("x-ms-date")
	if _, err := time.Parse(http.TimeFormat, date); err != nil {
		t.Errorf("x-ms-date %q: %v", date, err)
	}
	if got := "/" + account + r.URL.EscapedPath(); got != wantResource {
		t.Errorf("canonical resource %q, want %q", got, wantResource)
	}
	mac := hmac.New(sha256.New, testKey)
	mac.Write([]byte(date + "\n" + wantResource))
	want := "SharedKeyLite " + account + ":" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if got := r.Header.Get("Authorization"); got != want {
		t.Errorf("Authorization %q, want %q", got, want)
	}
	if v := r.Header.Get("x-ms-version"); v != "2019-02-02" {
		t.Errorf("x-ms-version %q", v)
	}
}

// pagedTable serves n entities of table UserData, per page at most per,
// with continuation headers, checking every request's signature.
func pagedTable(t *testing.T, account, resourcePrefix string, n, per int, requests *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		verify(t, r, account, resourcePrefix+"/UserData()")
		if f := r.URL.Query().Get("$filter"); f != "PartitionKey eq 'UserData'" {
			t.Errorf("$filter %q", f)
		}
		if strings.Contains(r.URL.RawQuery, "+") {
			t.Errorf("query %q encodes a space as +", r.URL.RawQuery)
		}
		start := 0
		if np := r.URL.Query().Get("NextRowKey"); np != "" {
			fmt.Sscanf(np, "r%06d", &start)
			if r.URL.Query().Get("NextPartitionKey") != "UserData" {
				t.Errorf("NextPartitionKey %q", r.URL.Query().Get("NextPartitionKey"))
			}
		}
		end := min(start+per, n)
		var rows []map[string]string
		for i := start; i < end; i++ {
			rows = append(rows, map[string]string{"PartitionKey": "UserData", "RowKey": fmt.Sprintf("r%06d", i), "AadId": fmt.Sprint(i)})
		}
		if end < n {
			w.Header().Set(nextPartition, "UserData")
			w.Header().Set(nextRow, fmt.Sprintf("r%06d", end))
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"odata.metadata": "x", "value": rows})
	})
}

func collect(t *testing.T, tb *Tables, table, filter string) ([]Entity, error) {
	t.Helper()
	var out []Entity
	for e, err := range tb.Query(context.Background(), table, filter) {
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// TestTablePathStyle: an emulator's URL carries the account in its path,
// so the canonical resource names it twice.
func TestTablePathStyle(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(pagedTable(t, "acct", "/acct/acct", 2500, 1000, &requests))
	defer srv.Close()
	a := &Account{Name: "acct", key: testKey, TableEndpoint: srv.URL + "/acct"}
	got, err := collect(t, NewTables(a, srv.Client()), "UserData", "PartitionKey eq 'UserData'")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2500 || requests.Load() != 3 {
		t.Fatalf("got %d entities in %d requests, want 2500 in 3", len(got), requests.Load())
	}
	for i, e := range got {
		if e.RowKey != fmt.Sprintf("r%06d", i) || e.Key() != "UserData/"+e.RowKey || !strings.Contains(string(e.Raw), `"AadId"`) {
			t.Fatalf("entity %d: %+v", i, e)
		}
	}
}

// TestTableHostStyle: real Azure's host-style URL (https, the account in
// the host name) signs /account/UserData().
func TestTableHostStyle(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "acct.table.core.windows.net" {
			t.Errorf("Host %q", r.Host)
		}
		pagedTable(t, "acct", "/acct", 10, 1000, &requests).ServeHTTP(w, r)
	}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
		},
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test server's certificate
	}}
	cs := "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + base64.StdEncoding.EncodeToString(testKey) + ";EndpointSuffix=core.windows.net"
	a, err := ParseConnectionString(cs)
	if err != nil {
		t.Fatal(err)
	}
	if a.TableEndpoint != "https://acct.table.core.windows.net" || a.BlobEndpoint != "https://acct.blob.core.windows.net" {
		t.Fatalf("endpoints %s %s", a.TableEndpoint, a.BlobEndpoint)
	}
	got, err := collect(t, NewTables(a, client), "UserData", "PartitionKey eq 'UserData'")
	if err != nil || len(got) != 10 {
		t.Fatalf("got %d, %v", len(got), err)
	}
}

type fakeTokens struct{ tenant, scope string }

func (f *fakeTokens) Token(_ context.Context, tenant, scope string) (string, error) {
	f.tenant, f.scope = tenant, scope
	return "tok-123", nil
}

func TestTableErrors(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		switch strings.TrimPrefix(r.URL.Path, "/acct/") {
		case "Denied()":
			w.WriteHeader(403)
			w.Write([]byte(`{"odata.error":{"code":"AuthorizationPermissionMismatch","message":{"lang":"en-US","value":"This request is not authorized to perform this operation using this permission."}}}`))
		case "Missing()":
			w.Header().Set("x-ms-error-code", "TableNotFound")
			w.WriteHeader(404)
		case "Busy()":
			if calls.Load() < 3 {
				w.WriteHeader(503)
				return
			}
			w.Write([]byte(`{"value":[{"PartitionKey":"p","RowKey":"r"}]}`))
		case "Garbled()":
			w.Write([]byte(`{"value":[{"PartitionKey":`))
		}
	}))
	defer srv.Close()
	keyed := &Account{Name: "acct", key: testKey, TableEndpoint: srv.URL + "/acct"}
	tokens := &fakeTokens{}
	token := &Account{Name: "acct", tokens: tokens, tenant: "t-1", TableEndpoint: srv.URL + "/acct"}
	for _, c := range []struct {
		name  string
		acct  *Account
		table string
		want  string // "" for success
	}{
		{"token refused", token, "Denied", "storage account acct: query table Denied: 403 AuthorizationPermissionMismatch: the credential lacks the Storage Table Data Reader role on the account"},
		{"key refused", keyed, "Denied", "storage account acct: query table Denied: 403 AuthorizationPermissionMismatch: the account key was refused"},
		{"no table", keyed, "Missing", "storage account acct: query table Missing: 404 TableNotFound: no such table"},
		{"503 retried", keyed, "Busy", ""},
		{"garbled answer", keyed, "Garbled", "storage account acct: query table Garbled: HTTP 200: unreadable answer"},
		{"bad name", keyed, "a-b", `table name "a-b"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls.Store(0)
			_, err := collect(t, NewTables(c.acct, srv.Client()), c.table, "")
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("error %v\nwant %s", err, c.want)
			}
			if strings.Contains(err.Error(), "tok-123") {
				t.Fatalf("token in error: %v", err)
			}
		})
	}
	if tokens.tenant != "t-1" || tokens.scope != StorageScope {
		t.Errorf("token asked for tenant %q scope %q", tokens.tenant, tokens.scope)
	}

	// Unreachable: nothing listens.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	_, err := collect(t, NewTables(&Account{Name: "acct", key: testKey, TableEndpoint: "http://" + addr + "/acct"}, nil), "UserData", "")
	var se *Error
	if !errors.As(err, &se) || se.Status != 0 || !strings.Contains(err.Error(), "storage account acct: query table UserData: unreachable") {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestParseConnectionString(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(testKey)
	for _, c := range []struct {
		in, blob, table, err string
	}{
		{in: "UseDevelopmentStorage=true", blob: "http://127.0.0.1:10000/devstoreaccount1", table: "http://127.0.0.1:10002/devstoreaccount1"},
		{in: "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + key + ";EndpointSuffix=core.usgovcloudapi.net",
			blob: "https://acct.blob.core.usgovcloudapi.net", table: "https://acct.table.core.usgovcloudapi.net"},
		{in: "AccountName=devstoreaccount1;AccountKey=" + key + ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1",
			blob: "http://127.0.0.1:10000/devstoreaccount1", table: "http://127.0.0.1:10002/devstoreaccount1"},
		{in: "AccountName=acct", err: "no AccountKey"},
		{in: "AccountKey=" + key, err: "no AccountName"},
		{in: "AccountName=acct;AccountKey=not*base64!", err: "AccountKey is not base64"},
		{in: "AccountName=acct;AccountKey=" + key + ";TableEndpoint=http://storage.example.com/acct", err: "plain http"},
		{in: "AccountName=acct;SharedAccessSignature=sv=2020&sig=secret", err: "SharedAccessSignature is not supported"},
		{in: "AccountName=acct;garbage", err: "is not NAME=VALUE"},
	} {
		a, err := ParseConnectionString(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			if err != nil && (strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "secret")) {
				t.Errorf("%q: secret in error %v", c.in, err)
			}
			continue
		}
		if err != nil || a.BlobEndpoint != c.blob || a.TableEndpoint != c.table {
			t.Errorf("%q: got %+v, %v", c.in, a, err)
		}
	}
}

func TestNewTokenAccount(t *testing.T) {
	for _, c := range []struct{ in, name, blob, err string }{
		{in: "https://acct.blob.core.windows.net", name: "acct", blob: "https://acct.blob.core.windows.net"},
		{in: "https://acct.table.core.usgovcloudapi.net/", name: "acct", blob: "https://acct.blob.core.usgovcloudapi.net"},
		{in: "acct", name: "acct", blob: "https://acct.blob.core.windows.net"},
		{in: "http://acct.blob.core.windows.net", err: "https only"},
	} {
		a, err := NewTokenAccount(c.in, &fakeTokens{}, "")
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v", c.in, err)
			}
			continue
		}
		if err != nil || a.Name != c.name || a.BlobEndpoint != c.blob {
			t.Errorf("%q: %+v %v", c.in, a, err)
		}
	}
}

func TestPrefixes(t *testing.T) {
	got := strings.Join(Prefixes("proactive/conversations/"), " ")
	want := "proactive/conversations/ proactive%2fconversations%2f proactive%2Fconversations%2F %2Fproactive%2Fconversations%2F"
	if got != want {
		t.Fatalf("Prefixes:\n got %s\nwant %s", got, want)
	}
}
