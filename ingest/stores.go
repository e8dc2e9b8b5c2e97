package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/url"
	"strings"

	blockreport "github.com/blockreport/blockreport"
)

// The formats of the stores bots keep their references in (see
// DecodeStore). Each also reads what FormatAuto detects as that store.
const (
	// FormatAgents is the Microsoft 365 Agents SDK's proactive records
	// (.NET and JS): values {reference, claims} under keys
	// "proactive/conversations/<conversation id>", one per blob, a JS
	// FileStorage state.json (key to value), or a Cosmos DB export
	// ({id, realId, document}, as an array or JSON Lines). Turn state kept
	// in the same store is skipped.
	FormatAgents Format = "agents"
	// FormatBotBuilder is a Bot Framework SDK (botbuilder-js/-dotnet)
	// storage dump: app-defined keys to ConversationReferences, possibly
	// wrapped one level down, with Newtonsoft's $type/$values markers.
	FormatBotBuilder Format = "botbuilder"
	// FormatTeamsFxTable is the TeamsFx large-scale notification sample's
	// Azure Table (RowKey "_<tenantId>_<conversationId>", columns userId,
	// conversationType, conversationId, tenantId, serviceUrl), exported as
	// JSON. TeamsFx's Blob sample stores one ConversationReference per blob.
	FormatTeamsFxTable Format = "teamsfx-table"
	// FormatCompanyCommunicator is Company Communicator's UserData table
	// (PartitionKey UserData; AadId, UserId, ConversationId, ServiceUrl,
	// TenantId, UserType, Name, Email, Upn) or TeamData table (TeamId, Name,
	// ServiceUrl, TenantId), exported as JSON.
	FormatCompanyCommunicator Format = "companycommunicator"
	// FormatTeamsSDK is what Teams SDK (teams.ts/.net/.py) apps are told to
	// keep: {aadObjectId, conversationId}; the tenant and service URL come
	// from Defaults.
	FormatTeamsSDK Format = "teamssdk"
)

// StoreFormats lists the store formats, for usage messages.
var StoreFormats = []Format{FormatAgents, FormatBotBuilder, FormatTeamsFxTable, FormatCompanyCommunicator, FormatTeamsSDK}

// IsStoreFormat reports whether f is read by DecodeStore (every store
// format, and auto).
func IsStoreFormat(f Format) bool {
	for _, s := range StoreFormats {
		if f == s {
			return true
		}
	}
	return f == FormatAuto
}

// AgentsKeyPrefix is the key prefix of the Agents SDK's proactive records.
const AgentsKeyPrefix = "proactive/conversations/"

// DefaultServiceURL is the public cloud's global Bot Connector URL, for
// records that do not say theirs (teams-api §5).
const DefaultServiceURL = "https://smba.trafficmanager.net/teams/"

// Defaults fills what a store's records lack and says which bot they must
// belong to.
type Defaults struct {
	// TenantID is used for records without a tenant (Teams SDK apps keep
	// none; single-tenant bots have one).
	TenantID string
	// ServiceURL is used for records without a service URL; empty means
	// DefaultServiceURL.
	ServiceURL string
	// AppID, when set, is the bot's app id: a reference bound to another
	// bot is rejected, as the Bot Connector would answer it "Failed to
	// decrypt conversation ID".
	AppID string
}

// Found is one record read from a store document: a reference, or why
// there is none (Reason). Skipped records (turn state, author rows) are
// not Found at all.
type Found struct {
	// Key is the record's key in its store: the map key or blob name
	// (URL-decoded), a Cosmos realId, or PartitionKey/RowKey of a table
	// entity; "" when the record has none.
	Key string
	// Line is where the record starts in its document (1 for a document
	// that is one record).
	Line   int
	Ref    blockreport.Reference
	Reason string
}

// DecodeStore reads the records of one store document: a blob body (key is
// its name as BlobKey decodes it), a table entity as JSON (key
// "PartitionKey/RowKey"), or a whole exported file (key ""). It streams: the
// document may be large. A syntax error ends the document with a Found
// carrying the reason; err is only for reading r.
func DecodeStore(r io.Reader, key string, format Format, d Defaults) iter.Seq2[Found, error] {
	return func(yield func(Found, error) bool) {
		docKey := key
		for el, err := range elements(&errReader{r: r}) {
			if err != nil {
				if re, ok := err.(readError); ok {
					yield(Found{}, re.err)
					return
				}
				if !yield(Found{Key: docKey, Line: el.Line, Reason: err.Error()}, nil) {
					return
				}
				continue
			}
			k := docKey
			if el.Key != "" {
				k = el.Key
			}
			for _, f := range decodeRecord(el.Raw, k, format, d) {
				if f.Line == 0 {
					f.Line = el.Line
				}
				if !yield(f, nil) {
					return
				}
			}
		}
	}
}

