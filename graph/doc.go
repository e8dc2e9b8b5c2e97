// Package graph calls Microsoft Graph for blockreport: whether the bot's
// Teams app is still installed for a user (appCatalogs/teamsApps,
// users/{id}/teamwork/installedApps and the installation's chat), who the
// users are (users, by id through "id in (...)" inside $batch, or every
// enabled member page by page) and what each tenant is called
// (organization).
//
// Every call is made for one customer tenant with that tenant's own token
// (scope "{graph origin}/.default" from an auth.Credential), and the token
// goes to the Graph host only: redirects are not followed and a next link
// on another host is refused. Requests are paced per tenant (installedApps
// and the catalog at 30 per second, every $batch member counting),
// Retry-After on 429 and 503 holds the whole tenant, 5xx and network
// errors are retried with backoff. When Graph cannot be used for a tenant
// (no service principal: AADSTS700016; not consented: 403
// Authorization_RequestDenied or Forbidden; still failing after retries)
// the calls return a *TenantError wrapping ErrUnavailable and the tenant
// stays unavailable for the client's life.
package graph
