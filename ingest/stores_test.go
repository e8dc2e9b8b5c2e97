package ingest_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/ingest"
)

// Records in the shapes the SDKs write them (reference-stores.md §2-§7).
const (
	tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	appID  = "c9e8c047-0e4f-4b3c-9d52-1f0b7a3e9a10"

	// Agents SDK .NET, BlobsStorage: bot, $type markers, nulls omitted.
	agentsNET = `{"reference":{"activityId":"f:8ab1c2","user":{"id":"29:1GcS4-net","name":"Megan Bowen","aadObjectId":"7FAF8AB2-0000-4000-8000-000000000001"},"bot":{"id":"28:` + appID + `","name":"Relay"},"conversation":{"conversationType":"personal","tenantId":"` + tenant + `","id":"a:1xBq-net"},"channelId":"msteams","locale":"en-US","serviceUrl":"https://smba.trafficmanager.net/amer/","requestId":"r-1","deliveryMode":"normal"},"claims":{"aud":"` + appID + `","azp":"` + appID + `","appid":"` + appID + `","idtyp":"app","ver":"1.0","iss":"https://api.botframework.com","tid":"d6d49420-f39b-4df7-a1dc-d59a935871db"},"$type":"Microsoft.Agents.Builder.App.Proactive.Conversation","$typeAssembly":"Microsoft.Agents.Builder"}`

	// Agents SDK JS: agent instead of bot, the whole JWT payload as claims
	// (numbers), an OpenTelemetry __link.
	agentsJS = `{"reference":{"activityId":"f:8ab1c3","user":{"id":"29:1GcS4-js","aadObjectId":"7faf8ab2-0000-4000-8000-000000000002"},"agent":{"id":"28:` + appID + `","name":"Relay"},"conversation":{"conversationType":"personal","tenantId":"` + tenant + `","id":"a:1xBq-js"},"channelId":"msteams","locale":"en-US","serviceUrl":"https://smba.trafficmanager.net/amer/"},"claims":{"aud":"` + appID + `","iss":"https://api.botframework.com","serviceurl":"https://smba.trafficmanager.net/amer/","nbf":1764000000,"exp":1764003600},"__link":{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331"}}`

	// botbuilder-dotnet, TypeNameHandling.All.
	botbuilderNET = `{"$type":"Microsoft.Bot.Schema.ConversationReference, Microsoft.Bot.Schema","activityId":"1485983408511","user":{"$type":"Microsoft.Bot.Schema.ChannelAccount, Microsoft.Bot.Schema","id":"29:1bb-net","aadObjectId":"7faf8ab2-0000-4000-8000-000000000003","properties":{"$type":"Newtonsoft.Json.Linq.JObject, Newtonsoft.Json"}},"bot":{"$type":"Microsoft.Bot.Schema.ChannelAccount, Microsoft.Bot.Schema","id":"28:` + appID + `"},"conversation":{"$type":"Microsoft.Bot.Schema.ConversationAccount, Microsoft.Bot.Schema","conversationType":"personal","tenantId":"` + tenant + `","id":"a:bb-net"},"channelId":"msteams","serviceUrl":"https://smba.trafficmanager.net/emea/"}`

	// TeamsFx .NET LocalFileStorage: PascalCase.
	teamsFxNET = `{"ActivityId":"f:1","User":{"Id":"29:tfx-net","AadObjectId":"7faf8ab2-0000-4000-8000-000000000004"},"Bot":{"Id":"28:` + appID + `"},"Conversation":{"ConversationType":"personal","TenantId":"` + tenant + `","Id":"a:tfx-net"},"ChannelId":"msteams","ServiceUrl":"https://smba.trafficmanager.net/amer/"}`
)

func decodeAll(t *testing.T, doc, key string, format ingest.Format, d ingest.Defaults) []ingest.Found {
	t.Helper()
	var out []ingest.Found
	for f, err := range ingest.DecodeStore(strings.NewReader(doc), key, format, d) {
		if err != nil {
			t.Fatalf("read error: %v", err)
		}
		out = append(out, f)
	}
	return out
}

