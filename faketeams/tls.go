package faketeams

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"time"
)

// The TLS listener serves the same routes as the plain one. Microsoft's
// libraries insist on https for an authority, so the token endpoint, the
// OpenID configuration and instance discovery are used through it. Its
// certificate is issued at start by a CA made for this server alone; a
// client trusts it explicitly (RootCAs()), never by turning verification off.

// tlsState is the TLS listener and the CA that signed its certificate.
type tlsState struct {
	ln     net.Listener
	srv    *http.Server
	url    string
	caPEM  []byte
	caCert *x509.Certificate
}

// startTLS issues a CA and a server certificate for loopback (and
// Config.Entra.TLSHosts) and serves s over TLS on Config.Entra.TLSListen.
func (s *Server) startTLS() error {
	ca, caKey, err := newCA("faketeams test CA")
	if err != nil {
		return err
	}
	hosts := append([]string{"127.0.0.1", "::1", "localhost"}, s.cfg.Entra.TLSHosts...)
	leafDER, leafKey, err := newLeaf(ca, caKey, hosts)
	if err != nil {
		return err
	}
	listen := s.cfg.Entra.TLSListen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER, ca.Raw}, PrivateKey: leafKey}},
	}
	s.tls = &tlsState{
		ln: tls.NewListener(ln, cfg),
		// A client that does not trust the CA is the client's business:
		// the handshake errors are not logged.
		srv:    &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)},
		url:    "https://" + ln.Addr().String(),
		caPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		caCert: ca,
	}
	go s.tls.srv.Serve(s.tls.ln) //nolint:errcheck // Serve returns ErrServerClosed after Close.
	return nil
}

// TLSURL is the base URL of the TLS listener, https://127.0.0.1:PORT.
func (s *Server) TLSURL() string { return s.tls.url }

// AuthorityHost is the Entra authority host to configure a client with
// (azidentity's cloud.Configuration.ActiveDirectoryAuthorityHost,
// blockreport's --authority-host): the TLS URL with a trailing slash.
func (s *Server) AuthorityHost() string { return s.tls.url + "/" }

// CACertPEM is the PEM certificate of the CA that issued the TLS
// listener's certificate (for blockreport --ca-file).
func (s *Server) CACertPEM() []byte { return append([]byte(nil), s.tls.caPEM...) }

// RootCAs is a pool holding only this server's CA: set it as the
// RootCAs of a client's TLS configuration to trust the TLS listener.
func (s *Server) RootCAs() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.tls.caCert)
	return p
}

// TLSClient is an HTTP client that trusts the TLS listener (and nothing
// else) and never follows redirects.
func (s *Server) TLSClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs(), MinVersion: tls.VersionTLS12}},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: 30 * time.Second,
	}
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
}

// newCA makes a self-signed ECDSA CA valid for a day around now.
func newCA(name string) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// newLeaf issues a TLS server certificate for hosts (IP addresses or DNS
// names), signed by ca.
func newLeaf(ca *x509.Certificate, caKey crypto.Signer, hosts []string) ([]byte, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "faketeams"},
		NotBefore:    ca.NotBefore,
		NotAfter:     ca.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	return der, key, err
}

// AppCertificate is an application certificate: what an admin uploads to
// the app registration (Cert) and what the application signs client
// assertions with (Key).
type AppCertificate struct {
	Cert *x509.Certificate
	Key  *rsa.PrivateKey
}

// AppCertificateOptions shape NewAppCertificate. The zero value is a
// self-signed certificate valid from an hour ago for a year.
type AppCertificateOptions struct {
	Subject   string    // common name, default "blockreport"
	NotBefore time.Time // default an hour ago
	NotAfter  time.Time // default a year from now
	// Issuer signs the certificate (subject-name/issuer trust); nil makes
	// it self-signed.
	Issuer *AppCertificate
	IsCA   bool
}

// NewAppCertificate makes an RSA 2048 application certificate, as
// "New-SelfSignedCertificate" or "openssl req -x509" would.
func NewAppCertificate(o AppCertificateOptions) (*AppCertificate, error) {
	if o.Subject == "" {
		o.Subject = "blockreport"
	}
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.Add(365 * 24 * time.Hour)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	sn, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: o.Subject},
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if o.IsCA {
		tmpl.IsCA = true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	parent, signer := tmpl, crypto.Signer(key)
	if o.Issuer != nil {
		parent, signer = o.Issuer.Cert, o.Issuer.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &AppCertificate{Cert: cert, Key: key}, nil
}

// CertPEM is the certificate alone, PEM encoded (what is uploaded).
func (c *AppCertificate) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// PEM is the certificate followed by its PKCS#8 private key, the form
// blockreport --app-certificate-file and AZURE_CLIENT_CERTIFICATE_PATH take;
// chain certificates (issuers) follow the key when given.
func (c *AppCertificate) PEM(chain ...*AppCertificate) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		panic(err) // an RSA key always marshals
	}
	out := c.CertPEM()
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...)
	for _, ch := range chain {
		out = append(out, ch.CertPEM()...)
	}
	return out
}

// ParseCertificatesPEM reads every CERTIFICATE block of a PEM file (a
// registered certificate or trusted issuers); other blocks are skipped.
func ParseCertificatesPEM(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out, nil
}
