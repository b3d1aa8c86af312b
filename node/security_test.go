package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/transport"
)

// syncBuf collects a node's log lines so a test can check why it closed a
// connection.
type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// rehost replaces the host of a host:port address.
func rehost(t testing.TB, addr, host string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return net.JoinHostPort(host, port)
}

// canBind reports whether this machine lets a test bind host (all of
// 127.0.0.0/8 on Linux).
func canBind(host string) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// requirePeerCloses waits for the node to close c; a connection Raft took
// over would stay open, waiting for an RPC.
func requirePeerCloses(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 64)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "the node did not close the stranger's raft connection")
		return
	}
}

// TestRaftFromStrangerRefused: a process that is no cluster member opens a
// connection to a node's port and writes 'R' and the metadata group's
// name. The node must close it (and say why) instead of handing it to
// Raft, where forged votes and AppendEntries would be believed.
func TestRaftFromStrangerRefused(t *testing.T) {
	const nodeHost, strangerHost = "127.0.0.51", "127.0.0.59"
	if !canBind(nodeHost) || !canBind(strangerHost) {
		t.Skip("cannot bind 127.0.0.51/.59")
	}
	logs := &syncBuf{}
	c := newTestCluster(t, 1, func(cfg *Config) {
		cfg.Addr = rehost(t, cfg.Addr, nodeHost)
		cfg.GossipAddr = rehost(t, cfg.GossipAddr, nodeHost)
		cfg.Join = nil
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(strangerHost)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", c.cfgs[0].Addr)
	require.NoError(t, err)
	defer conn.Close()
	hdr := []byte{'R'}
	hdr = binary.BigEndian.AppendUint16(hdr, uint16(len(metaGroupName)))
	hdr = append(hdr, metaGroupName...)
	_, err = conn.Write(hdr)
	require.NoError(t, err)
	requirePeerCloses(t, conn)
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "not a cluster member")
	}, 5*time.Second, 10*time.Millisecond, "the refusal was not logged")

	// Nor may a stranger forward metadata commands as if it were a node.
	sc, err := transport.DialConn(context.Background(), c.cfgs[0].Addr, transport.DialOptions{LocalHost: strangerHost, Timeout: 5 * time.Second})
	require.NoError(t, err)
	defer sc.Close()
	err = sc.Call(context.Background(), transport.MethodMetaApply, transport.MetaApplyRequest{Command: []byte{1}}, nil)
	require.Equal(t, transport.ErrInvalidRequest, transport.CodeOf(err), "%v", err)

	// The node's own address is a member's: its groups keep working.
	cl := c.client()
	c.createTopic(cl, "t", 1, 1)
}

// TestOversizedProduceRefusedUnread: a produce frame announcing 16 MiB to
// a node whose batch limit is 1 MiB is answered from its first bytes,
// before the node reads (or buffers) the body; so is an offset commit far
// beyond any sane size.
func TestOversizedProduceRefusedUnread(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	conn, err := net.Dial("tcp", c.cfgs[0].Addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(conn)
	for i, method := range []transport.Method{transport.MethodProduce, transport.MethodOffsetCommit} {
		hdr := []byte{}
		if i == 0 {
			hdr = append(hdr, 'C')
		}
		hdr = binary.BigEndian.AppendUint32(hdr, 16<<20)
		hdr = append(hdr, 0x95, byte(10+i), byte(method)) // envelope: [id, method, ...
		_, err = conn.Write(hdr)
		require.NoError(t, err)
		f, err := transport.ReadFrame(br, 0)
		require.NoError(t, err, "%s: no answer before the body", method)
		require.EqualValues(t, 10+i, f.ID)
		require.NotNil(t, f.Err, "%s", method)
		want := transport.ErrInvalidRequest
		if method == transport.MethodProduce {
			want = transport.ErrRecordTooLarge
		}
		require.Equal(t, want, f.Err.Code, "%s: %v", method, f.Err)
		_, err = conn.Write(make([]byte, 16<<20-3))
		require.NoError(t, err)
	}
}
