// Package faketeams simulates the Microsoft Teams Bot Connector and the
// client-credentials token endpoint on loopback, for tests, the demo and
// benchmarks. Nothing in this project talks to the real service.
//
// A Server holds a population of conversations, each in a State (active,
// blocked, uninstalled, admin_disabled, deleted, not_installed,
// forbidden_empty, forbidden_other, or a scripted sequence of answers), and
// answers under any service-URL prefix (/amer/, /emea/, /teams/, /gcc/...):
//
//	POST {prefix}/v3/conversations                       create-or-get a 1:1 chat
//	POST {prefix}/v3/conversations/{id}/activities       message or typing
//	GET  {prefix}/v3/conversations/{id}/members/{member} one member
//	GET  {prefix}/v3/conversations/{id}/pagedmembers     roster page
//	POST /{tenant}/oauth2/v2.0/token                     client credentials
//	GET  /{tenant}/v2.0/.well-known/openid-configuration where MSAL finds it
//	GET  /common/discovery/instance                      MSAL's instance metadata
//	GET  /msi/token                                      managed identity (App Service)
//	GET  /metadata/identity/oauth2/token                 managed identity (IMDS)
//	GET  /_fake/stats                                    counters (Stats)
//
// Every route is served on plain http and on a TLS listener (TLSURL) whose
// certificate a CA made at start signed; a client trusts it explicitly
// (RootCAs, CACertPEM), never by turning verification off. The token
// endpoint takes a client secret, a certificate's client assertion (RS256
// or PS256, x5t or x5t#S256, aud, exp, iss = sub = app id, jti once;
// subject-name/issuer trust through x5c) or a federated token
// (FederatedToken), and records the tenant and audience of every token
// (TokenInfo): the connector routes accept only ConnectorAudience.
//
// Error bodies follow the shapes the Bot Connector answers: the standard envelope
// {"error":{"code":...,"message":...}}, the Teams messaging shape
// {"errorCode":209,"message":"<JSON with subCode MessageWritesBlocked>"}
// with \r\n or \n inside, and a 403 with an empty body.
//
// # Modelling choices
//
// Each choice is marked [documented] (Microsoft's Bot Connector and Teams
// documentation says so), [field] (field reports
// only) or [assumed] (nothing public says; chosen to be plausible and
// listed so that a reader can disagree).
//
// Limits and counting:
//   - [documented] 50 requests/s per app per tenant (rate-limit page,
//     2026-10-08; older versions said 30), over a sliding 1 s window.
//   - [documented] Per conversation, writes (send activity, create
//     conversation) 7/1 s, 8/2 s, 60/30 s, 1,800/3,600 s; reads (get
//     member, paged members) double: 14, 16, 120, 3,600.
//   - [assumed] The windows slide: a window of length d ending at t holds
//     the requests that arrived in (t-d, t]. Microsoft does not say whether
//     its windows slide or are fixed buckets; sliding is the stricter.
//   - [assumed] A request is counted when it arrives at the service's
//     door, before its processing latency, as a rate limiter in front of a
//     service sees it; ArrivalJitter (default 0) models network jitter
//     before the door.
//   - [assumed] Only admitted requests use up a limit; a 429 does not.
//     Stats count both (TenantWindows: Arrived and Accepted).
//   - [assumed] A 429 is answered at once, without the processing
//     latency, with Retry-After in whole seconds (rounded up) until the
//     binding window has room. [documented] Teams sends Retry-After.
//   - [assumed] Unauthorised (401) and malformed (400) requests and
//     requests for unknown conversations (404) are not counted.
//   - [assumed] Typing activities count as sends ("presumably", says the
//     rate-limit page).
//   - [assumed] The all-bots-per-thread limits (14/1 s for sends) are not
//     modelled: one bot is simulated.
//
// Answers:
//   - [documented] The error bodies above and
//     413 MessageSizeTooBig for an activity over 100 KB as UTF-16
//     ("format your bot messages"; older versions said 40 KB).
//   - [documented] A message write to a blocked conversation answers 403
//     (MessageWritesBlocked in the Teams shape, or ConversationBlockedByUser
//     [field]).
//   - [assumed] A typing activity to a blocked, uninstalled or disabled
//     conversation answers as a message write would.
//   - [assumed] Reads (get member, paged members) of a blocked
//     conversation succeed: the user is still in the roster, the block
//     stops writes only. Reads of an uninstalled conversation answer 403
//     BotNotInConversationRoster [documented: Microsoft's TeamsFx SDK relies
//     on it]; of an admin-disabled one 403 BotDisabledByAdmin [assumed].
//   - [field] Creating a 1:1 conversation answers like a message write for
//     every state except admin_disabled, where it succeeds
//     (MicrosoftDocs/msteams-docs#7954). Creating one for a user not in the
//     population answers 403 ForbiddenOperationException [documented for
//     a user without the app in personal scope].
//   - [assumed] Create-or-get returns the same conversation id on every call.
//   - [assumed] Every step of a script, and every state-driven answer, is
//     consumed by any connector request on that conversation; injected
//     faults and 429s are not.
//   - [assumed] Latency is log-normal around a configurable median;
//     Faults inject 5xx/412 answers, connection resets, stalls and 429
//     bursts, all drawn from the seed.
package faketeams