// summary is "KEY@LINE tenant|conversation|user type" or "KEY@LINE: reason".
func summary(f ingest.Found) string {
	if f.Reason != "" {
		return fmt.Sprintf("%s@%d: %s", f.Key, f.Line, f.Reason)
	}
	return fmt.Sprintf("%s@%d %s %s aad=%s bot=%s url=%s", f.Key, f.Line, f.Ref.Key(), f.Ref.ConversationType, f.Ref.AADObjectID, f.Ref.BotID, f.Ref.ServiceURL)
}

func TestDecodeStore(t *testing.T) {
	jsKey := ingest.BlobKey("%2Fproactive%2Fconversations%2Fa%3A1xBq-js")
	netKey := ingest.BlobKey("proactive%2fconversations%2fa%3a1xBq-net")
	if jsKey != "proactive/conversations/a:1xBq-js" || netKey != "proactive/conversations/a:1xBq-net" {
		t.Fatalf("BlobKey: JS %q, .NET %q", jsKey, netKey)
	}
	for _, c := range []struct {
		name     string
		doc, key string
		format   ingest.Format
		d        ingest.Defaults
		want     []string // summaries, prefix match
	}{
		{name: "agents .NET blob", doc: agentsNET, key: netKey, want: []string{
			"proactive/conversations/a:1xBq-net@1 " + tenant + "|a:1xBq-net|29:1GcS4-net personal aad=7faf8ab2-0000-4000-8000-000000000001 bot=28:" + appID + " url=https://smba.trafficmanager.net/amer/"}},
		{name: "agents JS blob, agent field", doc: agentsJS, key: jsKey, format: ingest.FormatAgents, d: ingest.Defaults{AppID: appID}, want: []string{
			"proactive/conversations/a:1xBq-js@1 " + tenant + "|a:1xBq-js|29:1GcS4-js personal aad=7faf8ab2-0000-4000-8000-000000000002 bot=28:" + appID}},
		{name: "agents record without bot: claims aud", doc: strings.Replace(agentsNET, `"bot":{"id":"28:`+appID+`","name":"Relay"},`, "", 1), key: netKey, want: []string{
			"proactive/conversations/a:1xBq-net@1 " + tenant + "|a:1xBq-net|29:1GcS4-net personal aad=7faf8ab2-0000-4000-8000-000000000001 bot=" + appID}},
		{name: "agents FileStorage state.json, turn state skipped", format: ingest.FormatAgents, doc: "{\n" +
			`  "msteams/` + appID + `/conversations/a:1xBq-js": {"conversation":{"$type":"x"},"eTag":"1"},` + "\n" +
			`  "msteams/conversations/a:1xBq-js/users/29:1GcS4-js": {"user":{"count":3}},` + "\n" +
			`  "proactive/conversations/a:1xBq-js": ` + agentsJS + ",\n" +
			`  "proactive/conversations/a:1xBq-net": ` + agentsNET + "\n}\n", want: []string{
			"proactive/conversations/a:1xBq-js@4 " + tenant + "|a:1xBq-js|29:1GcS4-js",
			"proactive/conversations/a:1xBq-net@5 " + tenant + "|a:1xBq-net|29:1GcS4-net"}},
		{name: "agents Cosmos export: realId, escaped id never decoded", doc: "[\n" +
			`{"id":"proactive*2fconversations*2fa:1xBq-net","realId":"proactive/conversations/a:1xBq-net","document":` + agentsNET + `,"_etag":"\"0000\"","partitionKey":"proactive*2fconversations*2fa:1xBq-net","_ts":1764000000},` + "\n" +
			`{"id":"3f1c9e","realId":"proactive/conversations/a:1xBq-js","document":` + agentsJS + `,"eTag":""}` + "\n]", want: []string{
			"proactive/conversations/a:1xBq-net@2 " + tenant + "|a:1xBq-net|29:1GcS4-net",
			"proactive/conversations/a:1xBq-js@3 " + tenant + "|a:1xBq-js|29:1GcS4-js"}},
		{name: "agents Cosmos export as JSON lines", doc: `{"id":"a","realId":"proactive/conversations/a:1xBq-net","document":` + agentsNET + "}\n" +
			`{"id":"b","realId":"proactive/conversations/a:1xBq-js","document":` + agentsJS + "}\n", want: []string{
			"proactive/conversations/a:1xBq-net@1 ", "proactive/conversations/a:1xBq-js@2 "}},
		{name: "botbuilder-dotnet $type dump, wrapped and plain", format: ingest.FormatBotBuilder, doc: "{\n" +
			`"refs/7faf8ab2-0000-4000-8000-000000000003": ` + botbuilderNET + ",\n" +
			`"users/megan": {"$type":"MyBot.UserProfile, MyBot","name":"Megan","conversationReference":` + botbuilderNET + `,"tags":{"$type":"System.Collections.Generic.List` + "`" + `1[[System.String]], System.Private.CoreLib","$values":["a"]}}` + "\n}", want: []string{
			"refs/7faf8ab2-0000-4000-8000-000000000003@2 " + tenant + "|a:bb-net|29:1bb-net personal",
			"users/megan@3 " + tenant + "|a:bb-net|29:1bb-net personal"}},
		{name: "botbuilder item without a reference", format: ingest.FormatBotBuilder, doc: `{"counters/x": {"count": 3}}`, want: []string{
			"counters/x@1: not a conversation reference"}},
		{name: "teamsfx .NET PascalCase", doc: `{"_` + tenant + `_a:tfx-net": ` + teamsFxNET + "}", want: []string{
			"_" + tenant + "_a:tfx-net@1 " + tenant + "|a:tfx-net|29:tfx-net personal"}},
		{name: "teamsfx blob sample body", doc: teamsFxNET, key: ingest.BlobKey("_" + tenant + "_a%3Atfx-net"), want: []string{
			"_" + tenant + "_a:tfx-net@1 " + tenant + "|a:tfx-net|29:tfx-net personal"}},
		{name: "teamsfx table export", format: ingest.FormatTeamsFxTable, doc: `[` +
			`{"PartitionKey":"3fa1","RowKey":"_` + tenant + `_a:tfx-1","userId":"29:tfx-1","conversationType":"personal","conversationId":"a:tfx-1","tenantId":"` + tenant + `","serviceUrl":"https://smba.trafficmanager.net/amer/"},` + "\n" +
			`{"PartitionKey":"0b2c","RowKey":"_` + tenant + `_19:general@thread.tacv2","conversationType":"channel","conversationId":"19:general@thread.tacv2","tenantId":"` + tenant + `","serviceUrl":"https://smba.trafficmanager.net/amer/"}]`, want: []string{
			"@1 " + tenant + "|a:tfx-1|29:tfx-1 personal", "@2 " + tenant + "|19:general@thread.tacv2| channel"}},
		{name: "company communicator UserData (Table REST answer)", doc: `{"odata.metadata":"https://x.table.core.windows.net/$metadata#UserData","value":[` + "\n" +
			`{"odata.etag":"W/\"datetime'2025-01-01T00%3A00%3A00Z'\"","PartitionKey":"UserData","RowKey":"7faf8ab2-0000-4000-8000-0000000000c1","Timestamp":"2025-01-01T00:00:00Z","AadId":"7faf8ab2-0000-4000-8000-0000000000c1","UserId":"29:cc-1","ConversationId":"a:cc-1","ServiceUrl":"https://smba.trafficmanager.net/amer/","TenantId":"` + tenant + `","UserType":"Member","Name":"","Email":"","Upn":"megan@contoso.com"},` + "\n" +
			`{"PartitionKey":"UserData","RowKey":"7faf8ab2-0000-4000-8000-0000000000c2","AadId":"7faf8ab2-0000-4000-8000-0000000000c2","UserId":"29:cc-2","ServiceUrl":"https://smba.trafficmanager.net/amer/","TenantId":"` + tenant + `","UserType":"Member"},` + "\n" +
			`{"PartitionKey":"UserData","RowKey":"7faf8ab2-0000-4000-8000-0000000000c3","AadId":"7faf8ab2-0000-4000-8000-0000000000c3","UserType":"Member"},` + "\n" +
			`{"PartitionKey":"AuthorData","RowKey":"7faf8ab2-0000-4000-8000-0000000000a1","AadId":"7faf8ab2-0000-4000-8000-0000000000a1","UserId":"29:author","TenantId":"` + tenant + `"},` + "\n" +
			`{"PartitionKey":"UsersSyncData","RowKey":"AllUsersDeltaLink","Value":"https://graph.microsoft.com/v1.0/users/delta?$deltatoken=x"}` + "\n]}",
			d: ingest.Defaults{TenantID: tenant, ServiceURL: "https://smba.trafficmanager.net/emea/"}, want: []string{
				"@2 " + tenant + "|a:cc-1|29:cc-1 personal aad=7faf8ab2-0000-4000-8000-0000000000c1 bot= url=https://smba.trafficmanager.net/amer/",
				// No conversation yet: kept, the probe creates the 1:1.
				"@3 " + tenant + "||29:cc-2 personal",
				// Graph-synced row: only the AAD id, which stands in as the member id.
				"@4 " + tenant + "||7faf8ab2-0000-4000-8000-0000000000c3 personal aad=7faf8ab2-0000-4000-8000-0000000000c3 bot= url=https://smba.trafficmanager.net/emea/"}},
		{name: "company communicator TeamData", format: ingest.FormatCompanyCommunicator, doc: `[{"PartitionKey":"TeamData","RowKey":"19:team1@thread.skype","TeamId":"19:team1@thread.skype","Name":"Contoso","ServiceUrl":"https://smba.trafficmanager.net/amer/","TenantId":"` + tenant + `"}]`, want: []string{
			"@1 " + tenant + "|19:team1@thread.skype| channel"}},
		{name: "teams sdk minimal records", format: ingest.FormatTeamsSDK, d: ingest.Defaults{TenantID: tenant, ServiceURL: "https://smba.trafficmanager.net/teams"}, doc: "" +
			`{"aadObjectId":"7FAF8AB2-0000-4000-8000-0000000000d1","conversationId":"a:sdk-1"}` + "\n" +
			`{"aadObjectId":"7faf8ab2-0000-4000-8000-0000000000d2","conversationId":"19:d2-bot@unq.gbl.spaces","installedAt":"2026-06-19"}` + "\n", want: []string{
			"@1 " + tenant + "|a:sdk-1|7faf8ab2-0000-4000-8000-0000000000d1 personal aad=7faf8ab2-0000-4000-8000-0000000000d1 bot= url=https://smba.trafficmanager.net/teams",
			"@2 " + tenant + "|19:d2-bot@unq.gbl.spaces|7faf8ab2-0000-4000-8000-0000000000d2 personal"}},
		{name: "teams sdk map keyed by AAD id, default service URL", d: ingest.Defaults{TenantID: tenant}, doc: `{"7faf8ab2-0000-4000-8000-0000000000d1": {"aadObjectId":"7faf8ab2-0000-4000-8000-0000000000d1","conversationId":"a:sdk-1"}}`, want: []string{
			"7faf8ab2-0000-4000-8000-0000000000d1@1 " + tenant + "|a:sdk-1|7faf8ab2-0000-4000-8000-0000000000d1 personal aad=7faf8ab2-0000-4000-8000-0000000000d1 bot= url=" + ingest.DefaultServiceURL}},
		// Sad paths.
		{name: "teams sdk without --tenant", format: ingest.FormatTeamsSDK, doc: `{"aadObjectId":"7faf8ab2-0000-4000-8000-0000000000d1","conversationId":"a:sdk-1"}`, want: []string{
			"@1: missing tenant id (conversation.tenantId; --tenant supplies one"}},
		{name: "bound to another bot", doc: agentsJS, key: jsKey, d: ingest.Defaults{AppID: "00000000-1111-2222-3333-444444444444"}, want: []string{
			`proactive/conversations/a:1xBq-js@1: bound to bot "28:` + appID + `", not --app-id "00000000-1111-2222-3333-444444444444": the Bot Connector would answer "Failed to decrypt conversation ID"`}},
		{name: "not Teams", doc: strings.Replace(botbuilderNET, `"channelId":"msteams"`, `"channelId":"webchat"`, 1), key: "x", want: []string{
			`x@1: channel "webchat" is not Microsoft Teams (msteams)`}},
		{name: "forced format, other record", format: ingest.FormatCompanyCommunicator, doc: agentsNET, key: netKey, want: []string{
			"proactive/conversations/a:1xBq-net@1: not a companycommunicator record: it is an Agents SDK proactive record"}},
		{name: "untrusted service URL", doc: strings.Replace(agentsNET, "https://smba.trafficmanager.net/amer/", "http://evil.example/", 1), key: netKey, want: []string{
			`proactive/conversations/a:1xBq-net@1: service URL "http://evil.example/" is plain http`}},
		{name: "syntax error names its line", doc: "[\n" + agentsNET + ",\n{\"reference\": ]\n]", want: []string{
			"@2 " + tenant + "|a:1xBq-net|29:1GcS4-net", "@3: malformed JSON"}},
		{name: "wrong field type", doc: `{"PartitionKey":"UserData","RowKey":"r","AadId":42}`, key: "UserData/r", want: []string{
			"UserData/r@1: not a store record: field AadId has a JSON number"}},
		{name: "not an object", doc: `"hello"`, key: "k", want: []string{`k@1: not a store record: want a JSON object or array, got a string`}},
		{name: "empty blob", doc: "  \n", key: "k", want: []string{"k@0: empty document"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := decodeAll(t, c.doc, c.key, c.format, c.d)
			if len(got) != len(c.want) {
				var s []string
				for _, f := range got {
					s = append(s, summary(f))
				}
				t.Fatalf("got %d records, want %d:\n%s", len(got), len(c.want), strings.Join(s, "\n"))
			}
			for i, f := range got {
				if s := summary(f); !strings.HasPrefix(s, c.want[i]) {
					t.Errorf("record %d:\n got %s\nwant %s", i, s, c.want[i])
				}
				if f.Reason == "" {
					if err := ingest.Validate(f.Ref); err != nil {
						t.Errorf("record %d does not validate: %v", i, err)
					}
					if len(f.Ref.Raw) == 0 || f.Ref.Raw[0] != '{' {
						t.Errorf("record %d: raw %q", i, f.Ref.Raw)
					}
				}
			}
		})
	}
}

