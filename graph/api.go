package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	blockreport "github.com/blockreport/blockreport"
)

// Installed is what Graph says about the app's installation for a user.
type Installed = blockreport.Installed

// The installation states shown in the "Installed (Graph)" column.
const (
	InstalledYes     = blockreport.InstalledYes
	InstalledNo      = blockreport.InstalledNo
	InstalledUnknown = blockreport.InstalledUnknown
)

// Installation is the answer of installedApps for one user.
type Installation struct {
	UserID    string
	Installed Installed
	// ID is the installation's id (when installed), for its chat.
	ID string
	// Status and Code are Graph's raw answer: HTTP status and error code
	// ("" on success); 404 NotFound means Teams does not know the user.
	Status int
	Code   string
}

// Raw is a short form of the raw Graph answer, kept on the result.
func (i Installation) Raw() string {
	switch {
	case i.Status == 0:
		return ""
	case i.Code != "":
		return fmt.Sprintf("HTTP %d %s", i.Status, i.Code)
	case i.Installed == InstalledYes:
		return fmt.Sprintf("HTTP %d installed", i.Status)
	case i.Installed == InstalledNo:
		return fmt.Sprintf("HTTP %d not installed", i.Status)
	}
	return fmt.Sprintf("HTTP %d", i.Status)
}

// CatalogID resolves the configured app id to the tenant's catalog id
// (the id itself for a store app, a generated one for an org app), once per
// tenant.
func (c *Client) CatalogID(ctx context.Context, tenantID string) (string, error) {
	t := c.tenant(tenantID)
	t.once.Do(func() {
		id := strings.ReplaceAll(strings.TrimSpace(c.cfg.AppID), "'", "''")
		q := url.Values{"$filter": {fmt.Sprintf("id eq '%s' or externalId eq '%s'", id, id)}}
		a, err := c.do(ctx, tenantID, teamsKind, 1, http.MethodGet, "/appCatalogs/teamsApps?"+q.Encode(), nil)
		if err != nil {
			t.cerr = err
			return
		}
		if a.Status != http.StatusOK {
			code, msg := errorCode(a.Body)
			t.cerr = t.fail(&TenantError{Tenant: tenantID, Status: a.Status, Code: code, Reason: fmt.Sprintf("app catalog answered HTTP %d %s %s", a.Status, code, msg)})
			return
		}
		var v struct {
			Value []struct {
				ID         string `json:"id"`
				ExternalID string `json:"externalId"`
			} `json:"value"`
		}
		if err := json.Unmarshal(a.Body, &v); err != nil || len(v.Value) == 0 {
			t.cerr = t.fail(&TenantError{Tenant: tenantID, Status: a.Status, Reason: fmt.Sprintf("the Teams app %s is not in this tenant's app catalog (check --teams-app-id: the catalog id or the manifest id)", c.cfg.AppID)})
			return
		}
		t.catalog = v.Value[0].ID
	})
	if t.cerr != nil {
		return "", t.cerr
	}
	return t.catalog, nil
}

// teamsBatch is how many installedApps requests go in one $batch: 20,
// or half the per-tenant rate when that is lower, so that two batches fit
// in a second (at 30/s, batches of 20 would leave 10 of every 30 unused).
func (c *Client) teamsBatch() int {
	if r := int(c.cfg.TeamsRate) / 2; r < MaxBatch {
		return max(1, r)
	}
	return MaxBatch
}

// Installations looks up the app's installation for each user (AAD object
// ids of one tenant), 20 per $batch. Users whose lookup got no definite
// answer are InstalledUnknown with Graph's status and code.
func (c *Client) Installations(ctx context.Context, tenantID string, userIDs []string) ([]Installation, error) {
	catalog, err := c.CatalogID(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	out := make([]Installation, 0, len(userIDs))
	size := c.teamsBatch()
	for start := 0; start < len(userIDs); start += size {
		chunk := userIDs[start:min(start+size, len(userIDs))]
		reqs := make([]batchReq, len(chunk))
		q := url.Values{"$expand": {"teamsApp"}, "$filter": {"teamsApp/id eq '" + catalog + "'"}}.Encode()
		for i, id := range chunk {
			reqs[i] = batchReq{ID: strconv.Itoa(i), Method: http.MethodGet, URL: "/users/" + url.PathEscape(id) + "/teamwork/installedApps?" + q}
		}
		ans, err := c.batch(ctx, tenantID, teamsKind, reqs)
		if err != nil {
			return nil, err
		}
		for i, id := range chunk {
			in := Installation{UserID: id, Installed: InstalledUnknown}
			a, ok := ans[strconv.Itoa(i)]
			if !ok {
				out = append(out, in)
				continue
			}
			if e := c.memberError(tenantID, a); e != nil {
				return nil, e
			}
			in.Status = a.Status
			if a.Status == http.StatusOK {
				var v struct {
					Value []struct {
						ID string `json:"id"`
					} `json:"value"`
				}
				if json.Unmarshal(a.Body, &v) == nil {
					in.Installed = InstalledNo
					if len(v.Value) > 0 {
						in.Installed, in.ID = InstalledYes, v.Value[0].ID
					}
				}
			} else {
				in.Code, _ = errorCode(a.Body)
			}
			out = append(out, in)
		}
	}
	return out, nil
}

// Chats returns the chat id of each installation (user id → installation
// id), 20 per $batch; users whose chat could not be read are missing.
func (c *Client) Chats(ctx context.Context, tenantID string, installs map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(installs))
	ids := make([]string, 0, len(installs))
	for u := range installs {
		ids = append(ids, u)
	}
	size := c.teamsBatch()
	for start := 0; start < len(ids); start += size {
		chunk := ids[start:min(start+size, len(ids))]
		reqs := make([]batchReq, len(chunk))
		for i, u := range chunk {
			reqs[i] = batchReq{ID: strconv.Itoa(i), Method: http.MethodGet,
				URL: "/users/" + url.PathEscape(u) + "/teamwork/installedApps/" + url.PathEscape(installs[u]) + "/chat"}
		}
		ans, err := c.batch(ctx, tenantID, teamsKind, reqs)
		if err != nil {
			return nil, err
		}
		for i, u := range chunk {
			a := ans[strconv.Itoa(i)]
			if e := c.memberError(tenantID, a); e != nil {
				return nil, e
			}
			var v struct {
				ID string `json:"id"`
			}
			if a.Status == http.StatusOK && json.Unmarshal(a.Body, &v) == nil && v.ID != "" {
				out[u] = v.ID
			}
		}
	}
	return out, nil
}

