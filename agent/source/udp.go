package source

import (
	"errors"
	"fmt"
	"net"

	"github.com/sluice-io/sluice/agent/flow"
)

// udp reads datagrams, one event each. A reader goroutine queues them and
// a deliverer batches what is queued; while the channels are full the
// queue fills, then the socket buffer, and only then does the kernel drop
// datagrams (UDP has no back-pressure; the kernel counts those drops).
type udp struct {
	b      *base
	addr   string
	pc     net.PacketConn
	handle func(pkt []byte, from net.Addr) flow.Event
}

const udpBatch = 100

func (u *udp) listen() error {
	pc, err := net.ListenPacket("udp", u.addr)
	if err != nil {
		return fmt.Errorf("source %s: listen on udp %s: %w", u.b.name, u.addr, err)
	}
	if uc, ok := pc.(*net.UDPConn); ok {
		_ = uc.SetReadBuffer(4 << 20)
	}
	u.pc = pc
	q := make(chan flow.Event, 1000)
	u.b.spawn(func() {
		defer close(q)
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					u.b.log.Warn("udp read failed", "err", err)
				}
				return
			}
			q <- u.handle(buf[:n], from)
		}
	})
	u.b.spawn(func() {
		for ev := range q {
			evs := []flow.Event{ev}
		more:
			for len(evs) < udpBatch {
				select {
				case ev, ok := <-q:
					if !ok {
						break more
					}
					evs = append(evs, ev)
				default:
					break more
				}
			}
			if err := u.b.deliver(evs); err != nil {
				u.b.log.Warn("datagrams not accepted by the channels", "events", len(evs), "err", err)
			}
		}
	})
	return nil
}

func (u *udp) unblock() {
	if u.pc != nil {
		u.pc.Close()
	}
}

// Addrs returns the bound address.
func (u *udp) Addrs() []net.Addr { return []net.Addr{u.pc.LocalAddr()} }
