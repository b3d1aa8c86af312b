package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// testPKI is a CA with a node and a client certificate, written as PEM
// files the way an operator would hand them to `sluice node`.
type testPKI struct {
	ca                string
	nodeCert, nodeKey string
	cliCert, cliKey   string
}

func newTestPKI(t testing.TB) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		return k
	}
	serial := int64(1)
	template := func(cn string) *x509.Certificate {
		serial++
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
		}
	}

	caKey := newKey()
	caTmpl := template("sluice test CA")
	caTmpl.IsCA, caTmpl.BasicConstraintsValid = true, true
	caTmpl.KeyUsage = x509.KeyUsageCertSign
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	issue := func(name string, tmpl *x509.Certificate) (string, string) {
		k := newKey()
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		require.NoError(t, err)
		kb, err := x509.MarshalECPrivateKey(k)
		require.NoError(t, err)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kb)
	}
	nodeTmpl := template("node")
	nodeTmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	nodeTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	cliTmpl := template("client")
	cliTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}

	p := testPKI{ca: write("ca.pem", "CERTIFICATE", caDER)}
	p.nodeCert, p.nodeKey = issue("node", nodeTmpl)
	p.cliCert, p.cliKey = issue("client", cliTmpl)
	return p
}

func (p testPKI) clientTLS(t testing.TB, withCert bool) *tls.Config {
	t.Helper()
	f := transport.TLSFiles{CA: p.ca}
	if withCert {
		f.Cert, f.Key = p.cliCert, p.cliKey
	}
	cfg, err := transport.ClientTLS(f)
	require.NoError(t, err)
	return cfg
}

// TestTLSCluster runs a three-node cluster with mutual TLS and an
// encrypted gossip: produce and consume work end to end (Raft and
// forwarded RPCs over TLS), a client without a certificate or without TLS
// is refused, and a node with another gossip key cannot join.
func TestTLSCluster(t *testing.T) {
	skipShort(t)
	pki := newTestPKI(t)
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	secure := func(cfg *Config) {
		cfg.TLSCAFile, cfg.TLSCertFile, cfg.TLSKeyFile = pki.ca, pki.nodeCert, pki.nodeKey
		cfg.GossipKey = key
	}
	c := newTestCluster(t, 3, secure)

	cl, err := client.New(client.Config{Servers: c.addrs(), TLS: pki.clientTLS(t, true), RequestTimeout: 5 * time.Second, Logger: testLogger(t)})
	require.NoError(t, err)
	defer cl.Close()
	c.createTopic(cl, "secure", 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 10 {
		_, err := cl.ProduceBatch(ctx, "secure", int32(i%2), []client.Record{{Value: []byte{byte(i)}}})
		require.NoError(t, err)
	}
	assert.Len(t, readAll(t, cl, "", "secure", 0), 5)
	assert.Len(t, readAll(t, cl, "", "secure", 1), 5)
	// A topic deletion goes through the metadata leader: a forwarded RPC
	// over the nodes' pool, with the node certificate as client's.
	for i := range c.nodes {
		if !c.nodes[i].isMetaLeader() {
			one, err := client.New(client.Config{Servers: []string{c.cfgs[i].Addr}, TLS: pki.clientTLS(t, true), Logger: testLogger(t)})
			require.NoError(t, err)
			require.NoError(t, one.DeleteTopic(ctx, "secure"))
			one.Close()
			break
		}
	}

	refused := func(tlsCfg *tls.Config) error {
		conn, err := transport.DialConn(ctx, c.cfgs[0].Addr, transport.DialOptions{TLS: tlsCfg, Timeout: 5 * time.Second})
		if err != nil {
			return err
		}
		defer conn.Close()
		return conn.Call(ctx, transport.MethodMetadata, transport.MetadataRequest{}, &transport.MetadataResponse{})
	}
	err = refused(pki.clientTLS(t, false))
	require.Error(t, err, "a client without a certificate was served")
	// TLS 1.3 clients learn of the refusal after their handshake, at the
	// first write or read: the call fails as not sent or unanswered.
	assert.True(t, errors.Is(err, transport.ErrNotSent) || errors.Is(err, transport.ErrNoReply), "%v", err)
	require.Error(t, refused(nil), "a plaintext client was served")

	// A client certificate from the cluster's CA, on a member's host
	// (127.0.0.1), still cannot forward metadata commands as a node.
	cc, err := transport.DialConn(ctx, c.cfgs[0].Addr, transport.DialOptions{TLS: pki.clientTLS(t, true), Timeout: 5 * time.Second})
	require.NoError(t, err)
	defer cc.Close()
	err = cc.Call(ctx, transport.MethodMetaApply, transport.MetaApplyRequest{Command: []byte{1}}, nil)
	require.Equal(t, transport.ErrInvalidRequest, transport.CodeOf(err), "%v", err)

	// A fourth node with the right certificates but another gossip key.
	intruder := c.cfgs[0]
	intruder.ID = "n4"
	intruder.DataDir = filepath.Join(t.TempDir(), "n4")
	used := map[int]bool{}
	intruder.Addr = "127.0.0.1:" + strconv.Itoa(freePort(t, used))
	intruder.GossipAddr = "127.0.0.1:" + strconv.Itoa(freePort(t, used))
	intruder.Join = nil
	intruder.GossipKey = base64.StdEncoding.EncodeToString([]byte("another key, 16b"))
	n4, err := Start(context.Background(), intruder)
	require.NoError(t, err)
	defer n4.Close()
	k, err := n4.members.join(c.cfgs[0].Join)
	require.Error(t, err, "joined with the wrong gossip key")
	assert.Zero(t, k)
	for _, n := range c.nodes {
		for _, m := range n.members.Members() {
			assert.NotEqual(t, "n4", m.ID, "%s lists the intruder", n.ID())
		}
	}
}

func TestGossipKeyValidation(t *testing.T) {
	_, err := gossipKey("not base64!")
	assert.ErrorContains(t, err, "base64")
	_, err = gossipKey(base64.StdEncoding.EncodeToString([]byte("short")))
	assert.ErrorContains(t, err, "16, 24 or 32")
	k, err := gossipKey(base64.StdEncoding.EncodeToString(make([]byte, 24)))
	require.NoError(t, err)
	assert.Len(t, k, 24)
}
