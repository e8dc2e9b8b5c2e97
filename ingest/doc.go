// Package ingest reads conversation references from the files bots keep
// them in and checks that each can be stored and probed.
//
// Read streams Bot Framework ConversationReference objects (as
// botbuilder's TurnContext.getConversationReference produces them) from a
// JSON array or JSON Lines, the TeamsFx notification store
// (.notification.localstore.json), or CSV with a header row, one record at
// a time; Documents does the same for sources of separate JSON documents
// (an Azure table's rows) through a Decoder. A record that cannot be read
// or fails Validate becomes a Problem naming its source and line (or key);
// the import command decides whether that rejects the whole import. Parse
// collects a whole input, for small inputs and tests.
package ingest
