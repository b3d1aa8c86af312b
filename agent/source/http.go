package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
)

// httpSource is Flume's HTTPSource with its JSONHandler: a POST carries
// [{"headers":{...},"body":"..."}, ...], which goes to the channels as one
// batch; 200 once committed, 400 for a body the handler cannot read, 503
// when the channels are full (the client retries later).
type httpSource struct {
	base
	addr    string
	maxBody int64
	ln      net.Listener
	srv     *http.Server
}

// maxHTTPBody bounds one request, so one client cannot exhaust memory.
const maxHTTPBody = 32 << 20

func newHTTP(name string, p *flow.Props, proc flow.Processor, d flow.Deps) (flow.Source, error) {
	s := &httpSource{base: newBase(name, proc, d, "http"), maxBody: maxHTTPBody}
	s.addr = net.JoinHostPort(p.String("bind", "0.0.0.0"), p.Required("port"))
	handler := p.String("handler", "org.apache.flume.source.http.JSONHandler")
	if err := p.Err(); err != nil {
		return nil, err
	}
	switch handler {
	case "org.apache.flume.source.http.JSONHandler", "json", "JSONHandler":
	default:
		return nil, errorf(p, "handler", "unknown handler %q (org.apache.flume.source.http.JSONHandler)", handler)
	}
	if p.Bool("enableSSL", false) || p.Bool("ssl", false) {
		return nil, errorf(p, "ssl", "TLS is not supported by this source")
	}
	return s, p.Err()
}

func (s *httpSource) Start(context.Context) error {
	s.begin()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("source %s: listen on %s: %w", s.name, s.addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.handle),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return s.run },
	}
	s.spawn(func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	})
	return nil
}

func (s *httpSource) Stop(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	// Shutdown waits for requests in flight, whose batches then commit.
	err := s.srv.Shutdown(ctx)
	if ferr := s.finish(ctx, nil); err == nil {
		err = ferr
	}
	return err
}

// Addrs returns the bound address.
func (s *httpSource) Addrs() []net.Addr { return []net.Addr{s.ln.Addr()} }

// jsonEvent is one element of the JSONHandler format.
type jsonEvent struct {
	Headers map[string]string `json:"headers"`
	Body    *string           `json:"body"`
}

func (s *httpSource) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "only POST is supported", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if _, params, err := mime.ParseMediaType(ct); err == nil {
			if cs := params["charset"]; cs != "" && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
				s.c.Add(flow.EventReadFail, 1)
				http.Error(w, fmt.Sprintf("unsupported charset %q (UTF-8 only)", cs), http.StatusBadRequest)
				return
			}
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("request body larger than %d bytes", s.maxBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading request: "+err.Error(), http.StatusBadRequest)
		return
	}
	evs, err := decodeJSONEvents(data)
	if err != nil {
		s.c.Add(flow.EventReadFail, 1)
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.c.Add(flow.AppendBatchReceivedCount, 1)
	s.c.Add(flow.EventReceivedCount, int64(len(evs)))
	if len(evs) > 0 {
		if err := s.process(r.Context(), evs); err != nil {
			if errors.Is(err, flow.ErrChannelFull) {
				http.Error(w, "Error appending event to channel. Channel might be full. "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			s.log.Warn("batch not accepted", "events", len(evs), "err", err)
			http.Error(w, "error appending events to the channel: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	s.c.Add(flow.AppendBatchAcceptedCount, 1)
	w.WriteHeader(http.StatusOK)
}

// decodeJSONEvents reads Flume's JSONHandler format: always an array.
func decodeJSONEvents(data []byte) ([]flow.Event, error) {
	var in []jsonEvent
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("want a JSON array of {\"headers\":{...},\"body\":\"...\"}: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON array")
	}
	if in == nil {
		return nil, errors.New("want a JSON array, got null")
	}
	evs := make([]flow.Event, len(in))
	for i, e := range in {
		evs[i].Headers = e.Headers
		if evs[i].Headers == nil {
			evs[i].Headers = map[string]string{}
		}
		if e.Body != nil {
			evs[i].Body = []byte(*e.Body)
		}
	}
	return evs, nil
}
