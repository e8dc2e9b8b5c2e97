// Package auth gets the app's access tokens from Microsoft Entra ID through
// azidentity: a client secret, a certificate (PEM or PKCS#12, with the
// chain for subject-name/issuer trust), a user-assigned managed identity
// (App Service's IDENTITY_ENDPOINT or the instance metadata service) or a
// workload identity (a federated service-account token file).
//
// A Credential serves every tenant and scope a run needs, the Bot
// Connector's (tenant "") as much as Microsoft Graph's in each customer
// tenant, with one azidentity credential instance per tenant and a cache
// per (tenant, scope). A token is renewed in the background before it
// expires; while the endpoint fails, the cached token is used as long as it
// is valid. Renew fetches a token from no cache, for a 401.
//
// Errors wrap ErrConfig (a person must fix something) or ErrUnavailable
// (the endpoint stayed down); their text is one line that says what to
// fix and never holds a secret or a token. Requests go only to the token
// endpoint (the authority host) or the identity endpoint, and no redirect
// is followed.
package auth
