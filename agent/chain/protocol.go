// Package chain is agent chaining, the role of Flume's avro source and
// sink: a sink that sends its channel's batches to the next agent, and a
// source that puts each batch into its own channels and acknowledges it
// only once they committed. The sending sink commits its transaction only
// after that acknowledgement, so an event leaves one agent's channel only
// once it is in the next agent's channel (Flume's multi-hop guarantee).
//
// The wire protocol is the project's own client RPC framing (transport:
// length-prefixed msgpack frames after the 'C' protocol byte), with one
// method of its own, AppendBatch.
package chain

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/transport"
)

// MethodAppendBatch is the chaining RPC: AppendBatchRequest ->
// AppendBatchResponse. It is numbered far from the node's methods so a
// sink pointed at a node (or a node's client at a chain source) gets a
// clear "unknown method" instead of a misread request.
const MethodAppendBatch transport.Method = 0xA0

// maxBatchEvents bounds one request, against forged counts.
const maxBatchEvents = 1 << 20

// AppendBatchRequest is one batch from a sending agent (Flume's
// appendBatch of AvroFlumeEvents).
type AppendBatchRequest struct {
	// Agent and Sink name the sender, for the receiver's logs.
	Agent  string      `msgpack:"agent"`
	Sink   string      `msgpack:"sink"`
	Events []WireEvent `msgpack:"events"`
}

// WireEvent is an event on the wire.
type WireEvent struct {
	Headers map[string]string `msgpack:"h"`
	Body    []byte            `msgpack:"b"`
}

// AppendBatchResponse acknowledges a batch: every event is committed in
// the receiver's required channels.
type AppendBatchResponse struct {
	Accepted int `msgpack:"accepted"`
}

var errBadRequest = errors.New("bad append batch request")

// decodeAppendBatch decodes and checks a request body. It walks the
// msgpack by hand so that a forged element count is refused before
// anything is allocated for it (each element takes at least one byte), and
// unknown fields may hold scalars only, so hostile nesting cannot recurse.
func decodeAppendBatch(body []byte) (AppendBatchRequest, error) {
	req, err := decodeRequest(body)
	if err != nil {
		return AppendBatchRequest{}, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	return req, nil
}

func decodeRequest(body []byte) (AppendBatchRequest, error) {
	var req AppendBatchRequest
	if len(body) == 0 {
		return req, errors.New("empty body")
	}
	rd := bytes.NewReader(body)
	dec := msgpack.NewDecoder(rd)
	n, err := mapLen(dec, rd)
	if err != nil {
		return req, fmt.Errorf("request: %w", err)
	}
	for range n {
		key, err := decodeString(dec, rd)
		if err != nil {
			return req, fmt.Errorf("request field name: %w", err)
		}
		switch key {
		case "agent":
			req.Agent, err = decodeString(dec, rd)
		case "sink":
			req.Sink, err = decodeString(dec, rd)
		case "events":
			req.Events, err = decodeEvents(dec, rd)
		default:
			err = skipScalar(dec, rd)
		}
		if err != nil {
			return req, fmt.Errorf("request field %q: %w", key, err)
		}
	}
	if rd.Len() != 0 {
		return req, fmt.Errorf("%d trailing bytes", rd.Len())
	}
	return req, nil
}

func decodeEvents(dec *msgpack.Decoder, rd *bytes.Reader) ([]WireEvent, error) {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, nil
	}
	if n > rd.Len() || n > maxBatchEvents {
		return nil, fmt.Errorf("%d events cannot fit in %d bytes (limit %d)", n, rd.Len(), maxBatchEvents)
	}
	evs := make([]WireEvent, n)
	for i := range evs {
		m, err := mapLen(dec, rd)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		for range m {
			key, err := decodeString(dec, rd)
			if err != nil {
				return nil, fmt.Errorf("event %d field name: %w", i, err)
			}
			switch key {
			case "h":
				evs[i].Headers, err = decodeHeaders(dec, rd)
			case "b":
				evs[i].Body, err = decodeBytes(dec, rd)
			default:
				err = skipScalar(dec, rd)
			}
			if err != nil {
				return nil, fmt.Errorf("event %d field %q: %w", i, key, err)
			}
		}
	}
	return evs, nil
}

