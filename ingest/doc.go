// Package ingest reads conversation references from the files bots keep
// them in and checks that each can be stored and probed.
//
// Parse reads Bot Framework ConversationReference objects (as
// botbuilder's TurnContext.getConversationReference produces them) from a
// JSON array or JSON Lines, the TeamsFx notification store
// (.notification.localstore.json), or CSV with a header row. A record that
// cannot be read or fails Validate becomes a Problem naming its file and
// line; the import command decides whether that rejects the whole import.
package ingest
