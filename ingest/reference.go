package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	blockreport "github.com/blockreport/blockreport"
)

// conversationReference is the JSON of a botbuilder ConversationReference.
// Some bots store extra fields next to the standard ones; those read here
// (channelData, teamId, email, userPrincipalName) are optional.
type conversationReference struct {
	ActivityID   string        `json:"activityId"`
	User         *account      `json:"user"`
	Bot          *account      `json:"bot"`
	Conversation *conversation `json:"conversation"`
	ChannelID    string        `json:"channelId"`
	Locale       string        `json:"locale"`
	ServiceURL   string        `json:"serviceUrl"`
	TeamID       string        `json:"teamId"`
	ChannelData  *channelData  `json:"channelData"`
}

type account struct {
	ID                string `json:"id"`
	Name              string `json:"name"`
	AADObjectID       string `json:"aadObjectId"`
	Email             string `json:"email"`
	UserPrincipalName string `json:"userPrincipalName"`
}

type conversation struct {
	ID               string `json:"id"`
	ConversationType string `json:"conversationType"`
	TenantID         string `json:"tenantId"`
	IsGroup          bool   `json:"isGroup"`
	TeamID           string `json:"teamId"`
}

type channelData struct {
	Team   *struct{ ID string } `json:"team"`
	Tenant *struct{ ID string } `json:"tenant"`
}

// fromJSON converts one ConversationReference. key is its TeamsFx store
// key ("_<tenantId>_<conversationId>"), or "".
func fromJSON(raw []byte, key string) (blockreport.Reference, error) {
	var ref blockreport.Reference
	var cr conversationReference
	err := json.Unmarshal(raw, &cr)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return ref, fmt.Errorf("malformed JSON: %s", jsonReason(err))
	}
	if bytes.TrimSpace(raw)[0] != '{' {
		return ref, errors.New("not a conversation reference: want a JSON object")
	}
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return ref, fmt.Errorf("not a conversation reference: field %s has a JSON %s", te.Field, te.Value)
		}
		return ref, fmt.Errorf("not a conversation reference: %s", jsonReason(err))
	}
	ref.ChannelID = cr.ChannelID
	ref.Locale = cr.Locale
	ref.ServiceURL = cr.ServiceURL
	ref.TeamID = cr.TeamID
	if cr.Bot != nil {
		ref.BotID = cr.Bot.ID
	}
	if c := cr.Conversation; c != nil {
		ref.ConversationID = c.ID
		ref.ConversationType = blockreport.ConversationType(c.ConversationType)
		ref.TenantID = c.TenantID
		if ref.TeamID == "" {
			ref.TeamID = c.TeamID
		}
	}
	if d := cr.ChannelData; d != nil {
		if ref.TeamID == "" && d.Team != nil {
			ref.TeamID = d.Team.ID
		}
		if ref.TenantID == "" && d.Tenant != nil {
			ref.TenantID = d.Tenant.ID
		}
	}
	if ref.TenantID == "" && key != "" {
		ref.TenantID = tenantFromKey(key)
	}
	if ref.ConversationID == "" && key != "" {
		ref.ConversationID = conversationFromKey(key)
	}
	if u := cr.User; u != nil {
		ref.UserID, ref.UserName, ref.AADObjectID = u.ID, u.Name, u.AADObjectID
		ref.Email = u.Email
		if ref.Email == "" {
			ref.Email = u.UserPrincipalName
		}
	}
	normalize(&ref)
	ref.Raw = json.RawMessage(bytes.TrimSpace(raw))
	return ref, nil
}

// tenantFromKey returns the tenant of a TeamsFx key
// "_<tenantId>_<conversationId>" (tenant ids are GUIDs: no "_").
func tenantFromKey(key string) string {
	t, _, _ := strings.Cut(strings.TrimPrefix(key, "_"), "_")
	return t
}

func conversationFromKey(key string) string {
	_, c, _ := strings.Cut(strings.TrimPrefix(key, "_"), "_")
	return c
}

// normalize applies the rules every format shares.
//
// A reference to a channel or group chat is about the conversation, not the
// user who last spoke in it, so its user fields are dropped and one row is
// kept per conversation. A channel reference taken inside a reply chain has
// ";messageid=..." appended to the channel's id; the channel itself is what
// is stored. A reference without a type but with a user and no conversation
// is a 1:1 the probe will create, so it is personal.
func normalize(ref *blockreport.Reference) {
	if ref.ConversationType == "" && ref.ConversationID == "" && ref.UserID != "" {
		ref.ConversationType = blockreport.ConversationPersonal
	}
	if ref.ConversationType == blockreport.ConversationChannel || ref.ConversationType == blockreport.ConversationGroupChat {
		ref.UserID, ref.UserName, ref.AADObjectID, ref.Email = "", "", "", ""
	}
	if ref.ConversationType == blockreport.ConversationChannel {
		ref.ConversationID, _, _ = strings.Cut(ref.ConversationID, ";messageid=")
	}
}
