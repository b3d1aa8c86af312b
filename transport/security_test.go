package transport

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func raftHeader(group string) []byte {
	b := binary.BigEndian.AppendUint16([]byte{protoRaft}, uint16(len(group)))
	return append(b, group...)
}

func TestAllowRaftRefusesStrangers(t *testing.T) {
	var allow atomic.Bool
	var asked atomic.Value
	logs := &logBuf{}
	m, err := Listen(Config{Addr: "127.0.0.1:0", Logger: logs.logger(), AllowRaft: func(ip netip.Addr) bool {
		asked.Store(ip)
		return allow.Load()
	}})
	require.NoError(t, err)
	serve(t, m, echo)
	l, err := m.RaftLayer("g")
	require.NoError(t, err)

	stranger := rawConn(t, m.Addr().String(), raftHeader("g"))
	requireClosedByPeer(t, stranger)
	logs.eventuallyLogs(t, "peer is not a cluster member")
	assert.Equal(t, netip.MustParseAddr("127.0.0.1"), asked.Load())

	allow.Store(true)
	member := rawConn(t, m.Addr().String(), raftHeader("g"))
	got, err := l.Accept()
	require.NoError(t, err)
	assert.Equal(t, member.LocalAddr().String(), got.RemoteAddr().String())
	require.NoError(t, got.Close())
}
