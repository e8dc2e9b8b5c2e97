package main

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	blockreport "github.com/blockreport/blockreport"
	"github.com/blockreport/blockreport/auth"
)

// credentialsHelp closes the -h text of the commands that get tokens.
const credentialsHelp = `

Credentials (--auth; default: what is configured, two at once are refused):
  secret             --app-password-file, or env MicrosoftAppPassword, MICROSOFT_APP_PASSWORD,
                     BOT_PASSWORD, AZURE_CLIENT_SECRET, CLIENT_SECRET
  certificate        --app-certificate-file (PEM with the key, or PKCS#12 with
                     --app-certificate-password-file or env AZURE_CLIENT_CERTIFICATE_PASSWORD)
  managed-identity   MicrosoftAppType=UserAssignedMSI: --app-id is the identity's client id,
                     --app-tenant its tenant; the endpoint comes from the platform
                     (IDENTITY_ENDPOINT + IDENTITY_HEADER on App Service, else IMDS)
  workload-identity  AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID (AKS)`

// Environment variables holding the client secret itself, in order.
var secretEnvs = []string{"MicrosoftAppPassword", "MICROSOFT_APP_PASSWORD", "BOT_PASSWORD", "AZURE_CLIENT_SECRET", "CLIENT_SECRET"}

// credentialConfig is who the bot is and how it proves it: the flags of
// every command that gets a token.
type credentialConfig struct {
	Auth                    string
	AppID                   string
	AppTenant               string
	AppType                 string
	AppPasswordFile         string
	CertificateFile         string
	CertificatePasswordFile string
	SendCertificateChain    bool
	FederatedTokenFile      string
	AuthorityHost           string
	TokenURL                string
	CAFile                  string

	fs       *flagSet // to tell a flag from an environment variable in messages
	kind     auth.Kind
	chosenBy string // the setting that chose kind
	tenant   string // of the connector token and the managed identity ("": multi-tenant)
	secret   string
	certs    []*x509.Certificate
	key      crypto.PrivateKey
	rootCAs  *x509.CertPool // nil: the system's
}

func (c *credentialConfig) register(fs *flagSet) {
	c.fs = fs
	fs.stringVar(&c.Auth, "auth", "", "credential: secret, certificate, managed-identity or workload-identity (default: the one configured)", "BLOCKREPORT_AUTH")
	fs.stringVar(&c.AppID, "app-id", "", "bot app (client) id; with managed-identity the user-assigned identity's client id",
		"BLOCKREPORT_APP_ID", "MicrosoftAppId", "MICROSOFT_APP_ID", "BOT_ID", "AZURE_CLIENT_ID", "CLIENT_ID")
	fs.stringVar(&c.AppTenant, "app-tenant", "", "tenant id of a single-tenant or managed-identity bot (empty: multi-tenant, botframework.com)",
		"BLOCKREPORT_APP_TENANT", "MicrosoftAppTenantId", "MICROSOFT_APP_TENANT_ID", "AZURE_TENANT_ID", "TENANT_ID")
	fs.stringVar(&c.AppType, "app-type", "", "bot type of the Azure Bot resource: MultiTenant, SingleTenant or UserAssignedMSI (default: SingleTenant when a tenant is set)",
		"BLOCKREPORT_APP_TYPE", "MicrosoftAppType", "MICROSOFT_APP_TYPE")
	fs.stringVar(&c.AppPasswordFile, "app-password-file", "", "file holding the app password (client secret); else env "+strings.Join(secretEnvs, ", "), "BLOCKREPORT_APP_PASSWORD_FILE")
	fs.stringVar(&c.CertificateFile, "app-certificate-file", "", "certificate credential: PEM holding the certificate and its private key, or PKCS#12 (.pfx)",
		"BLOCKREPORT_APP_CERTIFICATE_FILE", "AZURE_CLIENT_CERTIFICATE_PATH")
	fs.stringVar(&c.CertificatePasswordFile, "app-certificate-password-file", "", "file holding the PKCS#12 password; else env AZURE_CLIENT_CERTIFICATE_PASSWORD", "BLOCKREPORT_APP_CERTIFICATE_PASSWORD_FILE")
	fs.boolVar(&c.SendCertificateChain, "send-certificate-chain", false, "send the certificate chain (x5c) with each assertion, for subject-name/issuer trust",
		"BLOCKREPORT_SEND_CERTIFICATE_CHAIN", "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN")
	fs.stringVar(&c.FederatedTokenFile, "federated-token-file", "", "workload identity: file with the federated service-account token (AKS projects it)",
		"BLOCKREPORT_FEDERATED_TOKEN_FILE", "AZURE_FEDERATED_TOKEN_FILE")
	fs.stringVar(&c.AuthorityHost, "authority-host", "", "Entra login host instead of the cloud's (https only)", "BLOCKREPORT_AUTHORITY_HOST", "AZURE_AUTHORITY_HOST")
	fs.stringVar(&c.TokenURL, "token-url", "", "client secret only: the whole token endpoint of the connector token (tests; other tenants: its tenant segment replaced); https, or plain http only to a loopback host", "BLOCKREPORT_TOKEN_URL")
	fs.stringVar(&c.CAFile, "ca-file", "", "PEM CA certificates to trust for the token endpoint besides the system's (a private authority; faketeams --ca-out)", "BLOCKREPORT_CA_FILE")
}

