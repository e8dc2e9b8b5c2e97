package faketeams

import (
	"encoding/json"
)

// Card is an Adaptive Card the simulated Teams accepted in a message
// activity: what a channel's members would see (blockreport's run summary,
// for example).
type Card struct {
	ConversationID string
	// Summary is the activity's summary (the notification's preview text).
	Summary string
	// Content is the card itself, the attachment's content as sent.
	Content json.RawMessage
}

// cardActivity is the part of a message activity a Card is made from.
type cardActivity struct {
	Type        string `json:"type"`
	Summary     string `json:"summary"`
	Attachments []struct {
		ContentType string          `json:"contentType"`
		Content     json.RawMessage `json:"content"`
	} `json:"attachments"`
}

const adaptiveCardType = "application/vnd.microsoft.card.adaptive"

// recordCards keeps the Adaptive Cards of a message activity that was
// answered with a success (messages.go hands every send over).
func (s *Server) recordCards(convID string, status int, body []byte) {
	if status < 200 || status >= 300 {
		return
	}
	var a cardActivity
	if json.Unmarshal(body, &a) != nil || a.Type != "message" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, att := range a.Attachments {
		if att.ContentType == adaptiveCardType {
			s.cards = append(s.cards, Card{ConversationID: convID, Summary: a.Summary, Content: append(json.RawMessage(nil), att.Content...)})
		}
	}
}

// Cards returns the Adaptive Cards accepted so far, oldest first.
func (s *Server) Cards() []Card {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Card(nil), s.cards...)
}