// errReader marks read errors so that DecodeStore can tell them from JSON
// syntax errors.
type errReader struct{ r io.Reader }

type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		return n, readError{err}
	}
	return n, err
}

// BlobKey turns a blob name into the store key it was made from: the
// Agents SDK .NET and botbuilder-dotnet URL-encode keys with lower-case hex
// and "+" for spaces, the JS SDKs with encodeURIComponent and (Agents JS) a
// leading "/". A name that does not decode is returned as it is.
func BlobKey(name string) string {
	if strings.Contains(name, "%") || strings.Contains(name, "+") {
		if k, err := url.QueryUnescape(name); err == nil {
			name = k
		}
	}
	return strings.TrimPrefix(name, "/")
}

// storeRecord is the union of the record shapes DecodeStore reads.
// encoding/json matches names without case, so one field reads a table's
// PascalCase column and a JSON reference's camelCase member alike.
type storeRecord struct {
	// Agents SDK proactive record.
	Reference json.RawMessage `json:"reference"`
	Claims    json.RawMessage `json:"claims"`
	// Cosmos DB document.
	RealID   string          `json:"realId"`
	Document json.RawMessage `json:"document"`
	// Table entity (Company Communicator, TeamsFx large-scale sample).
	PartitionKey     string `json:"PartitionKey"`
	RowKey           string `json:"RowKey"`
	AadID            string `json:"AadId"`
	UserID           string `json:"UserId"`
	ConversationID   string `json:"ConversationId"`
	ServiceURL       string `json:"ServiceUrl"`
	TenantID         string `json:"TenantId"`
	UserType         string `json:"UserType"`
	Name             string `json:"Name"`
	Email            string `json:"Email"`
	Upn              string `json:"Upn"`
	TeamID           string `json:"TeamId"`
	ConversationType string `json:"conversationType"`
	// Teams SDK app record.
	AADObjectID string `json:"aadObjectId"`
	// ConversationReference.
	Conversation json.RawMessage `json:"conversation"`
	User         json.RawMessage `json:"user"`
	Bot          json.RawMessage `json:"bot"`
	Agent        json.RawMessage `json:"agent"`
	ChannelID    string          `json:"channelId"`
}

// kinds of record.
type recordKind int

const (
	kindNone recordKind = iota
	kindCosmos
	kindAgents
	kindReference
	kindCCUser
	kindCCTeam
	kindCCOther // AuthorData, UsersSyncData, AppConfig: not recipients
	kindTeamsFxRow
	kindTeamsSDK
)

func (k recordKind) String() string {
	switch k {
	case kindCosmos:
		return "a Cosmos DB document"
	case kindAgents:
		return "an Agents SDK proactive record"
	case kindReference:
		return "a ConversationReference"
	case kindCCUser:
		return "a Company Communicator UserData row"
	case kindCCTeam:
		return "a Company Communicator TeamData row"
	case kindCCOther:
		return "a Company Communicator row"
	case kindTeamsFxRow:
		return "a TeamsFx table row"
	case kindTeamsSDK:
		return "a Teams SDK record"
	}
	return "no known record"
}

// accepts says which kinds each format reads (auto reads all).
func accepts(f Format, k recordKind) bool {
	switch f {
	case FormatAuto, "":
		return true
	case FormatAgents:
		return k == kindCosmos || k == kindAgents
	case FormatBotBuilder:
		return k == kindCosmos || k == kindReference
	case FormatTeamsFxTable:
		return k == kindTeamsFxRow
	case FormatCompanyCommunicator:
		return k == kindCCUser || k == kindCCTeam || k == kindCCOther
	case FormatTeamsSDK:
		return k == kindTeamsSDK
	}
	return false
}

