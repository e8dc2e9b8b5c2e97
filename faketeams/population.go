package faketeams

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"

	blockreport "github.com/blockreport/blockreport"
)

// State is how a simulated conversation answers the bot.
type State string

// The states a conversation can be in.
const (
	// StateActive answers 2xx: the bot can reach the user.
	StateActive State = "active"
	// StateBlocked answers 403 in the conversation's BlockShape.
	StateBlocked State = "blocked"
	// StateUninstalled answers 403 BotNotInConversationRoster.
	StateUninstalled State = "uninstalled"
	// StateAdminDisabled answers 403 BotDisabledByAdmin (create-conversation
	// still succeeds, as reported in MicrosoftDocs/msteams-docs#7954).
	StateAdminDisabled State = "admin_disabled"
	// StateDeleted answers 404 ConversationNotFound.
	StateDeleted State = "deleted"
	// StateNotInstalled answers 403 ForbiddenOperationException ("Bot isn't
	// installed in user's personal scope").
	StateNotInstalled State = "not_installed"
	// StateForbiddenEmpty answers 403 with an empty body.
	StateForbiddenEmpty State = "forbidden_empty"
	// StateForbiddenOther answers 403 NotEnoughPermissions.
	StateForbiddenOther State = "forbidden_other"
	// StateScripted answers with the next Step of the conversation's Script
	// and repeats the last step once the script is used up.
	StateScripted State = "scripted"
)

// States lists every state.
var States = []State{
	StateActive, StateBlocked, StateUninstalled, StateAdminDisabled, StateDeleted,
	StateNotInstalled, StateForbiddenEmpty, StateForbiddenOther, StateScripted,
}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	for _, v := range States {
		if s == v {
			return true
		}
	}
	return false
}

// BlockShape is the body shape of the 403 a blocked conversation answers.
type BlockShape string

// The body shapes of a block seen in documentation and field reports.
const (
	// BlockEnvelope is {"error":{"code":"ConversationBlockedByUser",...}}.
	BlockEnvelope BlockShape = "envelope"
	// BlockTeamsCRLF is {"errorCode":209,"message":"<JSON with subCode
	// MessageWritesBlocked>"} with \r\n line breaks inside the string.
	BlockTeamsCRLF BlockShape = "teams_crlf"
	// BlockTeamsLF is the same with \n line breaks.
	BlockTeamsLF BlockShape = "teams_lf"
)

// Step is one scripted answer. Either State is set (answer as that state
// would), or Status with an optional Code (envelope error body) or raw Body.
type Step struct {
	State      State  `json:"state,omitempty"`
	Status     int    `json:"status,omitempty"`
	Code       string `json:"code,omitempty"`
	Body       string `json:"body,omitempty"`
	RetryAfter int    `json:"retryAfter,omitempty"` // seconds, sent as Retry-After when > 0
}

// Conversation is one simulated bot conversation with one user (personal)
// or one team/group-chat installation.
type Conversation struct {
	TenantID         string                       `json:"tenantId"`
	UserID           string                       `json:"userId"` // "29:..."
	AADObjectID      string                       `json:"aadObjectId,omitempty"`
	UserName         string                       `json:"userName,omitempty"`
	Email            string                       `json:"email,omitempty"`
	ConversationID   string                       `json:"conversationId"`
	ConversationType blockreport.ConversationType `json:"conversationType"`
	TeamID           string                       `json:"teamId,omitempty"`
	Region           string                       `json:"region,omitempty"` // service URL prefix, default "amer"
	State            State                        `json:"state"`
	BlockShape       BlockShape                   `json:"blockShape,omitempty"`
	Script           []Step                       `json:"script,omitempty"`
	// GCC marks a GCC tenant's conversation: called under any prefix but
	// /gcc/ it answers 403 InvalidBotApiHost.
	GCC bool `json:"gcc,omitempty"`
}

func (c Conversation) validate() error {
	switch {
	case c.TenantID == "":
		return fmt.Errorf("conversation %q: no tenantId", c.ConversationID)
	case c.ConversationID == "":
		return fmt.Errorf("user %q: no conversationId", c.UserID)
	case c.UserID == "":
		return fmt.Errorf("conversation %q: no userId", c.ConversationID)
	case !c.ConversationType.Valid():
		return fmt.Errorf("conversation %q: unknown conversationType %q", c.ConversationID, c.ConversationType)
	case !c.State.Valid():
		return fmt.Errorf("conversation %q: unknown state %q", c.ConversationID, c.State)
	case c.State == StateScripted && len(c.Script) == 0:
		return fmt.Errorf("conversation %q: state scripted without a script", c.ConversationID)
	}
	switch c.BlockShape {
	case "", BlockEnvelope, BlockTeamsCRLF, BlockTeamsLF:
	default:
		return fmt.Errorf("conversation %q: unknown blockShape %q", c.ConversationID, c.BlockShape)
	}
	for i, st := range c.Script {
		if st.State == StateScripted || (st.State != "" && !st.State.Valid()) {
			return fmt.Errorf("conversation %q: script step %d: bad state %q", c.ConversationID, i, st.State)
		}
		if st.State == "" && (st.Status < 100 || st.Status > 599) {
			return fmt.Errorf("conversation %q: script step %d: no state and bad status %d", c.ConversationID, i, st.Status)
		}
	}
	return nil
}

