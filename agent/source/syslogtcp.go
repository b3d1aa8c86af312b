package source

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/sluice-io/sluice/agent/flow"
)

// syslogTCP is Flume's SyslogTcpSource, and with several ports its
// MultiportSyslogTCPSource. Syslog over TCP has no acknowledgement: what
// this source can do is stop reading while the channels are full, so
// senders block instead of losing messages.
type syslogTCP struct {
	base
	tcpServer
	parser     *syslogParser
	eventSize  int
	batch      int
	portHeader string
	ipHeader   string
	hostHeader string
}

func newSyslogTCP(name string, p *flow.Props, proc flow.Processor, d flow.Deps) (flow.Source, error) {
	return buildSyslogTCP(name, p, proc, d, "syslogtcp", false)
}

func newMultiportSyslog(name string, p *flow.Props, proc flow.Processor, d flow.Deps) (flow.Source, error) {
	return buildSyslogTCP(name, p, proc, d, "multiport_syslogtcp", true)
}

func buildSyslogTCP(name string, p *flow.Props, proc flow.Processor, d flow.Deps, kind string, multi bool) (flow.Source, error) {
	s := &syslogTCP{base: newBase(name, proc, d, kind)}
	host := p.Required("host")
	var addrs []string
	if multi {
		ports := p.List("ports")
		if len(ports) == 0 {
			p.Required("ports")
		}
		for _, port := range ports {
			addrs = append(addrs, net.JoinHostPort(host, port))
		}
		s.portHeader = p.String("portHeader", "")
	} else {
		addrs = []string{net.JoinHostPort(host, p.Required("port"))}
	}
	size := p.Int("eventSize", 2500)
	batch := p.Int("batchSize", 100)
	s.ipHeader = p.String("clientIPHeader", "")
	s.hostHeader = p.String("clientHostnameHeader", "")
	if cs := p.String("charset.default", "UTF-8"); !strings.EqualFold(cs, "UTF-8") && !strings.EqualFold(cs, "UTF8") {
		return nil, errorf(p, "charset.default", "%q is not supported (UTF-8 only; bodies are kept as bytes)", cs)
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	if err := positive(p, "batchSize", batch); err != nil {
		return nil, err
	}
	parser, err := newSyslogParser(p)
	if err != nil {
		return nil, err
	}
	// Flume's floor (SyslogUtils.MIN_SIZE).
	s.eventSize, s.batch, s.parser = max(int(size), 10), int(batch), parser
	s.tcpServer = tcpServer{b: &s.base, addrs: addrs, serve: s.serve}
	return s, nil
}

func (s *syslogTCP) Start(context.Context) error {
	s.begin()
	return s.listen()
}

func (s *syslogTCP) Stop(ctx context.Context) error { return s.finish(ctx, s.unblock) }

func (s *syslogTCP) serve(c net.Conn, port int) {
	r := bufio.NewReaderSize(c, 64<<10)
	var clientIP, clientHost string
	if s.ipHeader != "" || s.hostHeader != "" {
		clientIP, _, _ = net.SplitHostPort(c.RemoteAddr().String())
		if s.hostHeader != "" {
			if names, err := net.LookupAddr(clientIP); err == nil && len(names) > 0 {
				clientHost = strings.TrimSuffix(names[0], ".")
			} else {
				clientHost = clientIP
			}
		}
	}
	for {
		var (
			evs     []flow.Event
			readErr error
		)
		for len(evs) < s.batch {
			frame, incomplete, err := readSyslogFrame(r, s.eventSize)
			if err != nil {
				readErr = err
				break
			}
			ev := s.parser.parse(frame, incomplete)
			if ev.Headers[HeaderSyslogStatus] != "" {
				s.c.Add(flow.EventReadFail, 1)
			}
			if s.portHeader != "" {
				ev.Headers[s.portHeader] = strconv.Itoa(port)
			}
			if s.ipHeader != "" {
				ev.Headers[s.ipHeader] = clientIP
			}
			if s.hostHeader != "" {
				ev.Headers[s.hostHeader] = clientHost
			}
			evs = append(evs, ev)
			if !bytes.Contains(peekBuffered(r), []byte{'\n'}) {
				break // deliver what we have rather than wait for more
			}
		}
		if err := s.deliver(evs); err != nil {
			// No acknowledgement to withhold: the sender has gone on.
			s.log.Error("syslog events not accepted by the channels, dropped", "events", len(evs), "err", err)
		}
		if readErr != nil {
			if readErr != io.EOF && !s.stopping() {
				s.log.Debug("connection ended", "err", readErr)
			}
			return
		}
	}
}

// syslogUDP is Flume's SyslogUDPSource: one message per datagram.
type syslogUDP struct {
	base
	udp
	parser     *syslogParser
	ipHeader   string
	hostHeader string
}

func newSyslogUDP(name string, p *flow.Props, proc flow.Processor, d flow.Deps) (flow.Source, error) {
	s := &syslogUDP{base: newBase(name, proc, d, "syslogudp")}
	addr := net.JoinHostPort(p.Required("host"), p.Required("port"))
	s.ipHeader = p.String("clientIPHeader", "")
	s.hostHeader = p.String("clientHostnameHeader", "")
	if err := p.Err(); err != nil {
		return nil, err
	}
	parser, err := newSyslogParser(p)
	if err != nil {
		return nil, err
	}
	s.parser = parser
	s.udp = udp{b: &s.base, addr: addr, handle: s.handle}
	return s, nil
}

func (s *syslogUDP) Start(context.Context) error {
	s.begin()
	return s.listen()
}

func (s *syslogUDP) Stop(ctx context.Context) error { return s.finish(ctx, s.unblock) }

// maxUDPMessage is Flume's SyslogUDPSource limit on one datagram.
const maxUDPMessage = 2500

func (s *syslogUDP) handle(pkt []byte, from net.Addr) flow.Event {
	frame := trimEOL(pkt)
	incomplete := len(frame) > maxUDPMessage
	if incomplete {
		frame = frame[:maxUDPMessage]
	}
	ev := s.parser.parse(frame, incomplete)
	if ev.Headers[HeaderSyslogStatus] != "" {
		s.c.Add(flow.EventReadFail, 1)
	}
	if s.ipHeader != "" || s.hostHeader != "" {
		ip, _, _ := net.SplitHostPort(from.String())
		if s.ipHeader != "" {
			ev.Headers[s.ipHeader] = ip
		}
		if s.hostHeader != "" {
			host := ip
			if names, err := net.LookupAddr(ip); err == nil && len(names) > 0 {
				host = strings.TrimSuffix(names[0], ".")
			}
			ev.Headers[s.hostHeader] = host
		}
	}
	return ev
}