// TestDecodeStoreReadError: an I/O error is an error, not a Found.
func TestDecodeStoreReadError(t *testing.T) {
	r := io.MultiReader(strings.NewReader(`[`+agentsNET+`,`), errReader{})
	var n int
	var got error
	for f, err := range ingest.DecodeStore(r, "", ingest.FormatAuto, ingest.Defaults{}) {
		if err != nil {
			got = err
			break
		}
		n++
		if f.Reason != "" {
			t.Errorf("unexpected %s", summary(f))
		}
	}
	if !errors.Is(got, errBoom) || n != 1 {
		t.Fatalf("got %d records, error %v; want 1 and %v", n, got, errBoom)
	}
}

var errBoom = errors.New("boom")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBoom }

// TestDecodeStoreFiles reads the example exports under testdata/stores,
// which the README points to.
func TestDecodeStoreFiles(t *testing.T) {
	for _, c := range []struct {
		file   string
		format ingest.Format
		refs   int
		types  map[blockreport.ConversationType]int
	}{
		{"agents-state.json", ingest.FormatAuto, 2, map[blockreport.ConversationType]int{"personal": 2}},
		{"cc-userdata.json", ingest.FormatCompanyCommunicator, 3, map[blockreport.ConversationType]int{"personal": 3}},
	} {
		t.Run(c.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "stores", c.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			types := map[blockreport.ConversationType]int{}
			n := 0
			for fd, err := range ingest.DecodeStore(f, "", c.format, ingest.Defaults{TenantID: tenant}) {
				if err != nil {
					t.Fatal(err)
				}
				if fd.Reason != "" {
					t.Errorf("%s", summary(fd))
					continue
				}
				n++
				types[fd.Ref.ConversationType]++
			}
			if n != c.refs || fmt.Sprint(types) != fmt.Sprint(c.types) {
				t.Errorf("got %d refs %v, want %d %v", n, types, c.refs, c.types)
			}
		})
	}
}

