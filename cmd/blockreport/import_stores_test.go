//go:build unix

package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blockreport/blockreport/azstorage"
	"github.com/blockreport/blockreport/internal/azuritetest"
	_ "modernc.org/sqlite"
)

// runEnv runs blockreport with args and the given environment.
func runEnv(t testing.TB, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	code = exitCode(err, &errOut)
	return out.String(), errOut.String(), code
}

const (
	storeTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	storeApp    = "c9e8c047-0e4f-4b3c-9d52-1f0b7a3e9a10"
)

// agentsRecord is an Agents SDK proactive record; agent picks the JS SDK's
// field name.
func agentsRecord(i int, agent bool) string {
	bot := `"bot"`
	extra := `,"$type":"Microsoft.Agents.Builder.App.Proactive.Conversation","$typeAssembly":"Microsoft.Agents.Builder"`
	if agent {
		bot, extra = `"agent"`, ""
	}
	return fmt.Sprintf(`{"reference":{"activityId":"f:%d","user":{"id":"29:u%d","aadObjectId":"7faf8ab2-0000-4000-8000-%012d"},%s:{"id":"28:%s","name":"Relay"},"conversation":{"conversationType":"personal","tenantId":"%s","id":"a:c%d"},"channelId":"msteams","serviceUrl":"https://smba.trafficmanager.net/amer/"},"claims":{"aud":"%s"}%s}`,
		i, i, i, bot, storeApp, storeTenant, i, storeApp, extra)
}

type storedRow struct{ tenant, conv, user, aad, url, source, key string }