// User is a directory user, with the fields the reports show.
type User struct {
	ID             string `json:"id"`
	DisplayName    string `json:"displayName"`
	UPN            string `json:"userPrincipalName"`
	Mail           string `json:"mail"`
	Department     string `json:"department"`
	JobTitle       string `json:"jobTitle"`
	OfficeLocation string `json:"officeLocation"`
	Country        string `json:"country"`
	AccountEnabled bool   `json:"accountEnabled"`
	UserType       string `json:"userType"`
}

// userSelect is the $select of every user lookup.
const userSelect = "id,displayName,userPrincipalName,mail,department,jobTitle,officeLocation,country,accountEnabled,userType"

// Users looks up users of one tenant by AAD object id: "id in (...)" of
// 15 ids, 20 such requests per $batch (300 users per round trip; needs
// only User.Read.All). Ids the directory does not know are missing from
// the map.
func (c *Client) Users(ctx context.Context, tenantID string, ids []string) (map[string]User, error) {
	out := make(map[string]User, len(ids))
	const perBatch = MaxFilterIDs * MaxBatch
	for start := 0; start < len(ids); start += perBatch {
		chunk := ids[start:min(start+perBatch, len(ids))]
		var reqs []batchReq
		for i := 0; i < len(chunk); i += MaxFilterIDs {
			part := chunk[i:min(i+MaxFilterIDs, len(chunk))]
			quoted := make([]string, len(part))
			for j, id := range part {
				quoted[j] = "'" + strings.ReplaceAll(id, "'", "''") + "'"
			}
			q := url.Values{"$filter": {"id in (" + strings.Join(quoted, ",") + ")"}, "$select": {userSelect}}.Encode()
			reqs = append(reqs, batchReq{ID: strconv.Itoa(len(reqs)), Method: http.MethodGet, URL: "/users?" + q})
		}
		ans, err := c.batch(ctx, tenantID, directoryKind, reqs)
		if err != nil {
			return nil, err
		}
		for i := range reqs {
			a, ok := ans[strconv.Itoa(i)]
			if !ok {
				return nil, &TenantError{Tenant: tenantID, Reason: "directory lookups still throttled after retries"}
			}
			if e := c.memberError(tenantID, a); e != nil {
				return nil, e
			}
			if a.Status != http.StatusOK {
				code, msg := errorCode(a.Body)
				return nil, fmt.Errorf("graph: users of tenant %s: HTTP %d %s %s", tenantID, a.Status, code, msg)
			}
			var v struct {
				Value []User `json:"value"`
			}
			if err := json.Unmarshal(a.Body, &v); err != nil {
				return nil, fmt.Errorf("graph: users of tenant %s: answer does not parse: %w", tenantID, err)
			}
			for _, u := range v.Value {
				out[u.ID] = u
			}
		}
	}
	return out, nil
}

// Organization returns the tenant's display name.
func (c *Client) Organization(ctx context.Context, tenantID string) (string, error) {
	a, err := c.do(ctx, tenantID, directoryKind, 1, http.MethodGet, "/organization?$select=id,displayName", nil)
	if err != nil {
		return "", err
	}
	if a.Status != http.StatusOK {
		code, msg := errorCode(a.Body)
		return "", fmt.Errorf("graph: organization of tenant %s: HTTP %d %s %s", tenantID, a.Status, code, msg)
	}
	var v struct {
		Value []struct {
			DisplayName string `json:"displayName"`
		} `json:"value"`
	}
	if err := json.Unmarshal(a.Body, &v); err != nil || len(v.Value) == 0 {
		return "", fmt.Errorf("graph: organization of tenant %s: no organization in the answer", tenantID)
	}
	return v.Value[0].DisplayName, nil
}

// EnabledUsers calls fn for every enabled user of the tenant, following
// @odata.nextLink (which must stay on the Graph host) page by page.
func (c *Client) EnabledUsers(ctx context.Context, tenantID string, fn func([]User) error) error {
	q := url.Values{"$filter": {"accountEnabled eq true"}, "$select": {userSelect}, "$top": {"999"}}
	next := "/users?" + q.Encode()
	for pages := 0; next != ""; pages++ {
		a, err := c.do(ctx, tenantID, directoryKind, 1, http.MethodGet, next, nil)
		if err != nil {
			return err
		}
		if a.Status != http.StatusOK {
			code, msg := errorCode(a.Body)
			return fmt.Errorf("graph: users of tenant %s (page %d): HTTP %d %s %s", tenantID, pages+1, a.Status, code, msg)
		}
		var v struct {
			Value []User `json:"value"`
			Next  string `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(a.Body, &v); err != nil {
			return fmt.Errorf("graph: users of tenant %s (page %d): answer does not parse: %w", tenantID, pages+1, err)
		}
		if err := fn(v.Value); err != nil {
			return err
		}
		next = v.Next
	}
	return nil
}
