package sink

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
)

// FileRoll writes bodies, one per line (the TEXT serializer), into
// sink.directory, starting a new file every sink.rollInterval seconds (30;
// 0 never). Each batch is fsynced before the transaction commits.
type FileRoll struct {
	base
	dir      string
	interval time.Duration

	mu      sync.Mutex
	f       *os.File
	opened  time.Time
	prefix  int64
	counter int
}

func NewFileRoll(name string, p *flow.Props, ch flow.Channel, d flow.Deps) (flow.Sink, error) {
	dir := p.Required("sink.directory")
	interval := p.Seconds("sink.rollInterval", 30*time.Second)
	if ser := p.String("sink.serializer", "TEXT"); ser != "TEXT" && ser != "text" {
		return nil, fmt.Errorf("%s.sink.serializer: only TEXT is supported, got %q", p.Prefix, ser)
	}
	n, err := batchSize(p, 100, "sink.batchSize", "batchSize")
	if err != nil {
		return nil, err
	}
	return &FileRoll{base: newBase(name, ch, d, n), dir: dir, interval: interval, prefix: time.Now().UnixMilli()}, nil
}

func (s *FileRoll) Start(context.Context) error {
	s.counters.MarkStart()
	return os.MkdirAll(s.dir, 0o755)
}

func (s *FileRoll) Stop(context.Context) error {
	s.counters.MarkStop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		err := s.f.Close()
		s.f = nil
		return err
	}
	return nil
}

func (s *FileRoll) Process(ctx context.Context) (flow.Status, error) {
	return s.drain(ctx, func(_ context.Context, evs []flow.Event) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.f != nil && s.interval > 0 && time.Since(s.opened) >= s.interval {
			s.f.Close()
			s.f = nil
		}
		if s.f == nil {
			s.counter++
			f, err := os.OpenFile(filepath.Join(s.dir, fmt.Sprintf("%d-%d", s.prefix, s.counter)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return err
			}
			s.f, s.opened = f, time.Now()
			s.counters.Add(flow.ConnectionCreatedCount, 1)
		}
		var b bytes.Buffer
		for _, ev := range evs {
			b.Write(ev.Body)
			b.WriteByte('\n')
		}
		if _, err := s.f.Write(b.Bytes()); err != nil {
			return err
		}
		return s.f.Sync()
	})
}

// HTTP posts each event's body to endpoint (Flume's HTTP sink); a 2XX
// reply counts as delivered, anything else rolls the batch back.
// Properties: endpoint (required), connectTimeout and requestTimeout (ms,
// 5000), contentTypeHeader (text/plain), acceptHeader (text/plain),
// batchSize (100).
type HTTP struct {
	base
	endpoint    string
	contentType string
	accept      string
	hc          *http.Client
}

func NewHTTP(name string, p *flow.Props, ch flow.Channel, d flow.Deps) (flow.Sink, error) {
	endpoint := p.Required("endpoint")
	rt := p.Millis("requestTimeout", 5*time.Second)
	ct := p.Millis("connectTimeout", 5*time.Second)
	n, err := batchSize(p, 100, "batchSize")
	if err != nil {
		return nil, err
	}
	_ = ct // the transport's dial timeout below
	return &HTTP{
		base:        newBase(name, ch, d, n),
		endpoint:    endpoint,
		contentType: p.String("contentTypeHeader", "text/plain"),
		accept:      p.String("acceptHeader", "text/plain"),
		hc:          &http.Client{Timeout: rt + ct},
	}, nil
}

func (s *HTTP) Start(context.Context) error { s.counters.MarkStart(); return nil }
func (s *HTTP) Stop(context.Context) error {
	s.counters.MarkStop()
	s.hc.CloseIdleConnections()
	return nil
}

func (s *HTTP) Process(ctx context.Context) (flow.Status, error) {
	return s.drain(ctx, func(ctx context.Context, evs []flow.Event) error {
		for _, ev := range evs {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(ev.Body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", s.contentType)
			req.Header.Set("Accept", s.accept)
			resp, err := s.hc.Do(req)
			if err != nil {
				s.counters.Add(flow.ConnectionFailedCount, 1)
				return err
			}
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("POST %s: %s", s.endpoint, resp.Status)
			}
		}
		return nil
	})
}
