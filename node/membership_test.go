package node

import (
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMembershipReadsRaceFreeWhilePeersUpdate reads the gossip view while a
// peer keeps republishing its metadata. memberlist updates the *Node values
// its Members returns in place, so reading their fields (address, state)
// after the call races with gossip; the race detector catches it here.
func TestMembershipReadsRaceFreeWhilePeersUpdate(t *testing.T) {
	used := map[int]bool{}
	start := func(id string) *membership {
		cfg := &Config{
			ID:         id,
			Addr:       "127.0.0.1:" + strconv.Itoa(freePort(t, used)),
			GossipAddr: "127.0.0.1:" + strconv.Itoa(freePort(t, used)),
			Logger:     testLogger(t),
		}
		m, err := newMembership(cfg)
		require.NoError(t, err)
		t.Cleanup(m.shutdown)
		return m
	}
	a, b := start("n1"), start("n2")
	_, err := b.join([]string{a.list.LocalNode().Address()})
	require.NoError(t, err)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		// b republishes its node: a applies alive messages, which rewrite
		// the node's fields, with new metadata (NotifyUpdate) or without.
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%4 == 0 {
				require.NoError(t, b.setBootstrapState(i%8 == 0, fmt.Sprint(i)))
			} else {
				require.NoError(t, b.list.UpdateNode(time.Second))
			}
		}
	}()
	ip := netip.MustParseAddr("127.0.0.1")
	seen := 0
	for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline); {
		if a.hasHost(ip) {
			seen++
		}
		for _, m := range a.Members() {
			_ = m.State
		}
	}
	close(stop)
	wg.Wait()
	require.Positive(t, seen)
	require.Len(t, a.Members(), 2)
}
