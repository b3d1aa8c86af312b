package client

import (
	"errors"

	"github.com/sluice-io/sluice/transport"
)

// ErrUnknownOutcome marks an error after which a write may or may not have
// taken effect: the request was sent but no definite answer came back before
// the caller gave up. IsUnknownOutcome reports it.
var ErrUnknownOutcome = errors.New("outcome unknown")

// ErrClosed is returned by a closed Client, Producer or Consumer.
var ErrClosed = errors.New("client: closed")

// IsRetriable reports whether retrying the same request may succeed: the
// server answered with a retriable code (not leader, unavailable, shutting
// down, timeout) or the request never got a reply. Errors caused by the
// caller's context ending are not retriable.
func IsRetriable(err error) bool {
	if err == nil {
		return false
	}
	if code := transport.CodeOf(err); code != 0 {
		return code.Retriable() || code == transport.ErrTimeout
	}
	if errors.Is(err, transport.ErrNotSent) || errors.Is(err, transport.ErrNoReply) {
		return true
	}
	return false
}

// IsUnknownOutcome reports whether the failed request may nevertheless have
// taken effect (sent but no reply, a server-side timeout, or a produce given
// up after such an attempt).
func IsUnknownOutcome(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnknownOutcome) || errors.Is(err, transport.ErrNoReply) {
		return true
	}
	return transport.CodeOf(err) == transport.ErrTimeout
}

// outcome classifies one failed attempt.
type outcome int

const (
	// notApplied: the server definitely did not apply the request (it was
	// never sent, or the server rejected it).
	notApplied outcome = iota
	// maybeApplied: sent, no definite answer.
	maybeApplied
)

// attemptOutcome tells whether a failed attempt may have taken effect.
// Anything that is neither a server reply nor a "never sent" transport
// error counts as unknown, to stay on the safe side.
func attemptOutcome(err error) outcome {
	if code := transport.CodeOf(err); code != 0 {
		if code == transport.ErrTimeout {
			return maybeApplied
		}
		return notApplied
	}
	if errors.Is(err, transport.ErrNotSent) {
		return notApplied
	}
	return maybeApplied
}
