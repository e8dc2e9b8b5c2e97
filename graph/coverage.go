package graph

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	blockreport "github.com/blockreport/blockreport"
)

// CoverageStore is what coverage needs beyond Store (*store.DB).
type CoverageStore interface {
	Store
	ReferenceTenants(ctx context.Context) ([]string, error)
	CoverageDone(ctx context.Context, runID int64, tenantID string) (bool, error)
	UsersWithReferences(ctx context.Context, tenantID string, ids []string) (map[string]bool, error)
	TenantServiceURL(ctx context.Context, tenantID string) (string, error)
	SaveCoverage(ctx context.Context, runID int64, users []blockreport.CoverageUser, refs map[string]blockreport.Reference, now time.Time) error
}

// GlobalServiceURL is the Bot Connector's global service URL per cloud:
// where a reference created from an installation goes when its tenant has
// no stored reference to take the service URL from.
func GlobalServiceURL(cloud blockreport.Cloud) string {
	switch cloud {
	case blockreport.CloudGCC:
		return "https://smba.infra.gcc.teams.microsoft.com/"
	case blockreport.CloudGCCH:
		return "https://smba.infra.gov.teams.microsoft.us/"
	case blockreport.CloudDoD:
		return "https://smba.infra.dod.teams.microsoft.us/"
	}
	return "https://smba.trafficmanager.net/teams/"
}

// coverage lists every enabled member of each tenant of the references
// once per run and checks the installation of each user the bot has no
// reference for: (a) installed: a reference to the installation's chat is
// created (the run probes it); (b) not installed: listed as such.
func (k *Checker) coverage(ctx context.Context, runID int64) error {
	cs, ok := k.cfg.Store.(CoverageStore)
	if !ok {
		return errors.New("graph: coverage needs a store that can create references")
	}
	tenants, err := cs.ReferenceTenants(ctx)
	if err != nil {
		return err
	}
	var g errgroup.Group
	g.SetLimit(k.cfg.Parallel)
	for _, t := range tenants {
		g.Go(func() error { return k.coverTenant(ctx, cs, runID, t) })
	}
	return g.Wait()
}

func (k *Checker) coverTenant(ctx context.Context, cs CoverageStore, runID int64, tenantID string) error {
	done, err := cs.CoverageDone(ctx, runID, tenantID)
	if err != nil || done {
		return err
	}
	t := k.state(tenantID)
	if err := k.ensure(ctx, runID, t); err != nil {
		return err
	}
	if !k.available(t) {
		return nil
	}
	svc, err := cs.TenantServiceURL(ctx, tenantID)
	if err != nil {
		return err
	}
	if svc == "" {
		svc = k.cfg.GlobalServiceURL
	}
	enabled := 0
	err = k.c.EnabledUsers(ctx, tenantID, func(page []User) error {
		enabled += len(page)
		ids := make([]string, len(page))
		byID := make(map[string]User, len(page))
		for i, u := range page {
			ids[i], byID[u.ID] = u.ID, u
		}
		known, err := cs.UsersWithReferences(ctx, tenantID, ids)
		if err != nil {
			return err
		}
		now := k.cfg.Now()
		var ask []string
		var dir []blockreport.DirectoryUser
		for _, u := range page {
			if !known[u.ID] {
				ask = append(ask, u.ID)
				dir = append(dir, directoryUser(tenantID, u.ID, u, true))
			}
		}
		if len(ask) == 0 {
			return nil
		}
		if err := cs.SaveDirectoryUsers(ctx, dir, now); err != nil {
			return err
		}
		ins, err := k.c.Installations(ctx, tenantID, ask)
		if err != nil {
			return err
		}
		installs := map[string]string{}
		for _, in := range ins {
			if in.Installed == InstalledYes && in.ID != "" {
				installs[in.UserID] = in.ID
			}
		}
		chats := map[string]string{}
		if len(installs) > 0 {
			if chats, err = k.c.Chats(ctx, tenantID, installs); err != nil {
				return err
			}
		}
		users := make([]blockreport.CoverageUser, 0, len(ins))
		refs := map[string]blockreport.Reference{}
		for _, in := range ins {
			if in.Installed == InstalledUnknown {
				continue // no answer: neither listed nor reached
			}
			users = append(users, blockreport.CoverageUser{TenantID: tenantID, AADObjectID: in.UserID, Installed: in.Installed == InstalledYes})
			if chat := chats[in.UserID]; chat != "" {
				u := byID[in.UserID]
				email := u.Mail
				if email == "" {
					email = u.UPN
				}
				refs[in.UserID] = blockreport.Reference{
					TenantID: tenantID, AADObjectID: in.UserID, UserName: u.DisplayName, Email: email,
					ConversationID: chat, ConversationType: blockreport.ConversationPersonal, ServiceURL: svc,
					BotID: k.cfg.BotID, ChannelID: "msteams",
				}
			}
		}
		return cs.SaveCoverage(ctx, runID, users, refs, now)
	})
	var te *TenantError
	switch {
	case errors.As(err, &te):
		return k.down(ctx, runID, t, te)
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fmt.Errorf("graph: coverage of tenant %s in run %d: %w", tenantID, runID, err)
	}
	k.mu.Lock()
	t.info.EnabledUsers = enabled
	k.mu.Unlock()
	k.cfg.Logger.Info("coverage", "tenant", tenantID, "enabled_users", enabled)
	return k.saveTenant(ctx, runID, t)
}
