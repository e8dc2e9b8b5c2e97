package probe

import (
	"context"
	"errors"
	"fmt"
)

// Credential is what the engine needs of the bot's credential
// (*auth.Credential): the Bot Connector token (tenant "") and a fresh one
// after a 401.
type Credential interface {
	Token(ctx context.Context, tenant, scope string) (string, error)
	Renew(ctx context.Context, tenant, scope, stale string) (string, error)
}

// ErrToken is wrapped by a failure to get the connector token before a
// run starts (wrong secret or certificate, unreachable token endpoint...):
// nothing was probed.
var ErrToken = errors.New("no Bot Connector token")

// tokenStops is how a token failure during a run stops it: interrupted,
// so the next run resumes it once the credential or the endpoint is fixed.
func tokenStops(err error) error {
	return fmt.Errorf("no Bot Connector token, the run stops (%w): %w", ErrInterrupted, err)
}