// origin names where a flag's value came from: the flag, or the
// environment variable that set it.
func (c *credentialConfig) origin(name string, env ...string) string {
	set := false
	c.fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	if !set {
		if n, _ := c.fs.lookup(env); n != "" {
			return n
		}
	}
	return "--" + name
}

// check validates the credential flags and reads the files they name; cmd
// names the command in usage errors (exit 2).
func (c *credentialConfig) check(cmd string, getenv func(string) string) error {
	usage := func(err error) error { return usageErrorf("%s: %v", cmd, err) }
	if c.AppID == "" {
		return usageErrorf("%s: no app id: set --app-id or MICROSOFT_APP_ID (MicrosoftAppId, AZURE_CLIENT_ID)", cmd)
	}
	var conf auth.Configured
	secretEnv, secret := c.fs.lookup(secretEnvs)
	if c.AppPasswordFile != "" {
		conf.Secret = c.origin("app-password-file", "BLOCKREPORT_APP_PASSWORD_FILE")
	} else if secretEnv != "" {
		conf.Secret = secretEnv
	}
	if c.CertificateFile != "" {
		conf.Certificate = c.origin("app-certificate-file", "BLOCKREPORT_APP_CERTIFICATE_FILE", "AZURE_CLIENT_CERTIFICATE_PATH")
	}
	if c.FederatedTokenFile != "" {
		conf.WorkloadIdentity = c.origin("federated-token-file", "BLOCKREPORT_FEDERATED_TOKEN_FILE", "AZURE_FEDERATED_TOKEN_FILE")
	}
	appType := strings.ToLower(c.AppType)
	switch appType {
	case "", "multitenant", "singletenant":
	case "userassignedmsi":
		conf.ManagedIdentity = c.origin("app-type", "BLOCKREPORT_APP_TYPE", "MicrosoftAppType", "MICROSOFT_APP_TYPE") + "=UserAssignedMSI"
	default:
		return usageErrorf("%s: --app-type %q: want MultiTenant, SingleTenant or UserAssignedMSI", cmd, c.AppType)
	}
	var explicit auth.Kind
	if c.Auth != "" {
		k, err := auth.ParseKind(c.Auth)
		if err != nil {
			return usageErrorf("%s: --auth: %v", cmd, err)
		}
		explicit = k
	}
	kind, by, err := auth.Choose(explicit, conf)
	if err != nil {
		return usage(err)
	}
	c.kind, c.chosenBy = kind, by

	c.tenant = c.AppTenant
	switch {
	case appType == "multitenant" && kind == auth.ManagedIdentity:
		return usageErrorf("%s: a managed identity bot is UserAssignedMSI, not MultiTenant: fix --app-type", cmd)
	case appType == "multitenant":
		c.tenant = "" // the connector token comes from botframework.com
	case appType == "singletenant" && c.tenant == "":
		return usageErrorf("%s: a SingleTenant bot needs its tenant: set --app-tenant (MicrosoftAppTenantId)", cmd)
	case kind == auth.ManagedIdentity && c.tenant == "":
		return usageErrorf("%s: managed identity needs the tenant it lives in: set --app-tenant (MicrosoftAppTenantId)", cmd)
	}
	if c.TokenURL != "" {
		if kind != auth.Secret {
			return usageErrorf("%s: --token-url is for the client secret only; use --authority-host with --auth %s", cmd, kind)
		}
		if err := auth.CheckTokenURL(c.TokenURL); err != nil {
			return usageErrorf("%s: --token-url: %v", cmd, err)
		}
	}
	if c.AuthorityHost != "" {
		if err := auth.CheckAuthorityHost(c.AuthorityHost); err != nil {
			return usageErrorf("%s: --authority-host: %v", cmd, err)
		}
	}
	if c.CAFile != "" {
		if err := c.readCAFile(); err != nil {
			return usageErrorf("%s: --ca-file: %v", cmd, err)
		}
	}

	switch kind {
	case auth.Secret:
		if c.AppPasswordFile != "" {
			b, err := os.ReadFile(c.AppPasswordFile)
			if err != nil {
				// The path is not a secret; the contents are never shown.
				return usageErrorf("%s: --app-password-file: %v", cmd, err)
			}
			secret = strings.TrimRight(string(b), "\r\n")
		}
		if secret == "" {
			return usageErrorf("%s: no app password: set --app-password-file or MICROSOFT_APP_PASSWORD (or choose --auth certificate, managed-identity or workload-identity)", cmd)
		}
		c.secret = secret
	case auth.Certificate:
		if c.CertificateFile == "" {
			return usageErrorf("%s: --auth certificate needs --app-certificate-file (or AZURE_CLIENT_CERTIFICATE_PATH)", cmd)
		}
		data, err := os.ReadFile(c.CertificateFile)
		if err != nil {
			return usageErrorf("%s: --app-certificate-file: %v", cmd, err)
		}
		var password []byte
		if c.CertificatePasswordFile != "" {
			b, err := os.ReadFile(c.CertificatePasswordFile)
			if err != nil {
				return usageErrorf("%s: --app-certificate-password-file: %v", cmd, err)
			}
			password = []byte(strings.TrimRight(string(b), "\r\n"))
		} else if v := getenv("AZURE_CLIENT_CERTIFICATE_PASSWORD"); v != "" {
			password = []byte(v)
		}
		if c.certs, c.key, err = auth.ParseCertificate(data, password); err != nil {
			return usageErrorf("%s: --app-certificate-file %s: %v", cmd, c.CertificateFile, err)
		}
	case auth.WorkloadIdentity:
		if c.FederatedTokenFile == "" {
			return usageErrorf("%s: --auth workload-identity needs AZURE_FEDERATED_TOKEN_FILE (or --federated-token-file)", cmd)
		}
		if _, err := os.Stat(c.FederatedTokenFile); err != nil {
			return usageErrorf("%s: federated token file: %v", cmd, err)
		}
	}
	return nil
}

