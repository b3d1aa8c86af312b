package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultMaxFrameBytes bounds one request frame (Kafka's
// socket.request.max.bytes is 100 MiB; a produce is bounded far lower by
// the node's batch limit anyway).
const DefaultMaxFrameBytes = 64 << 20

// Config configures a Server.
type Config struct {
	Addr          string // host:port to listen on
	Cluster       Cluster
	Groups        Groups
	MaxFrameBytes int // default DefaultMaxFrameBytes
	// MaxBatchBytes is the largest record batch a produce may carry; a
	// larger one gets MESSAGE_TOO_LARGE. Default 1 MiB.
	MaxBatchBytes int
	// IdleTimeout closes a connection that sends nothing for this long;
	// default 10 minutes (Kafka's connections.max.idle.ms).
	IdleTimeout time.Duration
	Logger      *slog.Logger
}

// Server is a Kafka wire listener.
type Server struct {
	cfg    Config
	logger *slog.Logger
	ln     net.Listener

	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Listen binds the listener; Serve accepts connections.
func Listen(cfg Config) (*Server, error) {
	if cfg.Cluster == nil || cfg.Groups == nil {
		return nil, errors.New("kafka: Cluster and Groups are required")
	}
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 1 << 20
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("kafka listen %s: %w", cfg.Addr, err)
	}
	s := &Server{cfg: cfg, logger: cfg.Logger.With("component", "kafka"), ln: ln, conns: map[net.Conn]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until Close.
func (s *Server) Serve() error {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("kafka accept: %w", err)
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Close stops accepting, closes every connection and waits for handlers.
func (s *Server) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// requestHeader is the Kafka request header (v1/v2; the client id stays a
// non-compact nullable string even in flexible versions).
type requestHeader struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      string
	ClientHost    string // the connection's remote host, not on the wire
}

// errClose marks a request the connection cannot survive (malformed,
// unknown, unsupported): the connection is closed with the reason logged.
type errClose struct{ reason string }

func (e *errClose) Error() string { return e.reason }

func closeErr(format string, args ...any) error {
	return &errClose{reason: fmt.Sprintf(format, args...)}
}

// decodeRequest parses one frame body (without its size prefix) into its
// header and request. It never panics on malformed input; the returned
// error explains what is wrong. An ApiVersions request at a version above
// what is advertised is returned with errUnsupportedApiVersions so it can be
// answered at v0 as clients expect.
func decodeRequest(frame []byte) (requestHeader, kmsg.Request, error) {
	var h requestHeader
	if len(frame) < 10 {
		return h, nil, closeErr("request header truncated (%d bytes)", len(frame))
	}
	h.Key = int16(binary.BigEndian.Uint16(frame[0:]))
	h.Version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.CorrelationID = int32(binary.BigEndian.Uint32(frame[4:]))
	n := int16(binary.BigEndian.Uint16(frame[8:]))
	rest := frame[10:]
	if n > 0 {
		if int(n) > len(rest) {
			return h, nil, closeErr("client id of %d bytes overruns the frame", n)
		}
		h.ClientID = string(rest[:n])
		rest = rest[n:]
	} else if n < -1 {
		return h, nil, closeErr("invalid client id length %d", n)
	}
	req := kmsg.RequestForKey(h.Key)
	if req == nil {
		return h, nil, closeErr("unknown API key %d", h.Key)
	}
	lo, hi, ok := supportedVersions(h.Key)
	if !ok {
		return h, nil, closeErr("API %s (key %d) is not supported", kmsg.NameForKey(h.Key), h.Key)
	}
	if h.Version < lo || h.Version > hi {
		if h.Key == apiVersionsKey {
			return h, nil, errUnsupportedApiVersions
		}
		return h, nil, closeErr("API %s version %d is not supported (supported %d..%d)", kmsg.NameForKey(h.Key), h.Version, lo, hi)
	}
	req.SetVersion(h.Version)
	if req.IsFlexible() {
		tr := tagReader{b: rest}
		kmsg.SkipTags(&tr)
		if tr.bad {
			return h, nil, closeErr("%s v%d: malformed header tags", kmsg.NameForKey(h.Key), h.Version)
		}
		rest = tr.b
	}
	if err := req.ReadFrom(rest); err != nil {
		return h, nil, closeErr("%s v%d: malformed request: %v", kmsg.NameForKey(h.Key), h.Version, err)
	}
	return h, req, nil
}

var errUnsupportedApiVersions = errors.New("ApiVersions version not supported")

// tagReader is the minimal kmsg.TagReader over a byte slice.
type tagReader struct {
	b   []byte
	bad bool
}

func (r *tagReader) Uvarint() uint32 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > 1<<31 {
		r.bad = true
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return uint32(v)
}

func (r *tagReader) Span(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.bad = true
		r.b = nil
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *tagReader) Ok() bool { return !r.bad }

// encodeResponse frames resp for correlation id corr.
func encodeResponse(key int16, corr int32, resp kmsg.Response) []byte {
	buf := make([]byte, 8, 256)
	binary.BigEndian.PutUint32(buf[4:], uint32(corr))
	// ApiVersions answers always use response header v0 (clients must be
	// able to read it before they know our versions).
	if resp.IsFlexible() && key != apiVersionsKey {
		buf = append(buf, 0)
	}
	buf = resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf
}

// serveConn reads requests one at a time and answers them in order, as a
// Kafka broker does: a client's pipelined requests (up to five produces
// of an idempotent producer) are then applied in the order sent.
func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	logger := s.logger.With("remote", c.RemoteAddr().String())
	remoteHost, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	remoteHost = "/" + remoteHost
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	br := bufio.NewReaderSize(c, 64<<10)
	bw := bufio.NewWriterSize(c, 64<<10)
	var size [4]byte
	for {
		c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		if _, err := io.ReadFull(br, size[:]); err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				logger.Debug("kafka connection closed", "err", err)
			}
			return
		}
		n := int32(binary.BigEndian.Uint32(size[:]))
		if n < 0 || int(n) > s.cfg.MaxFrameBytes {
			logger.Warn("closing kafka connection: frame size out of range", "size", n, "max", s.cfg.MaxFrameBytes)
			return
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(br, frame); err != nil {
			logger.Warn("closing kafka connection: truncated frame", "size", n, "err", err)
			return
		}
		hdr, req, err := decodeRequest(frame)
		hdr.ClientHost = remoteHost
		var resp kmsg.Response
		switch {
		case errors.Is(err, errUnsupportedApiVersions):
			resp = unsupportedApiVersions()
		case err != nil:
			logger.Warn("closing kafka connection", "reason", err.Error(), "client", hdr.ClientID)
			return
		default:
			resp, err = s.handle(ctx, hdr, req)
			if err != nil {
				logger.Warn("closing kafka connection", "reason", err.Error(), "api", kmsg.NameForKey(hdr.Key), "version", hdr.Version, "client", hdr.ClientID)
				return
			}
		}
		if resp == nil {
			continue // acks=0 produce: no reply
		}
		if _, err := bw.Write(encodeResponse(hdr.Key, hdr.CorrelationID, resp)); err != nil {
			return
		}
		// Flush only when no further request is already buffered, so a
		// pipelined burst is answered with few writes.
		if br.Buffered() == 0 {
			c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if err := bw.Flush(); err != nil {
				logger.Debug("kafka write failed", "err", err)
				return
			}
		}
	}
}

// handle dispatches one decoded request. A nil response means no reply.
func (s *Server) handle(ctx context.Context, hdr requestHeader, req kmsg.Request) (resp kmsg.Response, err error) {
	// A handler bug must cost one connection, not the node.
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("kafka handler panicked", "api", kmsg.NameForKey(hdr.Key), "panic", r)
			resp, err = nil, closeErr("internal error handling %s", kmsg.NameForKey(hdr.Key))
		}
	}()
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		return s.apiVersions(r), nil
	case *kmsg.MetadataRequest:
		return s.metadata(ctx, r), nil
	case *kmsg.ProduceRequest:
		return s.produce(ctx, r)
	case *kmsg.FetchRequest:
		return s.fetch(ctx, r), nil
	case *kmsg.ListOffsetsRequest:
		return s.listOffsets(ctx, r), nil
	case *kmsg.InitProducerIDRequest:
		return s.initProducerID(ctx, r), nil
	case *kmsg.CreateTopicsRequest:
		return s.createTopics(ctx, r), nil
	case *kmsg.DeleteTopicsRequest:
		return s.deleteTopics(ctx, r), nil
	case *kmsg.DescribeConfigsRequest:
		return s.describeConfigs(ctx, r), nil
	case *kmsg.FindCoordinatorRequest:
		return s.findCoordinator(r), nil
	case *kmsg.JoinGroupRequest:
		return s.joinGroup(ctx, r, hdr), nil
	case *kmsg.SyncGroupRequest:
		return s.syncGroup(ctx, r), nil
	case *kmsg.HeartbeatRequest:
		return s.heartbeat(r), nil
	case *kmsg.LeaveGroupRequest:
		return s.leaveGroup(r), nil
	case *kmsg.OffsetCommitRequest:
		return s.offsetCommit(ctx, r), nil
	case *kmsg.OffsetFetchRequest:
		return s.offsetFetch(ctx, r), nil
	case *kmsg.DescribeGroupsRequest:
		return s.describeGroups(ctx, r), nil
	case *kmsg.ListGroupsRequest:
		return s.listGroups(r), nil
	}
	return nil, closeErr("API %s has no handler", kmsg.NameForKey(hdr.Key))
}
