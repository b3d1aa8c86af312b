package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/sluice-io/sluice/agent/flow"
)

// netcat is Flume's NetcatSource: one event per line of a TCP stream,
// answered "OK" once the channels committed it (ack-every-event).
type netcat struct {
	base
	tcpServer
	maxLine int
	ack     bool
	batch   int
}

func newNetcat(name string, p *flow.Props, proc flow.Processor, d flow.Deps) (flow.Source, error) {
	s := &netcat{base: newBase(name, proc, d, "netcat")}
	addr := net.JoinHostPort(p.Required("bind"), p.Required("port"))
	maxLine := p.Int("max-line-length", 512)
	s.ack = p.Bool("ack-every-event", true)
	if err := p.Err(); err != nil {
		return nil, err
	}
	if err := positive(p, "max-line-length", maxLine); err != nil {
		return nil, err
	}
	s.maxLine = int(maxLine)
	s.batch = 100
	s.tcpServer = tcpServer{b: &s.base, addrs: []string{addr}, serve: s.serve}
	return s, nil
}

func (s *netcat) Start(context.Context) error {
	s.begin()
	return s.listen()
}

func (s *netcat) Stop(ctx context.Context) error { return s.finish(ctx, s.unblock) }

// serve reads lines; the lines already buffered go to the channels as one
// batch, then each gets its "OK". While the channels are full nothing more
// is read, so the client is pushed back by TCP flow control.
func (s *netcat) serve(c net.Conn, _ int) {
	r := bufio.NewReaderSize(c, max(4096, s.maxLine+1))
	w := bufio.NewWriter(c)
	for {
		var (
			evs     []flow.Event
			replies []string
			readErr error
		)
		for len(evs) < s.batch {
			line, err := readLine(r, s.maxLine)
			if errors.Is(err, errLineTooLong) {
				s.c.Add(flow.EventReadFail, 1)
				replies = append(replies, fmt.Sprintf("FAILED: Event exceeds the maximum length (%d chars, including EOL)\n", s.maxLine))
				continue
			}
			if err != nil {
				readErr = err
				break
			}
			evs = append(evs, flow.Event{Body: line})
			replies = append(replies, "OK\n")
			if !bytes.Contains(peekBuffered(r), []byte{'\n'}) {
				break // deliver what we have rather than wait for more
			}
		}
		if err := s.deliver(evs); err != nil {
			s.log.Warn("events not accepted", "events", len(evs), "err", err)
			msg := "FAILED: " + err.Error() + "\n"
			for i := range replies {
				if replies[i] == "OK\n" {
					replies[i] = msg
				}
			}
		}
		if !s.flush(w, replies) || readErr != nil {
			if readErr != nil && readErr != io.EOF && !s.stopping() {
				s.log.Debug("connection ended", "err", readErr)
			}
			return
		}
	}
}

func (s *netcat) flush(w *bufio.Writer, replies []string) bool {
	if !s.ack || len(replies) == 0 {
		return true
	}
	for _, r := range replies {
		w.WriteString(r)
	}
	return w.Flush() == nil
}

func peekBuffered(r *bufio.Reader) []byte {
	b, _ := r.Peek(r.Buffered())
	return b
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its "\n" (and "\r"). A line of
// more than max bytes, EOL included as Flume counts it, is consumed
// entirely and reported as errLineTooLong. A last line without EOL counts
// once the client has closed its side.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	over := false
	for {
		frag, err := r.ReadSlice('\n')
		if !over {
			line = append(line, frag...)
			if len(line) > max {
				over, line = true, nil
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		switch {
		case over && (err == nil || err == io.EOF):
			return nil, errLineTooLong
		case err == io.EOF && len(line) > 0:
			return trimEOL(line), nil
		case err != nil:
			return nil, err
		}
		return trimEOL(line), nil
	}
}

func trimEOL(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

// netcatUDP is Flume's NetcatUdpSource: one event per datagram.
type netcatUDP struct {
	base
	udp
	remoteHeader string
}

func newNetcatUDP(name string, p *flow.Props, proc flow.Processor, d flow.Deps) (flow.Source, error) {
	s := &netcatUDP{base: newBase(name, proc, d, "netcatudp")}
	addr := net.JoinHostPort(p.Required("bind"), p.Required("port"))
	s.remoteHeader = p.String("remoteAddressHeader", "")
	if err := p.Err(); err != nil {
		return nil, err
	}
	s.udp = udp{b: &s.base, addr: addr, handle: s.handle}
	return s, nil
}

func (s *netcatUDP) Start(context.Context) error {
	s.begin()
	return s.listen()
}

func (s *netcatUDP) Stop(ctx context.Context) error { return s.finish(ctx, s.unblock) }

func (s *netcatUDP) handle(pkt []byte, from net.Addr) flow.Event {
	pkt = bytes.TrimSuffix(pkt, []byte("\n"))
	ev := flow.Event{Body: bytes.Clone(pkt)}
	if s.remoteHeader != "" {
		ev.SetHeader(s.remoteHeader, from.String())
	}
	return ev
}
