package node

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// bootstrapSettle is how long the chosen voters must agree on the voter
// set before they bootstrap: several gossip rounds, so that a view that is
// about to change (more nodes arriving) does not bootstrap a set it would
// not choose a moment later.
const bootstrapSettle = time.Second

// bootstrapLoop forms the metadata group once, the Consul way, but without
// a second cluster ever:
//
//   - A node with metadata Raft state never bootstraps; it says so in its
//     gossip metadata.
//   - A node without state first completes its gossip join, then looks for
//     a peer that has state: if there is one, a cluster exists (this node
//     was added later, or its data dir was wiped) and the node waits for
//     the metadata leader to replicate to it (it is in, or will be added
//     to, the configuration).
//   - Otherwise, once gossip shows at least BootstrapExpect alive nodes,
//     the voters are the BootstrapExpect lowest ids. Each of them publishes
//     a digest of that set; a voter bootstraps only when every chosen voter
//     has published the same digest for bootstrapSettle. More than
//     BootstrapExpect nodes starting together therefore agree on one set,
//     and a node outside it waits to be added.
func (n *Node) bootstrapLoop() {
	select {
	case <-n.joined:
	case <-n.ctx.Done():
		return
	}
	var (
		agreedOn    string
		agreedSince time.Time
		waitLogged  bool
	)
	for {
		if n.metaRG.hasState() {
			n.publishBootstrap(true, "")
			return
		}
		alive := n.members.alive()
		existing := ""
		for _, m := range alive {
			if m.ID != n.cfg.ID && m.Raft {
				existing = m.ID
				break
			}
		}
		proposal := ""
		var voters []string
		if existing == "" && len(alive) >= n.cfg.BootstrapExpect {
			ids := make([]string, 0, len(alive))
			for _, m := range alive {
				ids = append(ids, m.ID)
			}
			slices.Sort(ids)
			voters = ids[:n.cfg.BootstrapExpect]
			if slices.Contains(voters, n.cfg.ID) {
				proposal = voterDigest(voters)
			}
		}
		n.publishBootstrap(false, proposal)
		switch {
		case existing != "":
			agreedOn = ""
			if !waitLogged {
				n.logger.Info("a metadata group exists; waiting for its leader to add this node", "peer_with_state", existing)
				waitLogged = true
			}
		case proposal == "":
			agreedOn = ""
		case !allPropose(alive, voters, n.cfg.ID, proposal):
			agreedOn = ""
		case agreedOn != proposal:
			agreedOn, agreedSince = proposal, time.Now()
		case time.Since(agreedSince) >= bootstrapSettle:
			servers := make([]raft.Server, 0, len(voters))
			for _, m := range alive {
				if slices.Contains(voters, m.ID) {
					servers = append(servers, raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RPCAddr)})
				}
			}
			n.logger.Info("bootstrapping metadata group", "voters", voters)
			if err := n.metaRG.bootstrap(servers); err != nil {
				n.logger.Error("bootstrap metadata group", "err", err)
			} else {
				n.bootstrapped.Store(true)
			}
			continue
		}
		if !n.sleep(250*time.Millisecond, n.members.Changed()) {
			return
		}
	}
}

func (n *Node) publishBootstrap(hasRaft bool, proposal string) {
	if err := n.members.setBootstrapState(hasRaft, proposal); err != nil {
		n.logger.Debug("publish bootstrap state", "err", err)
	}
}

// allPropose reports whether every voter (other than self, whose proposal
// is known) is alive and publishes proposal.
func allPropose(alive []member, voters []string, self, proposal string) bool {
	for _, v := range voters {
		if v == self {
			continue
		}
		i := slices.IndexFunc(alive, func(m member) bool { return m.ID == v })
		if i < 0 || alive[i].Proposal != proposal {
			return false
		}
	}
	return true
}

// voterDigest names a voter set compactly for gossip metadata.
func voterDigest(voters []string) string {
	sum := sha256.Sum256([]byte(strings.Join(voters, "\x00")))
	return hex.EncodeToString(sum[:8])
}