// ReadPopulation reads conversations as JSON Lines (one Conversation per
// line; blank lines are skipped).
func ReadPopulation(r io.Reader) ([]Conversation, error) {
	var out []Conversation
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		b := strings.TrimSpace(sc.Text())
		if b == "" {
			continue
		}
		var c Conversation
		if err := json.Unmarshal([]byte(b), &c); err != nil {
			return nil, fmt.Errorf("population line %d: %w", line, err)
		}
		if c.State == "" {
			c.State = StateActive
		}
		if err := c.validate(); err != nil {
			return nil, fmt.Errorf("population line %d: %w", line, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read population: %w", err)
	}
	return out, nil
}

// WritePopulation writes conversations as JSON Lines, the format
// ReadPopulation reads.
func WritePopulation(w io.Writer, convs []Conversation) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, c := range convs {
		if err := enc.Encode(c); err != nil {
			return fmt.Errorf("write population: %w", err)
		}
	}
	return bw.Flush()
}

// GenerateOptions describes a generated population. The shares are
// fractions of Users (0.06 = 6 %); the rest is active.
type GenerateOptions struct {
	Users   int // number of conversations
	Tenants int // default 1
	// Shares of conversations in each state. Transient conversations are
	// scripted: one retriable failure (503, 502, 504, 412 or 429), then active.
	Blocked, Uninstalled, AdminDisabled, Deleted, Transient float64
	// TeamShare is the share of conversations that are team (channel) or
	// group-chat installations instead of 1:1 chats.
	TeamShare float64
	Seed      uint64
	Region    string // default "amer"
}

// Generate returns a seeded population: the same options give the same
// conversations. Each state gets exactly round(share × Users)
// conversations, placed at random.
func Generate(opts GenerateOptions) []Conversation {
	if opts.Users <= 0 {
		return nil
	}
	if opts.Tenants <= 0 {
		opts.Tenants = 1
	}
	if opts.Region == "" {
		opts.Region = "amer"
	}
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	n := opts.Users

	type tenant struct{ id, domain string }
	tenants := make([]tenant, opts.Tenants)
	for i := range tenants {
		d := tenantDomains[i%len(tenantDomains)]
		if i >= len(tenantDomains) {
			d = fmt.Sprintf("%s%d", d, i/len(tenantDomains)+1)
		}
		tenants[i] = tenant{id: guid(rng), domain: d + ".example"}
	}

	// Exact counts per state, then shuffled.
	states := make([]State, 0, n)
	for _, s := range []struct {
		st    State
		share float64
	}{
		{StateBlocked, opts.Blocked}, {StateUninstalled, opts.Uninstalled},
		{StateAdminDisabled, opts.AdminDisabled}, {StateDeleted, opts.Deleted},
		{StateScripted, opts.Transient},
	} {
		k := int(math.Round(s.share * float64(n)))
		for i := 0; i < k && len(states) < n; i++ {
			states = append(states, s.st)
		}
	}
	for len(states) < n {
		states = append(states, StateActive)
	}
	rng.Shuffle(n, func(i, j int) { states[i], states[j] = states[j], states[i] })
	teams := int(math.Round(opts.TeamShare * float64(n)))
	isTeam := make([]bool, n)
	for i := 0; i < teams && i < n; i++ {
		isTeam[i] = true
	}
	rng.Shuffle(n, func(i, j int) { isTeam[i], isTeam[j] = isTeam[j], isTeam[i] })

	emails := make(map[string]int)
	out := make([]Conversation, n)
	for i := range out {
		t := tenants[i%len(tenants)]
		first := firstNames[rng.IntN(len(firstNames))]
		last := lastNames[rng.IntN(len(lastNames))]
		fd, fa, _ := strings.Cut(first, "|")
		ld, la, _ := strings.Cut(last, "|")
		name := fd + " " + ld
		if rng.IntN(40) == 0 {
			name += " " + emoji[rng.IntN(len(emoji))]
		}
		local := fa + "." + la
		key := local + "@" + t.domain
		emails[key]++
		if k := emails[key]; k > 1 {
			local = fmt.Sprintf("%s%d", local, k)
		}
		c := Conversation{
			TenantID:         t.id,
			UserID:           "29:1" + opaque(rng, 60),
			AADObjectID:      guid(rng),
			UserName:         name,
			Email:            local + "@" + t.domain,
			ConversationID:   "a:1" + opaque(rng, 60),
			ConversationType: blockreport.ConversationPersonal,
			Region:           opts.Region,
			State:            states[i],
		}
		if isTeam[i] {
			if rng.IntN(3) == 0 {
				c.ConversationType = blockreport.ConversationGroupChat
				c.ConversationID = "19:" + hexString(rng, 32) + "@thread.v2"
			} else {
				c.ConversationType = blockreport.ConversationChannel
				c.ConversationID = "19:" + opaque(rng, 32) + "@thread.tacv2"
				c.TeamID = c.ConversationID
			}
		}
		switch c.State {
		case StateBlocked:
			c.BlockShape = []BlockShape{BlockEnvelope, BlockEnvelope, BlockTeamsCRLF, BlockTeamsLF}[rng.IntN(4)]
		case StateScripted:
			fail := transientSteps[rng.IntN(len(transientSteps))]
			c.Script = []Step{fail, {State: StateActive}}
		}
		out[i] = c
	}
	return out
}

