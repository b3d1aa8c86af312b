package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newBufReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

func rServerAddr(m *Mux) raft.ServerAddress { return raft.ServerAddress(m.Addr().String()) }

func TestRaftLayerRegistration(t *testing.T) {
	m, _ := newMux(t, "", 0)
	l, err := m.RaftLayer("p0")
	require.NoError(t, err)
	assert.Equal(t, m.Addr(), l.Addr())
	assert.Equal(t, "p0", l.Group())

	_, err = m.RaftLayer("p0")
	assert.Error(t, err, "duplicate group")
	_, err = m.RaftLayer("")
	assert.Error(t, err, "empty name")

	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "idempotent")
	_, err = l.Accept()
	assert.ErrorIs(t, err, net.ErrClosed)
	_, err = l.Dial(rServerAddr(m), time.Second)
	assert.ErrorIs(t, err, net.ErrClosed)

	l2, err := m.RaftLayer("p0")
	require.NoError(t, err, "a closed group can be registered again")
	require.NoError(t, m.Close())
	_, err = l2.Accept()
	assert.ErrorIs(t, err, net.ErrClosed, "mux closed")
	_, err = m.RaftLayer("p1")
	assert.ErrorIs(t, err, ErrMuxClosed)
}

func TestRaftLayerRouting(t *testing.T) {
	a, _ := newMux(t, "", 0)
	b, logsB := newMux(t, "", 0)
	serve(t, a, nil)
	serve(t, b, nil) // Raft only: client connections refused

	la, err := a.RaftLayer("group-1")
	require.NoError(t, err)
	lb, err := b.RaftLayer("group-1")
	require.NoError(t, err)
	lbOther, err := b.RaftLayer("group-2")
	require.NoError(t, err)

	// Bytes written right behind the header must all reach Raft: the mux
	// may not buffer past the header.
	out, err := la.Dial(rServerAddr(b), time.Second)
	require.NoError(t, err)
	_, err = out.Write([]byte("hello raft"))
	require.NoError(t, err)

	in, err := lb.Accept()
	require.NoError(t, err)
	got := make([]byte, 10)
	_, err = io.ReadFull(in, got)
	require.NoError(t, err)
	assert.Equal(t, "hello raft", string(got))
	_, err = in.Write([]byte("pong"))
	require.NoError(t, err)
	_, err = io.ReadFull(out, got[:4])
	require.NoError(t, err)
	assert.Equal(t, "pong", string(got[:4]))

	// Nothing leaked to the other group on the same port.
	acceptOther := make(chan net.Conn, 1)
	go func() {
		c, err := lbOther.Accept()
		if err == nil {
			acceptOther <- c
		}
		close(acceptOther)
	}()

	// A client connection to a Raft-only mux is refused.
	refused, err := DialConn(testCtx(t), b.Addr().String(), DialOptions{})
	require.NoError(t, err, "the dial itself succeeds")
	<-refused.Done()
	logsB.eventuallyLogs(t, "serves Raft only")

	// Closing B's layer closes the group's connections on B, which the
	// dialling side sees.
	require.NoError(t, lb.Close())
	require.NoError(t, out.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = out.Read(got)
	require.Error(t, err)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "connection not closed by layer Close")

	// A new dial to the closed group is refused by B.
	out2, err := la.Dial(rServerAddr(b), time.Second)
	require.NoError(t, err)
	requireClosedByPeer(t, out2)
	logsB.eventuallyLogs(t, "unknown group")

	require.NoError(t, lbOther.Close())
	_, ok := <-acceptOther
	assert.False(t, ok, "group-2 never saw a connection")

	// Closed connections are no longer tracked (raft closes them itself).
	require.NoError(t, out.Close())
	require.NoError(t, out2.Close())
	require.Eventually(t, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.conns) == 0 && len(la.conns) == 0
	}, 5*time.Second, 5*time.Millisecond)
}

// countFSM records applied commands.
type countFSM struct {
	mu   sync.Mutex
	logs []string
}

func (f *countFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, string(l.Data))
	return len(f.logs)
}

func (f *countFSM) applied() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.logs...)
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("not supported") }
func (f *countFSM) Restore(io.ReadCloser) error         { return fmt.Errorf("not supported") }

type raftNode struct {
	raft *raft.Raft
	fsm  *countFSM
}

