//go:build unix

package azstorage_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/blockreport/blockreport/azstorage"
	"github.com/blockreport/blockreport/internal/azuritetest"
)

func account(t *testing.T, e *azuritetest.Emulator) *azstorage.Account {
	t.Helper()
	a, err := azstorage.ParseConnectionString(e.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// parallel runs f(i) for i < n, 16 at a time, and fails on the first error.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// TestAzuriteBlobs lists a container of more than 5,000 blobs (two listing
// pages) with the names the SDKs write, and reads every body.
func TestAzuriteBlobs(t *testing.T) {
	e := azuritetest.Start(t)
	ctx := context.Background()
	b, err := azstorage.NewBlobs(account(t, e), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateContainer(ctx, "state"); err != nil {
		t.Fatal(err)
	}
	const n = 5100
	name := func(i int) string {
		key := fmt.Sprintf("proactive/conversations/a:%05d", i)
		switch i % 3 {
		case 0: // Agents SDK .NET: HttpUtility.UrlEncode, lower-case hex
			return strings.ToLower(url.QueryEscape(key))
		case 1: // Agents SDK JS: leading slash, encodeURIComponent
			return "%2F" + url.QueryEscape(key)
		}
		return fmt.Sprintf("msteams%%2fconversations%%2fa%%3a%05d", i) // .NET turn state
	}
	parallel(t, n, func(i int) error {
		return b.Upload(ctx, "state", name(i), []byte(fmt.Sprintf(`{"n":%d}`, i)))
	})

	seen := map[string]bool{}
	for bl, err := range b.List(ctx, "state") {
		if err != nil {
			t.Fatal(err)
		}
		if seen[bl.Name] {
			t.Fatalf("%s listed twice", bl.Name)
		}
		seen[bl.Name] = true
		if !strings.HasPrefix(string(bl.Body), `{"n":`) || bl.LastModified.IsZero() {
			t.Fatalf("%s: body %q, modified %v", bl.Name, bl.Body, bl.LastModified)
		}
	}
	if len(seen) != n {
		t.Fatalf("listed %d blobs, want %d", len(seen), n)
	}
	for i := range n {
		if !seen[name(i)] {
			t.Fatalf("blob %s not listed", name(i))
		}
	}

	// A decoded prefix finds both SDKs' encodings of it, and nothing else.
	var agents int
	for bl, err := range b.List(ctx, "state", azstorage.Prefixes("proactive/conversations/a:01")...) {
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.ToLower(bl.Name), "proactive%2fconversations%2fa%3a01") {
			t.Fatalf("prefix listed %s", bl.Name)
		}
		agents++
	}
	want := 0
	for i := range n {
		if i%3 != 2 && strings.HasPrefix(fmt.Sprintf("%05d", i), "01") {
			want++
		}
	}
	if agents != want {
		t.Fatalf("prefix listed %d blobs, want %d", agents, want)
	}

	// A missing container names the account.
	for _, err := range b.List(ctx, "nope") {
		if err == nil || !strings.Contains(err.Error(), "storage account devstoreaccount1: list blobs in container nope: 404 ContainerNotFound: no such container") {
			t.Fatalf("missing container: %v", err)
		}
		break
	}
}

// TestAzuriteBlobsRefused: a wrong key is one clear error, not a retry
// storm or a partial listing.
func TestAzuriteBlobsRefused(t *testing.T) {
	e := azuritetest.Start(t)
	cs := strings.Replace(e.ConnectionString(), azuritetest.Key, "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXk=", 1)
	a, err := azstorage.ParseConnectionString(cs)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := azstorage.NewBlobs(a, nil)
	var got error
	for _, err := range b.List(context.Background(), "state") {
		got = err
		break
	}
	var se *azstorage.Error
	if !errors.As(got, &se) || se.Status != 403 || !strings.Contains(got.Error(), "storage account devstoreaccount1: list blobs in container state: 403") ||
		!strings.Contains(got.Error(), "the account key was refused") {
		t.Fatalf("wrong key: %v", got)
	}
	tb := azstorage.NewTables(a, nil)
	for _, err := range tb.Query(context.Background(), "UserData", "") {
		if err == nil || !strings.Contains(err.Error(), "storage account devstoreaccount1: query table UserData: 403") {
			t.Fatalf("wrong key, table: %v", err)
		}
		break
	}
}

// TestAzuriteTable pages through a table of more than 1,000 rows (the
// service's page size) with a filter, signed with SharedKeyLite against
// Azurite's path-style URLs.
func TestAzuriteTable(t *testing.T) {
	e := azuritetest.Start(t)
	ctx := context.Background()
	tb := azstorage.NewTables(account(t, e), nil)
	if err := tb.CreateTable(ctx, "UserData"); err != nil {
		t.Fatal(err)
	}
	if err := tb.CreateTable(ctx, "UserData"); err != nil { // exists: fine
		t.Fatal(err)
	}
	const n = 2150
	parallel(t, n, func(i int) error {
		return tb.Insert(ctx, "UserData", map[string]any{
			"PartitionKey": "UserData", "RowKey": fmt.Sprintf("7faf8ab2-0000-4000-8000-%012d", i),
			"AadId": fmt.Sprintf("7faf8ab2-0000-4000-8000-%012d", i), "UserId": fmt.Sprintf("29:u%d", i),
			"ConversationId": fmt.Sprintf("a:c%d", i), "ServiceUrl": "https://smba.trafficmanager.net/amer/",
			"TenantId": "t-1", "UserType": "Member", "Name": "O'Brien + Co", "Email": "", "Upn": "",
		})
	})
	if err := tb.Insert(ctx, "UserData", map[string]any{"PartitionKey": "AuthorData", "RowKey": "a'1", "AadId": "x"}); err != nil {
		t.Fatal(err)
	}
	var got int
	rows := map[string]bool{}
	for ent, err := range tb.Query(ctx, "UserData", "PartitionKey eq 'UserData'") {
		if err != nil {
			t.Fatal(err)
		}
		if ent.PartitionKey != "UserData" || rows[ent.RowKey] || !strings.Contains(string(ent.Raw), `"Name":"O'Brien + Co"`) {
			t.Fatalf("entity %s: %s", ent.Key(), ent.Raw)
		}
		rows[ent.RowKey] = true
		got++
	}
	if got != n {
		t.Fatalf("query returned %d entities, want %d", got, n)
	}
	var all int
	for ent, err := range tb.Query(ctx, "UserData", "") {
		if err != nil {
			t.Fatal(err)
		}
		if ent.PartitionKey == "AuthorData" && ent.RowKey != "a'1" {
			t.Fatalf("quoted row key came back as %q", ent.RowKey)
		}
		all++
	}
	if all != n+1 {
		t.Fatalf("unfiltered query returned %d, want %d", all, n+1)
	}
	for _, err := range tb.Query(ctx, "TeamData", "") {
		if err == nil || !strings.Contains(err.Error(), "storage account devstoreaccount1: query table TeamData: 404") {
			t.Fatalf("missing table: %v", err)
		}
		break
	}
}