func present(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

func classify(r *storeRecord) recordKind {
	switch {
	case r.RealID != "" && present(r.Document):
		return kindCosmos
	case present(r.Reference):
		return kindAgents
	case present(r.Conversation) || present(r.Bot) || present(r.Agent) || present(r.User):
		return kindReference
	case r.PartitionKey == "UserData" || r.AadID != "":
		return kindCCUser
	case r.PartitionKey == "TeamData" || r.TeamID != "":
		return kindCCTeam
	case r.PartitionKey == "AuthorData" || r.PartitionKey == "UsersSyncData" || r.PartitionKey == "Settings":
		return kindCCOther
	case (r.PartitionKey != "" || r.RowKey != "") && (r.ConversationID != "" || r.UserID != ""):
		return kindTeamsFxRow
	case r.AADObjectID != "" || (r.ConversationID != "" && r.PartitionKey == ""):
		return kindTeamsSDK
	}
	return kindNone
}

// stateKey reports whether key names bot turn state rather than a
// reference: "{channel}/conversations/…", "{channel}/users/…",
// "{channel}/{agent}/conversations/…".
func stateKey(key string) bool {
	if strings.HasPrefix(key, AgentsKeyPrefix) {
		return false
	}
	parts := strings.SplitN(key, "/", 4)
	if len(parts) < 2 || parts[0] == "" {
		return false
	}
	if parts[1] == "conversations" || parts[1] == "users" {
		return true
	}
	return len(parts) >= 3 && (parts[2] == "conversations" || parts[2] == "users")
}

// decodeRecord reads one record stored under key.
func decodeRecord(raw json.RawMessage, key string, format Format, d Defaults) []Found {
	return decodeDepth(raw, key, format, d, 0)
}

func decodeDepth(raw json.RawMessage, key string, format Format, d Defaults, depth int) []Found {
	bad := func(reason string) []Found {
		if stateKey(key) {
			return nil // turn state, not a reference
		}
		return []Found{{Key: key, Reason: reason}}
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if stateKey(key) {
			return nil
		}
		return bad("not a store record: want a JSON object")
	}
	var rec storeRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return bad(fmt.Sprintf("not a store record: field %s has a JSON %s", te.Field, te.Value))
		}
		return bad("malformed JSON: " + jsonReason(err))
	}
	kind := classify(&rec)
	if kind == kindNone && depth == 0 {
		// botbuilder apps often keep the reference inside their own item:
		// look one level down.
		if inner, ok := wrapped(raw); ok && accepts(format, kindReference) {
			return decodeDepth(inner, key, format, d, depth+1)
		}
	}
	if kind == kindNone {
		if stateKey(key) || format == FormatAgents {
			return nil // turn state or app data in the same store
		}
		return bad("not a conversation reference: no reference, conversation, realId or table columns")
	}
	if !accepts(format, kind) {
		if format == FormatAgents && kind == kindReference && !strings.HasPrefix(key, AgentsKeyPrefix) {
			return nil // a plain reference in turn state
		}
		return bad(fmt.Sprintf("not a %s record: it is %s", format, kind))
	}
	var ref blockreport.Reference
	var err error
	switch kind {
	case kindCosmos:
		// Never recompute an escaped id: realId is the key.
		return decodeDepth(rec.Document, BlobKey(rec.RealID), format, d, depth)
	case kindAgents:
		ref, err = fromJSON(rec.Reference, "")
		if err == nil {
			if ref.BotID == "" {
				ref.BotID = agentOf(rec.Reference)
			}
			if ref.BotID == "" {
				ref.BotID = audience(rec.Claims)
			}
		}
	case kindReference:
		ref, err = fromJSON(raw, teamsFxKey(key))
		if err == nil && ref.BotID == "" {
			ref.BotID = agentOf(raw)
		}
	case kindCCUser:
		if rec.PartitionKey != "" && rec.PartitionKey != "UserData" {
			return nil
		}
		aad := rec.AadID
		if aad == "" {
			aad = rec.RowKey // CC keeps the AAD id as the RowKey
		}
		ref = blockreport.Reference{
			TenantID: rec.TenantID, UserID: rec.UserID, AADObjectID: aad, UserName: rec.Name,
			Email: firstOf(rec.Email, rec.Upn), ConversationID: rec.ConversationID,
			ConversationType: blockreport.ConversationPersonal, ServiceURL: rec.ServiceURL, ChannelID: "msteams",
		}
	case kindCCTeam:
		team := firstOf(rec.TeamID, rec.RowKey)
		ref = blockreport.Reference{
			TenantID: rec.TenantID, ConversationID: team, TeamID: team, UserName: "",
			ConversationType: blockreport.ConversationChannel, ServiceURL: rec.ServiceURL, ChannelID: "msteams",
		}
	case kindCCOther:
		return nil
	case kindTeamsFxRow:
		ref = blockreport.Reference{
			TenantID: firstOf(rec.TenantID, tenantFromKey(rec.RowKey)), UserID: rec.UserID,
			ConversationID:   firstOf(rec.ConversationID, conversationFromKey(rec.RowKey)),
			ConversationType: blockreport.ConversationType(rec.ConversationType), ServiceURL: rec.ServiceURL,
			ChannelID: "msteams",
		}
	case kindTeamsSDK:
		ref = blockreport.Reference{
			TenantID: rec.TenantID, UserID: rec.UserID, AADObjectID: rec.AADObjectID, ConversationID: rec.ConversationID,
			ConversationType: blockreport.ConversationPersonal, ServiceURL: rec.ServiceURL, ChannelID: "msteams",
		}
	}
	if err != nil {
		return bad(err.Error())
	}
	if reason := complete(&ref, d); reason != "" {
		return bad(reason)
	}
	ref.Raw = json.RawMessage(bytes.TrimSpace(raw))
	return []Found{{Key: key, Ref: ref}}
}

