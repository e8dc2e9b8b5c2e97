package auth

import (
	"fmt"
	"strings"
)

// Kind is how the app proves who it is to Entra.
type Kind string

// The credential kinds.
const (
	// Secret is a client secret (app password).
	Secret Kind = "secret"
	// Certificate is a client certificate: a client assertion signed with
	// its private key.
	Certificate Kind = "certificate"
	// ManagedIdentity is a user-assigned managed identity of the Azure
	// resource the job runs on (a UserAssignedMSI bot).
	ManagedIdentity Kind = "managed-identity"
	// WorkloadIdentity is a federated service-account token (AKS workload
	// identity).
	WorkloadIdentity Kind = "workload-identity"
)

// Kinds lists the kinds.
var Kinds = []Kind{Secret, Certificate, ManagedIdentity, WorkloadIdentity}

// ParseKind reads a --auth value.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if strings.EqualFold(s, string(k)) {
			return k, nil
		}
	}
	return "", configErrorf("unknown credential kind %q: want secret, certificate, managed-identity or workload-identity", s)
}

// Configured names where each kind of credential is configured ("" where
// it is not), e.g. Secret: "MICROSOFT_APP_PASSWORD", Certificate:
// "--app-certificate-file".
type Configured struct {
	Secret, Certificate, ManagedIdentity, WorkloadIdentity string
}

func (c Configured) of(k Kind) string {
	switch k {
	case Secret:
		return c.Secret
	case Certificate:
		return c.Certificate
	case ManagedIdentity:
		return c.ManagedIdentity
	}
	return c.WorkloadIdentity
}

// Choose picks the credential kind: explicit when given; else the one kind
// that is configured (a certificate file, MicrosoftAppType=UserAssignedMSI,
// a federated token file), else the secret. Two configured kinds without
// an explicit choice are ambiguous, and an explicit kind contradicted by
// the bot type is refused: the errors name both settings.
func Choose(explicit Kind, c Configured) (Kind, string, error) {
	if explicit != "" {
		if c.ManagedIdentity != "" && explicit != ManagedIdentity {
			return "", "", configErrorf("--auth %s contradicts %s (a UserAssignedMSI bot authenticates with its managed identity): drop one of them", explicit, c.ManagedIdentity)
		}
		return explicit, "--auth", nil
	}
	var set []Kind
	for _, k := range Kinds {
		if c.of(k) != "" {
			set = append(set, k)
		}
	}
	switch len(set) {
	case 0:
		return Secret, "", nil
	case 1:
		return set[0], c.of(set[0]), nil
	}
	names := make([]string, len(set))
	kinds := make([]string, len(set))
	for i, k := range set {
		names[i] = fmt.Sprintf("a %s (%s)", describeKind(k), c.of(k))
		kinds[i] = string(k)
	}
	both := "both"
	if len(set) > 2 {
		both = "all"
	}
	return "", "", configErrorf("%s are %s configured: choose one with --auth %s, or remove the others",
		strings.Join(names, " and "), both, strings.Join(kinds, "|"))
}

func describeKind(k Kind) string {
	switch k {
	case Certificate:
		return "certificate"
	case ManagedIdentity:
		return "managed identity"
	case WorkloadIdentity:
		return "workload identity token file"
	}
	return "client secret"
}
