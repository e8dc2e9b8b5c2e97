// Package probe asks the Bot Connector, for every stored conversation
// reference, whether the bot can still reach that user or team, and
// classifies the answer.
//
// Classify is the pure mapping from an HTTP answer to a blockreport.Status.
// Prober is the engine: it takes the connector token from a Credential
// (auth.Credential), renews it once on a 401, sends it only to allow-listed
// Bot Connector hosts, paces requests per
// tenant under Teams' rate limits, retries what Microsoft documents as
// retryable, and streams results to the store in batches through one writer.
// A probe outcome is always a blockreport.Result; only conditions that make
// the whole run meaningless (no token, a second 401 from the connector, a
// store failure, cancellation) are Go errors; those a later run can resume
// wrap ErrInterrupted.
//
// Muting is not observable through any API and is never guessed. The members
// mode reads the roster only: it can see uninstalled, admin-disabled and
// deleted conversations, never a block.
package probe
