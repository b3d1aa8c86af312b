package node

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/sluice-io/sluice/transport"
)

// The node's side of transport security: who may talk Raft and send
// node-to-node RPCs to this node.
//
// A peer is recognised by its IP address: the host of a current gossip
// member (alive or suspect, as memberlist reports it, both its gossip and
// its RPC address) or of a broker registered in the metadata. Registered
// brokers stay allowed while gossip has lost them, so that a gossip split
// cannot cut Raft traffic between nodes the cluster already admitted. On a
// single-host cluster every node is 127.0.0.1 and so is every local
// process: the check then only keeps other machines out, and mutual TLS
// (--tls-cert/--tls-key/--tls-ca) is the real protection: with it, Raft and
// node-to-node RPCs also need a node certificate (valid for server auth),
// which client certificates are not.

// isPeerHost reports whether ip belongs to this node, a gossip member or a
// registered broker.
func (n *Node) isPeerHost(ip netip.Addr) bool {
	ip = ip.Unmap()
	if h := hostIP(n.cfg.Addr); h.IsValid() && h == ip {
		return true
	}
	if h := hostIP(n.cfg.GossipAddr); h.IsValid() && h == ip {
		return true
	}
	if n.members != nil && n.members.hasHost(ip) {
		return true
	}
	if n.meta != nil {
		for _, b := range n.meta.Brokers() {
			if hostIP(b.RPCAddr) == ip {
				return true
			}
		}
	}
	return false
}

// callerIsPeer reports whether the connection of a node-to-node RPC comes
// from a peer's address.
func (n *Node) callerIsPeer(ctx context.Context) bool {
	a, ok := transport.PeerAddr(ctx).(*net.TCPAddr)
	return ok && transport.PeerMayBeNode(ctx) && n.isPeerHost(a.AddrPort().Addr())
}

// hostIP returns the IP of a host:port address, or the zero Addr when the
// host is a name or unspecified (such a node dials from whatever address
// the kernel picks; its gossip address then identifies it).
func hostIP(addr string) netip.Addr {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.Addr{}
	}
	ip, err := netip.ParseAddr(h)
	if err != nil || ip.IsUnspecified() {
		return netip.Addr{}
	}
	return ip.Unmap()
}

// muxConfig is the transport configuration of the node's port.
func (n *Node) muxConfig() transport.Config {
	return transport.Config{
		Addr:          n.cfg.Addr,
		AdvertiseAddr: n.cfg.AdvertiseAddr,
		MaxFrameBytes: n.cfg.MaxFrameBytes,
		Logger:        n.logger,
		AllowRaft:     n.isPeerHost,
		TLS:           n.tls.server,
		DialTLS:       n.tls.client,
		// Refused from their length prefix, before the frame is read: a
		// produce carries one batch plus small fields, an offset commit
		// a group name and a little metadata.
		MethodMaxBytes: map[transport.Method]int{
			transport.MethodProduce:      n.cfg.MaxBatchBytes + requestOverhead,
			transport.MethodOffsetCommit: requestOverhead,
		},
		// A producer keeps several batches of a partition in flight on
		// one connection: they go to Raft in the order they were sent.
		OrderedMethods:   []transport.Method{transport.MethodProduce},
		MaxConns:         n.cfg.MaxConns,
		MaxInFlightBytes: n.cfg.MaxInFlightBytes,
	}
}

// requestOverhead bounds a request's fields besides its payload (topic,
// group and metadata strings, numbers, the envelope).
const requestOverhead = 64 << 10

// tlsConfigs are the node's two TLS roles: serving its port, and dialling
// peers (Raft and forwarded RPCs) with its own certificate as the client's.
type tlsConfigs struct {
	server, client *tls.Config
}

// loadTLS reads the TLS files of the configuration, if any.
func (n *Node) loadTLS() error {
	c := n.cfg
	if c.TLSCAFile == "" && c.TLSCertFile == "" && c.TLSKeyFile == "" {
		return nil
	}
	files := transport.TLSFiles{CA: c.TLSCAFile, Cert: c.TLSCertFile, Key: c.TLSKeyFile}
	if files.CA == "" || files.Cert == "" || files.Key == "" {
		return errors.New("--tls-ca, --tls-cert and --tls-key go together")
	}
	var err error
	if n.tls.server, err = transport.ServerTLS(files); err != nil {
		return err
	}
	if n.tls.client, err = transport.ClientTLS(files); err != nil {
		return err
	}
	return nil
}

// gossipKey decodes --gossip-key: nil when unset.
func gossipKey(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("--gossip-key is not base64: %w", err)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("--gossip-key must decode to 16, 24 or 32 bytes (AES-128/192/256), got %d", len(key))
}