func decodeHeaders(dec *msgpack.Decoder, rd *bytes.Reader) (map[string]string, error) {
	n, err := mapLen(dec, rd)
	if err != nil || n == 0 {
		return nil, err
	}
	h := make(map[string]string, n)
	for range n {
		k, err := decodeString(dec, rd)
		if err != nil {
			return nil, fmt.Errorf("header name: %w", err)
		}
		v, err := decodeString(dec, rd)
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
		h[k] = v
	}
	return h, nil
}

// mapLen reads a map header (nil counts as empty) and checks that its
// entries can fit in what is left.
func mapLen(dec *msgpack.Decoder, rd *bytes.Reader) (int, error) {
	n, err := dec.DecodeMapLen()
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, nil
	}
	if 2*n > rd.Len() {
		return 0, fmt.Errorf("map of %d entries cannot fit in %d bytes", n, rd.Len())
	}
	return n, nil
}

// strFits checks, before the library allocates for it, that the string
// or bin value at the reader's position is no longer than what is left.
// The decoder reads a bytes.Reader directly, unbuffered, so rd's position
// is the decoder's.
func strFits(rd *bytes.Reader) error {
	var hdr [5]byte
	n, _ := rd.ReadAt(hdr[:], rd.Size()-int64(rd.Len()))
	if n == 0 {
		return io.ErrUnexpectedEOF
	}
	var size, lenBytes int
	switch c := hdr[0]; {
	case msgpcode.IsFixedString(c):
		size = int(c & 0x1f)
	case c == msgpcode.Str8 || c == msgpcode.Bin8:
		lenBytes = 1
	case c == msgpcode.Str16 || c == msgpcode.Bin16:
		lenBytes = 2
	case c == msgpcode.Str32 || c == msgpcode.Bin32:
		lenBytes = 4
	default:
		return nil // not a string: the decoder reports the type error
	}
	if lenBytes > 0 {
		if n < 1+lenBytes {
			return io.ErrUnexpectedEOF
		}
		for _, b := range hdr[1 : 1+lenBytes] {
			size = size<<8 | int(b)
		}
	}
	if size > rd.Len()-1-lenBytes {
		return fmt.Errorf("%d-byte value cannot fit in %d bytes", size, rd.Len())
	}
	return nil
}

func decodeString(dec *msgpack.Decoder, rd *bytes.Reader) (string, error) {
	if err := strFits(rd); err != nil {
		return "", err
	}
	return dec.DecodeString()
}

func decodeBytes(dec *msgpack.Decoder, rd *bytes.Reader) ([]byte, error) {
	if err := strFits(rd); err != nil {
		return nil, err
	}
	return dec.DecodeBytes()
}

// skipScalar skips the value of an unknown field; containers are refused.
func skipScalar(dec *msgpack.Decoder, rd *bytes.Reader) error {
	if err := strFits(rd); err != nil {
		return err
	}
	code, err := dec.PeekCode()
	if err != nil {
		return err
	}
	if msgpcode.IsFixedMap(code) || msgpcode.IsFixedArray(code) ||
		code == msgpcode.Map16 || code == msgpcode.Map32 || code == msgpcode.Array16 || code == msgpcode.Array32 {
		return errors.New("unknown field holds a container")
	}
	return dec.Skip()
}

func toWire(evs []flow.Event) []WireEvent {
	out := make([]WireEvent, len(evs))
	for i, e := range evs {
		out[i] = WireEvent{Headers: e.Headers, Body: e.Body}
	}
	return out
}

func fromWire(evs []WireEvent) []flow.Event {
	out := make([]flow.Event, len(evs))
	for i, e := range evs {
		h := e.Headers
		if h == nil {
			h = map[string]string{}
		}
		out[i] = flow.Event{Headers: h, Body: e.Body}
	}
	return out
}
