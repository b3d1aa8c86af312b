package source

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
)

// backoffOnError is how long a polling source waits after a failed batch
// (Flume's PollableSourceRunner waits up to 5 s).
const backoffOnError = time.Second

// execSource is Flume's ExecSource: each line the command prints is an
// event, batched by batchSize and batchTimeout; with restart the command
// runs again restartThrottle after it ends. While the channels are full
// the source stops reading, so the command blocks on its full pipe.
type execSource struct {
	base
	argv         []string
	restart      bool
	throttle     time.Duration
	logStderr    bool
	batch        int
	batchTimeout time.Duration

	mu  sync.Mutex
	cmd *exec.Cmd
}

func newExec(name string, p *flow.Props, proc flow.Processor, d flow.Deps) (flow.Source, error) {
	s := &execSource{base: newBase(name, proc, d, "exec")}
	command := p.Required("command")
	shell := p.String("shell", "")
	s.restart = p.Bool("restart", false)
	s.throttle = p.Millis("restartThrottle", 10*time.Second)
	s.logStderr = p.Bool("logStdErr", false)
	batch := p.Int("batchSize", 20)
	s.batchTimeout = p.Millis("batchTimeout", 3*time.Second)
	if err := p.Err(); err != nil {
		return nil, err
	}
	if err := positive(p, "batchSize", batch); err != nil {
		return nil, err
	}
	s.batch = int(batch)
	if shell != "" {
		// "shell = /bin/sh -c": the command is one argument of the shell.
		s.argv = append(strings.Fields(shell), command)
	} else {
		s.argv = strings.Fields(command)
	}
	return s, nil
}

func (s *execSource) Start(context.Context) error {
	s.begin()
	s.spawn(s.loop)
	return nil
}

func (s *execSource) Stop(ctx context.Context) error {
	return s.finish(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.cmd != nil && s.cmd.Process != nil {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
		}
	})
}

func (s *execSource) loop() {
	for {
		err := s.runOnce()
		if s.stopping() {
			return
		}
		s.log.Info("command exited", "command", s.argv, "err", err, "restart", s.restart)
		if !s.restart || !s.sleep(s.throttle) {
			return
		}
	}
}

func (s *execSource) runOnce() error {
	cmd := exec.CommandContext(s.run, s.argv[0], s.argv[1:]...)
	cmd.WaitDelay = time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr io.ReadCloser
	if s.logStderr {
		if stderr, err = cmd.StderrPipe(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.stopping() {
		s.mu.Unlock()
		return nil
	}
	err = cmd.Start()
	if err == nil {
		s.cmd = cmd
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if stderr != nil {
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				s.log.Info("command stderr", "line", sc.Text())
			}
		}()
	}

	lines := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		defer close(lines)
		r := bufio.NewReaderSize(stdout, 64<<10)
		for {
			l, err := r.ReadBytes('\n')
			if len(l) > 0 {
				lines <- trimEOL(l)
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr <- err
				}
				return
			}
		}
	}()
	var evs []flow.Event
	timer := time.NewTimer(s.batchTimeout)
	defer timer.Stop()
	flush := func() {
		if err := s.deliver(evs); err != nil {
			// Flume's ExecSource gives no delivery guarantee; at least say so.
			s.log.Error("command output not accepted by the channels, dropped", "events", len(evs), "err", err)
		}
		evs = nil
		timer.Reset(s.batchTimeout)
	}
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				done = true
				break
			}
			evs = append(evs, flow.Event{Body: l})
			if len(evs) >= s.batch {
				flush()
			}
		case <-timer.C:
			if len(evs) > 0 {
				flush()
			} else {
				timer.Reset(s.batchTimeout)
			}
		}
	}
	if len(evs) > 0 {
		flush()
	}
	err = cmd.Wait()
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
	select {
	case rerr := <-readErr:
		return rerr
	default:
	}
	return err
}
