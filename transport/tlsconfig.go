package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
)

// TLSFiles names the PEM files of a TLS identity: the CA certificate that
// signs every node's and client's certificate, and this party's own
// certificate and key.
type TLSFiles struct {
	CA, Cert, Key string
}

// ServerTLS builds the configuration of a node's port: TLS 1.3 only, the
// node's certificate, and client certificates required and verified
// against the CA (nodes dialling each other present their node
// certificate, clients theirs). All three files are required.
func ServerTLS(f TLSFiles) (*tls.Config, error) {
	if f.CA == "" || f.Cert == "" || f.Key == "" {
		return nil, errors.New("transport: TLS needs a CA, a certificate and a key file")
	}
	pool, err := loadCA(f.CA)
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("transport: TLS key pair %s, %s: %w", f.Cert, f.Key, err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// ClientTLS builds the configuration of connections to nodes: TLS 1.3
// only, servers verified against the CA, and the client certificate when
// Cert and Key are given (nodes require one).
func ClientTLS(f TLSFiles) (*tls.Config, error) {
	if f.CA == "" {
		return nil, errors.New("transport: TLS needs the CA certificate file")
	}
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New("transport: TLS certificate and key go together")
	}
	pool, err := loadCA(f.CA)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}
	if f.Cert != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("transport: TLS key pair %s, %s: %w", f.Cert, f.Key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("transport: TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("transport: TLS CA %s: no PEM certificate found", path)
	}
	return pool, nil
}

// clientTLS returns cfg for one dial to addr: ServerName, when unset, is
// the address's host (an IP is checked against the certificate's IP SANs).
func clientTLS(cfg *tls.Config, addr string) *tls.Config {
	if cfg.ServerName != "" {
		return cfg
	}
	c := cfg.Clone()
	if h, _, err := net.SplitHostPort(addr); err == nil {
		c.ServerName = h
	} else {
		c.ServerName = addr
	}
	return c
}
