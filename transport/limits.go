package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Defaults of the node-wide bounds (Config).
const (
	DefaultMaxConns         = 1024
	DefaultMaxInFlightBytes = 256 << 20
	DefaultFrameTimeout     = 30 * time.Second
	// DefaultIdleTimeout is Kafka's connections.max.idle.ms. Clients drop
	// their own idle connections sooner (clientIdleTimeout), so that a
	// request never races the server closing the connection under it.
	DefaultIdleTimeout = 10 * time.Minute
)

// byteSem is a counting semaphore of bytes whose waiters honour a context.
type byteSem struct {
	size int64

	mu    sync.Mutex
	cur   int64
	waits int
	freed chan struct{} // closed and replaced whenever bytes are released
}

func newByteSem(size int64) *byteSem {
	return &byteSem{size: size, freed: make(chan struct{})}
}

// acquire takes n bytes (at most size), waiting until they are free.
func (s *byteSem) acquire(ctx context.Context, n int64) error {
	n = min(n, s.size)
	s.mu.Lock()
	for s.cur+n > s.size {
		ch := s.freed
		s.waits++
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			s.mu.Lock()
			s.waits--
			s.mu.Unlock()
			return ctx.Err()
		}
		s.mu.Lock()
		s.waits--
	}
	s.cur += n
	s.mu.Unlock()
	return nil
}

func (s *byteSem) release(n int64) {
	n = min(n, s.size)
	s.mu.Lock()
	s.cur -= n
	close(s.freed)
	s.freed = make(chan struct{})
	s.mu.Unlock()
}

func (s *byteSem) used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *byteSem) waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waits
}

// errNeedMore tells parseRequestHead that the envelope's first fields are
// not complete in the bytes given.
var errNeedMore = errors.New("need more bytes")

// parseRequestHead reads the id and method from the first bytes of a frame
// body (after the length prefix): the envelope's array header and its
// first two fields, at most maxHeadLen bytes. It returns errNeedMore when b
// ends before them, and another error when they are malformed.
func parseRequestHead(b []byte) (id uint64, method Method, err error) {
	pos := 0
	if len(b) == 0 {
		return 0, 0, errNeedMore
	}
	var fields uint64
	switch c := b[0]; {
	case c >= 0x90 && c <= 0x9f:
		fields, pos = uint64(c&0x0f), 1
	case c == 0xdc:
		if len(b) < 3 {
			return 0, 0, errNeedMore
		}
		fields, pos = uint64(b[1])<<8|uint64(b[2]), 3
	case c == 0xdd:
		if len(b) < 5 {
			return 0, 0, errNeedMore
		}
		fields, pos = uint64(b[1])<<24|uint64(b[2])<<16|uint64(b[3])<<8|uint64(b[4]), 5
	default:
		return 0, 0, fmt.Errorf("envelope is not an array (code 0x%02x)", c)
	}
	if fields < frameFields {
		return 0, 0, fmt.Errorf("envelope has %d fields, want at least %d", fields, frameFields)
	}
	id, n, err := parseUint(b[pos:])
	if err != nil {
		return 0, 0, fmt.Errorf("id: %w", err)
	}
	pos += n
	m, _, err := parseUint(b[pos:])
	if err != nil {
		return 0, 0, fmt.Errorf("method: %w", err)
	}
	if m > 0xff {
		return 0, 0, fmt.Errorf("method %d out of range", m)
	}
	return id, Method(m), nil
}

// maxHeadLen bounds the envelope prefix parseRequestHead needs: a 5-byte
// array header and two 9-byte uints.
const maxHeadLen = 5 + 9 + 9

// parseUint reads one msgpack unsigned integer (the encodings DecodeUint64
// accepts for non-negative values).
func parseUint(b []byte) (v uint64, n int, err error) {
	if len(b) == 0 {
		return 0, 0, errNeedMore
	}
	c := b[0]
	var size int
	switch {
	case c <= 0x7f:
		return uint64(c), 1, nil
	case c == 0xcc, c == 0xd0:
		size = 1
	case c == 0xcd, c == 0xd1:
		size = 2
	case c == 0xce, c == 0xd2:
		size = 4
	case c == 0xcf, c == 0xd3:
		size = 8
	default:
		return 0, 0, fmt.Errorf("not an unsigned integer (code 0x%02x)", c)
	}
	if len(b) < 1+size {
		return 0, 0, errNeedMore
	}
	for _, x := range b[1 : 1+size] {
		v = v<<8 | uint64(x)
	}
	if c >= 0xd0 && size < 8 && v>>(8*size-1) != 0 {
		return 0, 0, errors.New("negative integer")
	}
	if c == 0xd3 && v>>63 != 0 {
		return 0, 0, errors.New("negative integer")
	}
	return v, 1 + size, nil
}

// isTimeout reports whether err is a read deadline expiring.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