func storedRows(t *testing.T, dbPath string) map[string]storedRow {
	t.Helper()
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT tenant_id, conversation_id, user_id, aad_object_id, service_url, source, source_key FROM conversation_references`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]storedRow{}
	for rows.Next() {
		var r storedRow
		if err := rows.Scan(&r.tenant, &r.conv, &r.user, &r.aad, &r.url, &r.source, &r.key); err != nil {
			t.Fatal(err)
		}
		m[r.conv+"|"+r.user] = r
	}
	return m
}

// TestImportAzure imports an Agents SDK blob container and a Company
// Communicator table from Azurite through the command, with a user in
// both (one reference), paging through a table of more than 1,000 rows,
// and the failures an admin meets first.
func TestImportAzure(t *testing.T) {
	e := azuritetest.Start(t)
	ctx := context.Background()
	acct, err := azstorage.ParseConnectionString(e.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	blobs, _ := azstorage.NewBlobs(acct, nil)
	tables := azstorage.NewTables(acct, nil)
	if err := blobs.CreateContainer(ctx, "state"); err != nil {
		t.Fatal(err)
	}
	upload := func(name, body string) {
		t.Helper()
		if err := blobs.Upload(ctx, "state", name, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	// .NET names (lower-case hex), JS names (leading %2F), turn state.
	upload(strings.ToLower(url.QueryEscape("proactive/conversations/a:c1")), agentsRecord(1, false))
	upload("%2F"+url.QueryEscape("proactive/conversations/a:c2"), agentsRecord(2, true))
	upload("msteams%2fconversations%2fa%3ac1", `{"$type":"x","lastTopic":"weather"}`)

	for _, tb := range []string{"UserData", "AppConfig"} {
		if err := tables.CreateTable(ctx, tb); err != nil {
			t.Fatal(err)
		}
	}
	if err := tables.Insert(ctx, "AppConfig", map[string]any{"PartitionKey": "Settings", "RowKey": "ServiceUrl", "Value": "https://smba.trafficmanager.net/emea/"}); err != nil {
		t.Fatal(err)
	}
	const rows = 1050
	for i := 2; i < rows+2; i++ { // user 2 is also in the blobs
		row := map[string]any{"PartitionKey": "UserData", "RowKey": fmt.Sprintf("7faf8ab2-0000-4000-8000-%012d", i),
			"AadId": fmt.Sprintf("7faf8ab2-0000-4000-8000-%012d", i), "UserId": fmt.Sprintf("29:u%d", i),
			"ConversationId": fmt.Sprintf("a:c%d", i), "ServiceUrl": "https://smba.trafficmanager.net/amer/",
			"TenantId": storeTenant, "UserType": "Member", "Name": "", "Email": "", "Upn": ""}
		if i == 3 { // synced by Graph: no conversation yet, no service URL
			delete(row, "ConversationId")
			delete(row, "UserId")
			delete(row, "ServiceUrl")
		}
		if err := tables.Insert(ctx, "UserData", row); err != nil {
			t.Fatal(err)
		}
	}
	if err := tables.Insert(ctx, "UserData", map[string]any{"PartitionKey": "AuthorData", "RowKey": "author", "AadId": "author"}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	dbPath := filepath.Join(dir, "b.db")
	env := map[string]string{"AZURE_STORAGE_CONNECTION_STRING": e.ConnectionString()}
	out, errOut, code := runEnv(t, env, "import", "--db", "sqlite:"+dbPath, "--app-id", storeApp, "azblob://state", "aztable://UserData")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.HasSuffix(out, "added 1051, updated 0, unchanged 0, rejected 0\n") {
		t.Fatalf("stdout %q (stderr %s)", out, errOut)
	}
	got := storedRows(t, dbPath)
	if len(got) != 1051 {
		t.Fatalf("stored %d references, want 1051", len(got))
	}
	if r := got["a:c1|29:u1"]; r.source != "azblob://state" || r.key != "proactive%2fconversations%2fa%3ac1" {
		t.Errorf("blob provenance: %+v", r)
	}
	if r := got["a:c2|29:u2"]; r.source != "aztable://UserData" || r.key != "UserData/7faf8ab2-0000-4000-8000-000000000002" {
		t.Errorf("the user in both sources: %+v (the table came last)", r)
	}
	standIn := "7faf8ab2-0000-4000-8000-000000000003"
	if r, ok := got["|"+standIn]; !ok || r.url != "https://smba.trafficmanager.net/emea/" {
		t.Errorf("no-conversation-yet row: %+v (want AppConfig's service URL)", r)
	}

	// Company Communicator's team installs: channel references, AppConfig's service URL.
	if err := tables.CreateTable(ctx, "TeamData"); err != nil {
		t.Fatal(err)
	}
	if err := tables.Insert(ctx, "TeamData", map[string]any{"PartitionKey": "TeamData", "RowKey": "19:team1@thread.skype",
		"TeamId": "19:team1@thread.skype", "Name": "Contoso", "TenantId": storeTenant}); err != nil {
		t.Fatal(err)
	}
	teamDB := filepath.Join(dir, "teams.db")
	out, errOut, code = runEnv(t, env, "import", "--db", "sqlite:"+teamDB, "aztable://TeamData")
	if code != 0 || !strings.HasSuffix(out, "added 1, updated 0, unchanged 0, rejected 0\n") {
		t.Fatalf("TeamData: exit %d %q %s", code, out, errOut)
	}
	if r, ok := storedRows(t, teamDB)["19:team1@thread.skype|"]; !ok || r.url != "https://smba.trafficmanager.net/emea/" || r.key != "TeamData/19:team1@thread.skype" {
		t.Fatalf("TeamData row: %+v", r)
	}

	// Again: every reference unchanged.
	out, errOut, code = runEnv(t, env, "import", "--db", "sqlite:"+dbPath, "azblob://state", "aztable://UserData")
	if code != 0 || !strings.HasSuffix(out, "added 0, updated 0, unchanged 1051, rejected 0\n") {
		t.Fatalf("re-import: exit %d %q %s", code, out, errOut)
	}

	// Another bot's references are rejected, and nothing is written.
	fresh := "sqlite:" + filepath.Join(dir, "other.db")
	out, errOut, code = runEnv(t, env, "import", "--db", fresh, "--app-id", "00000000-1111-2222-3333-444444444444", "azblob://state/proactive/conversations/")
	if code != 2 || !strings.Contains(errOut, `azblob://state/proactive/conversations/:proactive%2fconversations%2fa%3ac1: bound to bot "28:`+storeApp+`"`) ||
		!strings.Contains(errOut, "Failed to decrypt conversation ID") || !strings.HasSuffix(out, "rejected 2\n") {
		t.Fatalf("other bot: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := countRefs(t, fresh); n != 0 {
		t.Fatalf("other bot: %d references stored", n)
	}

	// A wrong key: one line naming the account, exit 1, nothing written.
	bad := map[string]string{"AZURE_STORAGE_CONNECTION_STRING": strings.Replace(e.ConnectionString(), azuritetest.Key, "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXk=", 1)}
	empty := "sqlite:" + filepath.Join(dir, "empty.db")
	out, errOut, code = runEnv(t, bad, "import", "--db", empty, "aztable://UserData")
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 ||
		!strings.Contains(errOut, "storage account devstoreaccount1: query table AppConfig: 403") || !strings.Contains(errOut, "account key was refused") {
		t.Fatalf("wrong key: exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(errOut, "d3Jvbmcga2V5") {
		t.Fatalf("the key reached the error: %s", errOut)
	}
	if n := countRefs(t, empty); n != 0 {
		t.Fatalf("wrong key: %d references stored", n)
	}

	// Unreachable: one line, exit 1.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	gone := map[string]string{"AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + azuritetest.Key +
		";BlobEndpoint=http://" + closed + "/devstoreaccount1;TableEndpoint=http://" + closed + "/devstoreaccount1"}
	_, errOut, code = runEnv(t, gone, "import", "--db", empty, "azblob://state")
	if code != 1 || !strings.Contains(errOut, "storage account devstoreaccount1: list blobs in container state: unreachable") {
		t.Fatalf("unreachable: exit %d\n%s", code, errOut)
	}
}

// TestImportStoreUsage: the usage errors of the Azure sources and store
// flags (exit 2, before anything is read).
func TestImportStoreUsage(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "b.db")
	csFile := writeFile(t, dir, "cs.txt", "AccountName=acct\n")
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"azblob://"}, want: "import: azblob://: no container name"},
		{args: []string{"aztable://UserData/x"}, want: "a table has no prefix"},
		{args: []string{"azblob://state"}, want: "need a storage account: set AZURE_STORAGE_CONNECTION_STRING"},
		{args: []string{"--storage-connection-string-file", csFile, "azblob://state"}, want: "import: --storage-connection-string-file " + csFile + ": connection string: no AccountKey"},
		{args: []string{"azblob://state"}, env: map[string]string{"AZURE_STORAGE_CONNECTION_STRING": "AccountName=a;AccountKey=" + azuritetest.Key + ";BlobEndpoint=http://storage.example.com/a"},
			want: "AZURE_STORAGE_CONNECTION_STRING: connection string: endpoint \"http://storage.example.com/a\" is plain http"},
		{args: []string{"--storage-account", "https://acct.blob.core.windows.net", "--app-id", storeApp, "--app-password-file", csFile, "azblob://state"}, want: "set --app-tenant"},
		{args: []string{"--format", "cosmos", "x.json"}, want: `--format "cosmos": want auto, conversationreference`},
		{args: []string{"--service-url", "http://evil.example/", "x.json"}, want: "--service-url: service URL \"http://evil.example/\" is plain http"},
	} {
		_, errOut, code := runEnv(t, c.env, append([]string{"import", "--db", db}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errOut, c.want)
		}
		if strings.Contains(errOut, azuritetest.Key) {
			t.Errorf("%v: the key reached stderr", c.args)
		}
	}
}

