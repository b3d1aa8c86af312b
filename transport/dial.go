package transport

import (
	"net"
	"net/netip"
	"strings"
	"time"
)

// Dialer returns a TCP dialer that binds outgoing connections to localHost
// (any port), so peers and firewall rules see the node's own address: the
// chaos suite partitions nodes sharing one machine by their 127.0.0.x source
// address. localHost must be an IP literal; "", unspecified addresses
// (0.0.0.0, ::) and host names leave the source to the kernel.
func Dialer(localHost string, timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(localHost, "["), "]"))
	if err == nil && !ip.IsUnspecified() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip.Unmap(), 0))
	}
	return d
}