var transientSteps = []Step{
	{Status: 503},
	{Status: 502, Code: "ServiceError"},
	{Status: 504},
	{Status: 412, Code: "PreconditionFailed"},
	{Status: 429, Code: "Throttled", RetryAfter: 1},
}

const opaqueChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func opaque(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = opaqueChars[rng.IntN(len(opaqueChars))]
	}
	return string(b)
}

func hexString(rng *rand.Rand, n int) string {
	const hex = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = hex[rng.IntN(16)]
	}
	return string(b)
}

func guid(rng *rand.Rand) string {
	h := hexString(rng, 32)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-" + h[16:20] + "-" + h[20:32]
}

var tenantDomains = []string{
	"contoso", "fabrikam", "northwind", "adatum", "tailspin", "woodgrove",
	"litware", "proseware", "wingtip", "fourthcoffee", "alpineski", "lucerne",
}

// Names are "Display|ascii" so emails stay ASCII.
var firstNames = []string{
	"Megan|megan", "Adele|adele", "Alex|alex", "Diego|diego", "Isaiah|isaiah",
	"Johanna|johanna", "Lidia|lidia", "Lynne|lynne", "Nestor|nestor", "Patti|patti",
	"José|jose", "Zoë|zoe", "Łukasz|lukasz", "Søren|soren", "Chloé|chloe",
	"Ngozi|ngozi", "Aiko|aiko", "Mateus|mateus", "Priya|priya", "Oğuz|oguz",
	"Renée|renee", "Björn|bjorn", "Wei|wei", "Fatima|fatima", "Siobhán|siobhan",
	"Kwame|kwame", "Ana|ana", "Dmitri|dmitri", "Élodie|elodie", "Hiroshi|hiroshi",
}

var lastNames = []string{
	"Bowen|bowen", "Vance|vance", "Wilber|wilber", "Siciliani|siciliani",
	"Langer|langer", "Lauer|lauer", "Holloway|holloway", "Robinson|robinson",
	"Kowalski|kowalski", "Müller|muller", "Nguyễn|nguyen", "García|garcia",
	"Okafor|okafor", "Tanaka|tanaka", "Sørensen|sorensen", "Da Silva|dasilva",
	"Patel|patel", "Yılmaz|yilmaz", "O'Brien|obrien", "Lefèvre|lefevre",
	"Andersson|andersson", "Chen|chen", "Haddad|haddad", "Mensah|mensah",
	"Ivanova|ivanova", "Dubois|dubois", "Sato|sato", "Fernández|fernandez",
}

var emoji = []string{"🚀", "🌻", "☕", "🎧", "🏔️"}

// conversationReference is a botbuilder ConversationReference as a bot
// stores it, with the user's email added under user.email and, for channel
// conversations, the team id under channelData.team.id.
type conversationReference struct {
	ActivityID   string                `json:"activityId"`
	User         referenceAccount      `json:"user"`
	Bot          referenceAccount      `json:"bot"`
	Conversation referenceConversation `json:"conversation"`
	ChannelID    string                `json:"channelId"`
	Locale       string                `json:"locale"`
	ServiceURL   string                `json:"serviceUrl"`
	ChannelData  *referenceChannelData `json:"channelData,omitempty"`
}

type referenceAccount struct {
	ID          string `json:"id"`
	Name        string `json:"name,omitempty"`
	AADObjectID string `json:"aadObjectId,omitempty"`
	Email       string `json:"email,omitempty"`
}

type referenceConversation struct {
	ID               string `json:"id"`
	ConversationType string `json:"conversationType"`
	TenantID         string `json:"tenantId"`
	IsGroup          bool   `json:"isGroup,omitempty"`
}

type referenceChannelData struct {
	Team *struct {
		ID string `json:"id"`
	} `json:"team,omitempty"`
	Tenant struct {
		ID string `json:"id"`
	} `json:"tenant"`
}