// wrapped returns the first member of an object that is itself a
// reference or an Agents record ({"reference": {...}} and the like).
func wrapped(raw json.RawMessage) (json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil, false
	}
	for _, v := range m {
		if !isObject(v) {
			continue
		}
		var inner storeRecord
		if json.Unmarshal(v, &inner) != nil {
			continue
		}
		if k := classify(&inner); k == kindReference || k == kindAgents {
			return v, true
		}
	}
	return nil, false
}

// teamsFxKey returns key if it is a TeamsFx key "_<tenantId>_<conversationId>".
func teamsFxKey(key string) string {
	if strings.HasPrefix(key, "_") && strings.Count(key, "_") >= 2 {
		return key
	}
	return ""
}

// agentOf returns the JS Agents SDK's agent.id of a reference.
func agentOf(raw json.RawMessage) string {
	var r struct {
		Agent *struct {
			ID string `json:"id"`
		} `json:"agent"`
	}
	if json.Unmarshal(raw, &r) == nil && r.Agent != nil {
		return r.Agent.ID
	}
	return ""
}

// audience returns the bot app id an Agents record's claims name (aud, or
// appid/azp of the inbound token), if the reference names no bot.
func audience(raw json.RawMessage) string {
	var c map[string]any
	if !present(raw) || json.Unmarshal(raw, &c) != nil {
		return ""
	}
	if s, ok := c["aud"].(string); ok && s != "" && !strings.Contains(s, "://") {
		return s
	}
	return ""
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// complete applies the store rules to a decoded reference and validates
// it; it returns why the record cannot be imported, or "".
func complete(ref *blockreport.Reference, d Defaults) string {
	if ref.ChannelID != "" && !strings.EqualFold(ref.ChannelID, "msteams") {
		return fmt.Sprintf("channel %s is not Microsoft Teams (msteams)", quote(ref.ChannelID))
	}
	if ref.TenantID == "" {
		ref.TenantID = d.TenantID
	}
	if ref.ServiceURL == "" {
		ref.ServiceURL = firstOf(d.ServiceURL, DefaultServiceURL)
	}
	ref.AADObjectID = strings.ToLower(ref.AADObjectID)
	if ref.ConversationType == "" {
		ref.ConversationType = typeFromID(ref.ConversationID)
		if ref.ConversationType == "" && ref.ConversationID == "" && (ref.UserID != "" || ref.AADObjectID != "") {
			ref.ConversationType = blockreport.ConversationPersonal
		}
	}
	if ref.ConversationType == blockreport.ConversationPersonal && ref.UserID == "" && ref.AADObjectID != "" {
		// No Teams user id (29:): the Bot Connector takes the Entra object
		// id as the member id when it creates the 1:1, so it stands in.
		ref.UserID = ref.AADObjectID
	}
	if reason := otherBot(ref.BotID, d.AppID); reason != "" {
		return reason
	}
	normalize(ref)
	if ref.TenantID == "" {
		return "missing tenant id (conversation.tenantId; --tenant supplies one for records without)"
	}
	if err := Validate(*ref); err != nil {
		return err.Error()
	}
	return ""
}

// typeFromID infers a conversation's type from its id (reference-stores
// §10): a: ids and 19:…@unq.gbl.spaces are 1:1 chats, @thread.v2 and
// meetings group chats, @thread.tacv2/@thread.skype channels.
func typeFromID(id string) blockreport.ConversationType {
	switch {
	case id == "":
		return ""
	case strings.HasPrefix(id, "a:"), strings.HasSuffix(id, "@unq.gbl.spaces"):
		return blockreport.ConversationPersonal
	case strings.HasPrefix(id, "19:meeting_"), strings.Contains(id, "@thread.v2"):
		return blockreport.ConversationGroupChat
	case strings.Contains(id, "@thread.tacv2"), strings.Contains(id, "@thread.skype"):
		return blockreport.ConversationChannel
	}
	return ""
}

// otherBot returns why a reference bound to botID cannot be imported for
// the bot appID, or "" if it can (either is empty, or they are the same bot).
func otherBot(botID, appID string) string {
	if appID == "" || botID == "" || sameBot(botID, appID) {
		return ""
	}
	return fmt.Sprintf("bound to bot %s, not --app-id %s: the Bot Connector would answer \"Failed to decrypt conversation ID\"",
		quote(botID), quote(appID))
}

// sameBot compares bot ids with or without the "28:" prefix.
func sameBot(a, b string) bool {
	return strings.EqualFold(strings.TrimPrefix(a, "28:"), strings.TrimPrefix(b, "28:"))
}

// storeMarkers are JSON member names (lower case) that only store records
// have, never a ConversationReference, a TeamsFx file or CSV.
var storeMarkers = []string{`"reference"`, `"realid"`, `"partitionkey"`, `"rowkey"`, `"aadid"`, `"odata.etag"`,
	`"odata.metadata"`, `"proactive/conversations/`, `"$type"`}

// DetectStore reports whether a file starting with prefix is a store's
// (for FormatAuto): an Agents SDK record or state.json, a Cosmos DB or table
// export, a botbuilder dump ($type-marked, or app keys to references as
// botbuilder-js writes it), or Teams SDK records ({aadObjectId,
// conversationId} with no conversation object).
func DetectStore(prefix []byte) bool {
	lower := bytes.ToLower(prefix)
	for _, m := range storeMarkers {
		if bytes.Contains(lower, []byte(m)) {
			return true
		}
	}
	if bytes.Contains(lower, []byte(`"conversationid"`)) && bytes.Contains(lower, []byte(`"aadobjectid"`)) &&
		!bytes.Contains(lower, []byte(`"conversation"`)) {
		return true
	}
	return keyedReferences(prefix)
}

// lowerFirst turns a PascalCase member name (TeamsFx .NET's) into camelCase.
func lowerFirst(k string) string {
	if k == "" {
		return k
	}
	return strings.ToLower(k[:1]) + k[1:]
}

// keyedReferences reports whether prefix starts a JSON object whose members
// are app-defined keys to ConversationReferences (or to objects wrapping
// one a level down): a botbuilder storage dump without $type markers. A
// reference itself (a member named like a reference's field) and the
// TeamsFx notification store (keys "_<tenantId>_<conversationId>", which
// Read reads) are not.
func keyedReferences(prefix []byte) bool {
	prefix = bytes.TrimLeft(prefix, "\xef\xbb\xbf \t\r\n")
	if len(prefix) == 0 || prefix[0] != '{' {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(prefix))
	if _, err := dec.Token(); err != nil {
		return false
	}
	found := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		k, _ := tok.(string)
		if isReferenceField(k) || isReferenceField(lowerFirst(k)) || strings.HasPrefix(k, "_") {
			return false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break // cut by the prefix, or bad JSON
		}
		if found || !isObject(v) {
			continue
		}
		var rec storeRecord
		if json.Unmarshal(v, &rec) != nil {
			continue
		}
		if classify(&rec) == kindReference {
			found = true
		} else if _, ok := wrapped(v); ok {
			found = true
		}
	}
	return found
}
