package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testTLS returns a server configuration requiring client certificates
// and a client one presenting a certificate, both from a fresh CA.
func testTLS(t *testing.T) (server, withCert, noCert, clientOnly *tls.Config) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		return k
	}
	caKey := key()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	leaf := func(serial int64, eku ...x509.ExtKeyUsage) tls.Certificate {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "n"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: eku,
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		require.NoError(t, err)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	server = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{leaf(2, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	withCert = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{leaf(3, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)}}
	noCert = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}
	clientOnly = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{leaf(4, x509.ExtKeyUsageClientAuth)}}
	return server, withCert, noCert, clientOnly
}

func TestTLSMux(t *testing.T) {
	srvTLS, cliTLS, noCert, clientOnly := testTLS(t)
	var sawNode []bool
	var mu sync.Mutex
	release, started := make(chan struct{}), make(chan struct{})
	s := limitedServer(t, Config{TLS: srvTLS, DialTLS: cliTLS, IdleTimeout: 100 * time.Millisecond}, func(ctx context.Context, m Method, body []byte) (any, error) {
		if m == MethodFetch {
			close(started)
			<-release
		}
		mu.Lock()
		sawNode = append(sawNode, PeerMayBeNode(ctx))
		mu.Unlock()
		return echo(ctx, m, body)
	})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock) // runs before the server's cleanup waits for handlers
	ctx := testCtx(t)
	c := dial(t, s.addr(), DialOptions{TLS: cliTLS})
	var resp ProduceResponse
	require.NoError(t, c.Call(ctx, MethodProduce, ProduceRequest{Partition: 7}, &resp))
	assert.EqualValues(t, 7, resp.BaseOffset)

	// A request outliving several idle periods: the read deadlines that
	// expire meanwhile must not break the TLS stream.
	done := make(chan error, 1)
	go func() { done <- c.Call(ctx, MethodFetch, ProduceRequest{}, nil) }()
	<-started
	for range 2 {
		idle := dial(t, s.addr(), DialOptions{TLS: cliTLS})
		select {
		case <-idle.Done(): // closed after an idle period
		case <-ctx.Done():
			t.Fatal("idle TLS connection not closed")
		}
	}
	unblock()
	require.NoError(t, <-done)
	require.NoError(t, c.Call(ctx, MethodProduce, ProduceRequest{}, nil))

	// Raft connections dialled by the mux are TLS too.
	l, err := s.mux.RaftLayer("g")
	require.NoError(t, err)
	out, err := l.Dial(rServerAddr(s.mux), 5*time.Second)
	require.NoError(t, err)
	defer out.Close()
	in, err := l.Accept()
	require.NoError(t, err)
	defer in.Close()
	_, err = out.Write([]byte("vote"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = in.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "vote", string(buf))

	// A client certificate (clientAuth only) serves for RPCs, but it is
	// not a node's: no Raft, and handlers are told.
	cc := dial(t, s.addr(), DialOptions{TLS: clientOnly})
	require.NoError(t, cc.Call(ctx, MethodProduce, ProduceRequest{}, nil))
	mu.Lock()
	assert.Equal(t, []bool{true, true, true, false}, sawNode)
	mu.Unlock()
	raw, err := net.Dial("tcp", s.addr())
	require.NoError(t, err)
	tc := tls.Client(raw, clientTLS(clientOnly, s.addr()))
	t.Cleanup(func() { _ = tc.Close() })
	_, err = tc.Write(raftHeader("g"))
	require.NoError(t, err)
	requireClosedByPeer(t, tc)
	s.logs.eventuallyLogs(t, "peer certificate is not a node's")

	// No certificate, or no TLS at all: refused.
	nc, err := DialConn(ctx, s.addr(), DialOptions{TLS: noCert})
	if err == nil {
		err = nc.Call(ctx, MethodProduce, ProduceRequest{}, nil)
		nc.Close()
	}
	require.Error(t, err)
	s.logs.eventuallyLogs(t, "certificate")
	plain := rawConn(t, s.addr(), append([]byte{protoClient}, rawFrame([]byte{0x95, 1, 4, 1, 0xc0, 0xc0})...))
	requireClosedByPeer(t, plain)
	s.logs.eventuallyLogs(t, "TLS handshake failed")
}
