package flow

// Event is Flume's unit of data: string headers and an opaque body.
type Event struct {
	Headers map[string]string
	Body    []byte
}

// Header returns the value of header k ("" when absent).
func (e Event) Header(k string) string { return e.Headers[k] }

// SetHeader sets header k, allocating the map when needed.
func (e *Event) SetHeader(k, v string) {
	if e.Headers == nil {
		e.Headers = make(map[string]string, 4)
	}
	e.Headers[k] = v
}

// Clone returns a deep copy, for fan-out to several channels.
func (e Event) Clone() Event {
	c := Event{Body: append([]byte(nil), e.Body...)}
	if e.Headers != nil {
		c.Headers = make(map[string]string, len(e.Headers))
		for k, v := range e.Headers {
			c.Headers[k] = v
		}
	}
	return c
}

// Size is the event's byte count as channels account it: the body only,
// as Flume's byteCapacity does.
func (e Event) Size() int { return len(e.Body) }