// startRaft runs one member of group on m.
func startRaft(t *testing.T, m *Mux, group, id string, peers []raft.Server, logs io.Writer) raftNode {
	t.Helper()
	layer, err := m.RaftLayer(group)
	require.NoError(t, err)
	logger := hclog.New(&hclog.LoggerOptions{Name: id + "/" + group, Output: logs, Level: hclog.Info})
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  logger,
	})

	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(id)
	cfg.HeartbeatTimeout = 100 * time.Millisecond
	cfg.ElectionTimeout = 100 * time.Millisecond
	cfg.LeaderLeaseTimeout = 50 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.Logger = logger

	store := raft.NewInmemStore()
	snaps := raft.NewInmemSnapshotStore()
	conf := raft.Configuration{Servers: peers}
	require.NoError(t, raft.BootstrapCluster(cfg, store, store, snaps, trans, conf))
	fsm := &countFSM{}
	r, err := raft.NewRaft(cfg, fsm, store, store, snaps, trans)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, r.Shutdown().Error())
		assert.NoError(t, trans.Close())
	})
	return raftNode{raft: r, fsm: fsm}
}

// TestRaftOverMux runs two Raft groups, each with two members, over the
// same pair of Muxes: both elect a leader and replicate entries.
func TestRaftOverMux(t *testing.T) {
	logs := &logBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("raft logs:\n%s", logs)
		}
	})
	m1, _ := newMux(t, "", 0)
	m2, _ := newMux(t, "", 0)
	serve(t, m1, echo)
	serve(t, m2, echo)
	peers := []raft.Server{
		{ID: "n1", Address: rServerAddr(m1), Suffrage: raft.Voter},
		{ID: "n2", Address: rServerAddr(m2), Suffrage: raft.Voter},
	}

	for _, group := range []string{"topic-a/0", "topic-a/1"} {
		n1 := startRaft(t, m1, group, "n1", peers, logs)
		n2 := startRaft(t, m2, group, "n2", peers, logs)

		var leader, follower raftNode
		require.Eventually(t, func() bool {
			switch {
			case n1.raft.State() == raft.Leader:
				leader, follower = n1, n2
			case n2.raft.State() == raft.Leader:
				leader, follower = n2, n1
			default:
				return false
			}
			return true
		}, 10*time.Second, 10*time.Millisecond, "group %s elected no leader", group)

		var want []string
		for i := range 5 {
			cmd := fmt.Sprintf("%s-%d", group, i)
			want = append(want, cmd)
			f := leader.raft.Apply([]byte(cmd), 5*time.Second)
			require.NoError(t, f.Error())
			assert.Equal(t, i+1, f.Response())
		}
		assert.Equal(t, want, leader.fsm.applied())
		require.Eventually(t, func() bool { return len(follower.fsm.applied()) == len(want) },
			10*time.Second, 10*time.Millisecond, "follower did not apply the entries")
		assert.Equal(t, want, follower.fsm.applied())
	}

	// The client protocol shares the port with Raft.
	c := dial(t, m1.Addr().String(), DialOptions{})
	require.NoError(t, c.Call(testCtx(t), MethodProduce, ProduceRequest{}, nil))
}

// Guard against an accidental change of the header layout that peers rely on.
func TestRaftHeaderLayout(t *testing.T) {
	m, _ := newMux(t, "", 0)
	serve(t, m, nil)
	l, err := m.RaftLayer("g")
	require.NoError(t, err)

	hdr := binary.BigEndian.AppendUint16([]byte{'R'}, 1)
	hdr = append(hdr, 'g', 'x')
	c, err := net.Dial("tcp", m.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write(hdr)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	accepted := make(chan net.Conn, 1)
	go func() {
		in, err := l.Accept()
		if err == nil {
			accepted <- in
		}
	}()
	select {
	case in := <-accepted:
		defer in.Close()
		b := make([]byte, 1)
		_, err := io.ReadFull(in, b)
		require.NoError(t, err)
		assert.Equal(t, "x", string(b))
	case <-ctx.Done():
		t.Fatal("connection with a hand-written header was not routed")
	}
}

func TestRaftLayerAdvertisesTheConfiguredAddress(t *testing.T) {
	m, err := Listen(Config{Addr: "127.0.0.1:0", AdvertiseAddr: "127.0.0.1:1234", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	l, err := m.RaftLayer("p0")
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:1234", l.Addr().String())
	assert.Equal(t, "tcp", l.Addr().Network())
	assert.NotEqual(t, "127.0.0.1:1234", m.Addr().String(), "the mux still listens where it bound")
}
