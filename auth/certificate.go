package auth

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // the portal shows the SHA-1 thumbprint
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// ParseCertificate reads an application certificate: PEM holding the
// certificate (and any chain) and its private key, or PKCS#12 (.pfx) with
// password. The errors say what is wrong with the file, never its
// contents; they wrap ErrConfig.
func ParseCertificate(data, password []byte) ([]*x509.Certificate, crypto.PrivateKey, error) {
	isPEM := bytes.Contains(data, []byte("-----BEGIN "))
	if isPEM && len(password) > 0 {
		// azidentity would try PKCS#12 and say so; the user gave a PEM.
		if blk, _ := pem.Decode(data); blk != nil && x509.IsEncryptedPEMBlock(blk) { //nolint:staticcheck // only to name the problem
			return nil, nil, configErrorf("the PEM private key is encrypted, which is not supported: decrypt it (openssl pkcs8 -in key.pem -out plain.pem) or use PKCS#12 with a password file")
		}
		password = nil
	}
	certs, key, err := azidentity.ParseCertificates(data, password)
	if err == nil {
		return certs, key, nil
	}
	msg := err.Error()
	switch {
	case isPEM && strings.Contains(msg, "no private key"):
		return nil, nil, configErrorf("the PEM file holds no private key: append the key (-----BEGIN PRIVATE KEY-----) after the certificate, or use the PKCS#12 (.pfx) export")
	case isPEM && strings.Contains(msg, "no certificate"):
		return nil, nil, configErrorf("the PEM file holds no certificate: put the certificate (-----BEGIN CERTIFICATE-----) before the key")
	case isPEM:
		return nil, nil, configErrorf("the PEM file does not parse (%s)", firstLine(msg))
	case strings.Contains(msg, "decryption password incorrect"):
		if len(password) == 0 {
			return nil, nil, configErrorf("the PKCS#12 file needs its password: set --app-certificate-password-file (or AZURE_CLIENT_CERTIFICATE_PASSWORD)")
		}
		return nil, nil, configErrorf("wrong PKCS#12 password: check --app-certificate-password-file (or AZURE_CLIENT_CERTIFICATE_PASSWORD)")
	case strings.Contains(msg, "unknown digest algorithm") || strings.Contains(msg, "algorithm") || strings.Contains(msg, "OID"):
		return nil, nil, configErrorf("the PKCS#12 file uses an encryption Go cannot read (OpenSSL 3 default AES): re-export it with openssl pkcs12 -export -legacy, or convert it to PEM (openssl pkcs12 -in FILE -nodes -out cert.pem)")
	}
	return nil, nil, configErrorf("neither a PEM nor a PKCS#12 certificate file (%s)", firstLine(msg))
}

// signingCertificate is the certificate whose public key matches key (as
// MSAL picks it), or nil.
func signingCertificate(certs []*x509.Certificate, key crypto.PrivateKey) *x509.Certificate {
	k, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil
	}
	for _, c := range certs {
		if pub, ok := c.PublicKey.(*rsa.PublicKey); ok && pub.E == k.E && pub.N.Cmp(k.N) == 0 {
			return c
		}
	}
	return nil
}

// Thumbprint is a certificate's SHA-1 thumbprint in hex, as the Azure
// portal lists uploaded certificates.
func Thumbprint(c *x509.Certificate) string {
	sum := sha1.Sum(c.Raw) //nolint:gosec
	return fmt.Sprintf("%X", sum[:])
}

// checkCertificate validates the certificate credential of cfg at now and
// returns the signing certificate.
func checkCertificate(cfg Config, now time.Time) (*x509.Certificate, error) {
	if len(cfg.Certificates) == 0 || cfg.Key == nil {
		return nil, configErrorf("certificate credential without a certificate and key: set --app-certificate-file")
	}
	if _, ok := cfg.Key.(*rsa.PrivateKey); !ok {
		return nil, configErrorf("the certificate's private key is not RSA: Entra client assertions are signed with RSA keys only; create an RSA certificate")
	}
	c := signingCertificate(cfg.Certificates, cfg.Key)
	if c == nil {
		return nil, configErrorf("the private key belongs to none of the certificates in the file: put the certificate and its own key together")
	}
	desc := certDesc(c)
	switch {
	case now.After(c.NotAfter):
		return nil, configErrorf("certificate %s expired on %s: create a new certificate, upload it to app %q (Certificates & secrets, or az ad app credential reset --id %s --cert @FILE --append) and point --app-certificate-file at it",
			desc, c.NotAfter.UTC().Format("2006-01-02"), cfg.AppID, cfg.AppID)
	case now.Before(c.NotBefore):
		return nil, configErrorf("certificate %s is not valid before %s: check the clock, or use a certificate valid now", desc, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return c, nil
}

func certDesc(c *x509.Certificate) string {
	return fmt.Sprintf("%q (thumbprint %s)", c.Subject.String(), Thumbprint(c))
}
