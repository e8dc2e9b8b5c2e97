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
// Error bodies follow ../shared/docs/teams-api.md §2: the standard envelope
// {"error":{"code":...,"message":...}}, the Teams messaging shape
// {"errorCode":209,"message":"<JSON with subCode MessageWritesBlocked>"}
// with \r\n or \n inside, and a 403 with an empty body.
//
// Assumptions, not confirmed by Microsoft:
//   - A typing activity and the members calls (get member, paged members) on
//     a blocked, uninstalled or disabled conversation answer the same as a
//     message write would.
//   - Creating a 1:1 conversation answers like a message write for every
//     state except admin_disabled, where it succeeds (reported in
//     MicrosoftDocs/msteams-docs#7954). Creating one for a user not in the
//     population answers 403 ForbiddenOperationException, the documented
//     answer for a user without the app in personal scope.
//   - Create-or-get returns the same conversation id on every call.
//   - Every step of a script, and every state-driven answer, is consumed
//     by any connector request on that conversation; injected faults and
//     429s are not.
//
// Rate limits (Limits) are the documented ones: per app per tenant over a
// sliding second, and per conversation for writes (reads double). Latency
// is log-normal around a configurable median, and Faults inject 5xx/412
// answers, connection resets, stalls and 429 bursts, all drawn from a seed.
package faketeams