// TestImportStoreFiles imports exported store files: a Teams SDK app's
// records with --tenant and --service-url, an Agents SDK state.json and a
// Company Communicator export, auto-detected, with line-numbered problems.
func TestImportStoreFiles(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "b.db")
	sdk := writeFile(t, dir, "installs.jsonl", `{"aadObjectId":"7faf8ab2-0000-4000-8000-0000000000d1","conversationId":"a:sdk-1"}`+"\n"+
		`{"aadObjectId":"7faf8ab2-0000-4000-8000-0000000000d2","conversationId":"19:d2@unq.gbl.spaces"}`+"\n")
	state := filepath.Join("..", "..", "ingest", "testdata", "stores", "agents-state.json")
	cc := filepath.Join("..", "..", "ingest", "testdata", "stores", "cc-userdata.json")

	// Without --tenant the Teams SDK records cannot be imported.
	_, errOut, code := runEnv(t, nil, "import", "--db", db, sdk)
	if code != 2 || !strings.Contains(errOut, sdk+":1: missing tenant id") || !strings.Contains(errOut, sdk+":2: missing tenant id") {
		t.Fatalf("no tenant: exit %d\n%s", code, errOut)
	}
	out, errOut, code := runEnv(t, nil, "import", "--db", db, "--tenant", storeTenant, "--service-url", "https://smba.trafficmanager.net/teams", sdk, state, cc)
	if code != 0 || !strings.HasSuffix(out, "added 7, updated 0, unchanged 0, rejected 0\n") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	got := storedRows(t, filepath.Join(dir, "b.db"))
	if r := got["a:sdk-1|7faf8ab2-0000-4000-8000-0000000000d1"]; r.url != "https://smba.trafficmanager.net/teams" || r.source != sdk || r.key != "line 1" {
		t.Errorf("Teams SDK record: %+v", r)
	}
	if r := got["a:1xBq-js|29:1GcS4-js"]; r.key != "proactive/conversations/a:1xBq-js" {
		t.Errorf("state.json record: %+v", r)
	}
	if r := got["a:1xBq-cc1|29:1GcS4-cc1"]; r.source != cc || r.key != "line 2" {
		t.Errorf("CC record: %+v", r)
	}
}
