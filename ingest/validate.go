package ingest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	blockreport "github.com/blockreport/blockreport"
)

// MaxIDBytes is the longest id Validate accepts. Ids are index keys, and
// PostgreSQL refuses index rows over about 2.7 kB; Teams ids are a few
// hundred bytes at most. Names, emails and the raw record have no limit:
// the reports cut long text to what a spreadsheet cell holds.
const MaxIDBytes = 512

// maxQuoted is how many bytes of a bad value a problem repeats.
const maxQuoted = 100

// Validate checks that ref can be stored and probed. It does not decide
// whether its service URL may receive the bot's token: the probe's
// allow-list does that.
func Validate(ref blockreport.Reference) error {
	if ref.TenantID == "" {
		return errors.New("missing tenant id (conversation.tenantId)")
	}
	for _, id := range []struct{ name, v string }{
		{"tenant id", ref.TenantID}, {"user id", ref.UserID}, {"AAD object id", ref.AADObjectID},
		{"conversation id", ref.ConversationID}, {"team id", ref.TeamID}, {"bot id", ref.BotID}, {"channel id", ref.ChannelID},
	} {
		if len(id.v) > MaxIDBytes {
			return fmt.Errorf("%s is %d bytes long, more than the %d an id may have", id.name, len(id.v), MaxIDBytes)
		}
	}
	if ref.ServiceURL == "" {
		return errors.New("missing service URL (serviceUrl)")
	}
	if err := checkServiceURL(ref.ServiceURL); err != nil {
		return err
	}
	switch {
	case ref.ConversationType == "":
		return errors.New("missing conversation type (conversation.conversationType)")
	case !ref.ConversationType.Valid():
		return fmt.Errorf("unknown conversation type %s (want personal, groupChat or channel)", quote(string(ref.ConversationType)))
	}
	if ref.ConversationType == blockreport.ConversationPersonal && ref.UserID == "" {
		return errors.New("personal conversation without a user (user.id)")
	}
	// A personal reference may lack the conversation id: the probe
	// creates the 1:1 from the user and tenant.
	if ref.ConversationID == "" && ref.ConversationType != blockreport.ConversationPersonal {
		return fmt.Errorf("%s conversation without a conversation id (conversation.id)", ref.ConversationType)
	}
	for _, f := range []string{ref.TenantID, ref.UserID, ref.AADObjectID, ref.UserName, ref.Email, ref.ConversationID,
		ref.TeamID, ref.ServiceURL, ref.BotID, ref.ChannelID, ref.Locale} {
		if strings.ContainsRune(f, 0) {
			return errors.New("a field contains a NUL character")
		}
	}
	return nil
}

// checkServiceURL accepts an absolute https URL, or http to a loopback
// host for local testing.
func checkServiceURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("service URL %s is not an absolute https URL", quote(s))
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("service URL %s is plain http (allowed only for localhost, 127.0.0.0/8 and ::1)", quote(s))
	}
	return fmt.Errorf("service URL %s is not an absolute https URL", quote(s))
}

// quote quotes s for a problem, cut to maxQuoted bytes.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := strings.ToValidUTF8(s[:maxQuoted], "")
	return strconv.Quote(cut) + fmt.Sprintf("... (%d bytes)", len(s))
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