// describe is the checked credential in one line, without secrets (for
// the check command).
func (c *credentialConfig) describe() string {
	var what string
	switch c.kind {
	case auth.Certificate:
		what = "certificate"
		if cert := c.signing(); cert != nil {
			what = fmt.Sprintf("certificate %q (thumbprint %s, expires %s)", cert.Subject.String(), auth.Thumbprint(cert), cert.NotAfter.UTC().Format("2006-01-02"))
		}
	case auth.ManagedIdentity:
		what = "user-assigned managed identity (endpoint from the platform)"
	case auth.WorkloadIdentity:
		what = "workload identity, token file " + c.FederatedTokenFile
	default:
		what = "client secret read (not shown)"
	}
	tenant := "the cloud's botframework.com tenant (multi-tenant)"
	if c.tenant != "" {
		tenant = "tenant " + c.tenant
	}
	by := ""
	if c.chosenBy != "" {
		by = ", chosen by " + c.chosenBy
	}
	return fmt.Sprintf("app %s, %s, connector token from %s%s", c.AppID, what, tenant, by)
}

// signing is the certificate whose key was loaded.
func (c *credentialConfig) signing() *x509.Certificate {
	pub, ok := c.key.(interface{ Public() crypto.PublicKey })
	if !ok {
		return nil
	}
	for _, cert := range c.certs {
		if k, ok := pub.Public().(interface{ Equal(crypto.PublicKey) bool }); ok && k.Equal(cert.PublicKey) {
			return cert
		}
	}
	return nil
}

// readCAFile adds the certificates of CAFile to the system's roots.
func (c *credentialConfig) readCAFile() error {
	b, err := os.ReadFile(c.CAFile)
	if err != nil {
		return err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return errors.New("no PEM certificate in " + c.CAFile)
	}
	c.rootCAs = pool
	return nil
}

// credential builds the checked credential. Its errors (an expired
// certificate...) say what to fix; they are not usage errors (exit 1).
func (c *credentialConfig) credential(cloud blockreport.Cloud, logger *slog.Logger) (*auth.Credential, error) {
	var client *http.Client
	if c.rootCAs != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: c.rootCAs, MinVersion: tls.VersionTLS12}
		client = &http.Client{Transport: tr}
	}
	if c.chosenBy != "" {
		logger.Info("credential chosen", "kind", string(c.kind), "by", c.chosenBy)
	}
	cred, err := auth.New(auth.Config{
		Kind: c.kind, AppID: c.AppID, AppTenant: c.tenant, Cloud: cloud, AuthorityHost: c.AuthorityHost,
		Secret: c.secret, TokenURL: c.TokenURL,
		Certificates: c.certs, Key: c.key, SendCertificateChain: c.SendCertificateChain,
		FederatedTokenFile: c.FederatedTokenFile, HTTPClient: client, Logger: logger,
	})
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	return cred, nil
}