// botbuilder-js storage dumps: app keys to references, no $type markers.
const (
	bbJSRef0 = `{"activityId":"f:1","user":{"id":"29:bb-js-0","aadObjectId":"7faf8ab2-0000-4000-8000-0000000000b0"},"bot":{"id":"28:` + appID + `"},"conversation":{"conversationType":"personal","tenantId":"` + tenant + `","id":"a:bb-js-0"},"channelId":"msteams","serviceUrl":"https://smba.trafficmanager.net/amer/"}`
	bbJSRef1 = `{"activityId":"f:2","user":{"id":"29:bb-js-1"},"bot":{"id":"28:` + appID + `"},"conversation":{"conversationType":"personal","tenantId":"` + tenant + `","id":"a:bb-js-1"},"channelId":"msteams","serviceUrl":"https://smba.trafficmanager.net/amer/"}`
	bbJSDump = "{\n  \"conv/0\": " + bbJSRef0 + ",\n  \"conv/1\": " + bbJSRef1 + "\n}\n"
)

func TestDetectStore(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want bool
	}{
		{"botbuilder-js dump", bbJSDump, true},
		{"botbuilder-js dump, compact", `{"conv/0":` + bbJSRef0 + `,"conv/1":` + bbJSRef1 + `}`, true},
		{"botbuilder-js dump, wrapped", `{"users/u1":{"name":"x","ref":` + bbJSRef0 + `}}`, true},
		{"botbuilder-js dump, app data first", `{"settings":{"x":1},"count":2,"conv/0":` + bbJSRef0 + `}`, true},
		{"dump cut by the prefix", `{"conv/0":` + bbJSRef0 + `,"conv/1":{"user":`, true},
		{"$type dump", `{"k":` + botbuilderNET + `}`, true},
		{"teamsfx local file", `{"_` + tenant + `_a:bb-js-0":` + bbJSRef0 + `}`, false},
		{"one reference", bbJSRef0, false},
		{"one pretty reference", "{\n  \"activityId\": \"1\",\n  \"user\": {\"id\": \"29:1\"}\n}", false},
		{"one PascalCase reference", teamsFxNET, false},
		{"json lines", bbJSRef0 + "\n" + bbJSRef1 + "\n", false},
		{"json array", "[" + bbJSRef0 + "]", false},
		{"csv", "tenant_id,user_id\nt,29:1\n", false},
		{"object of non-references", `{"a":{"b":1},"c":{"d":{"e":2}}}`, false},
	} {
		if got := ingest.DetectStore([]byte(c.in)); got != c.want {
			t.Errorf("%s: DetectStore = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestDecodeBotBuilderJSDump reads a botbuilder-js dump without $type
// markers: each key is a reference's, and --app-id applies.
func TestDecodeBotBuilderJSDump(t *testing.T) {
	var got []string
	for _, f := range decodeAll(t, bbJSDump, "", ingest.FormatAuto, ingest.Defaults{AppID: appID}) {
		got = append(got, summary(f))
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], "conv/0@2 "+tenant+"|a:bb-js-0") || !strings.HasPrefix(got[1], "conv/1@3 "+tenant+"|a:bb-js-1") {
		t.Errorf("dump = %q", got)
	}
	fs := decodeAll(t, bbJSDump, "", ingest.FormatBotBuilder, ingest.Defaults{AppID: "0ther"})
	if len(fs) != 2 || !strings.Contains(fs[0].Reason, `bound to bot "28:`+appID+`", not --app-id "0ther"`) {
		t.Errorf("dump for another bot = %+v", fs)
	}
}
