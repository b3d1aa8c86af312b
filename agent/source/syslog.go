package source

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
)

// Headers Flume's syslog sources set (SyslogUtils).
const (
	HeaderFacility     = "Facility"
	HeaderSeverity     = "Severity"
	HeaderPriority     = "priority"
	HeaderVersion      = "version"
	HeaderTimestamp    = "timestamp"
	HeaderHost         = "host"
	HeaderSyslogStatus = "flume.syslog.status"
	statusInvalid      = "Invalid"
	statusIncomplete   = "Incomplete"
)

// syslogParser turns one RFC 3164 or RFC 5424 message into an event as
// Flume's SyslogUtils does: Facility and Severity from the priority,
// timestamp in ms, host; the body is the message after the header, with
// the fields keepFields names put back in front.
type syslogParser struct {
	keepAll bool
	keep    map[string]bool
	// now and loc are fields so tests can pin the year RFC 3164 leaves out.
	now func() time.Time
	loc *time.Location
}

// newSyslogParser reads keepFields: none/false (default), all/true, or a
// list of priority, version, timestamp, hostname.
func newSyslogParser(p *flow.Props) (*syslogParser, error) {
	sp := &syslogParser{keep: map[string]bool{}, now: time.Now, loc: time.Local}
	v := strings.TrimSpace(p.String("keepFields", "none"))
	switch strings.ToLower(v) {
	case "", "none", "false":
	case "all", "true":
		sp.keepAll = true
	default:
		for _, f := range strings.Fields(v) {
			switch f {
			case "priority", "version", "timestamp", "hostname":
				sp.keep[f] = true
			default:
				return nil, fmt.Errorf("%s.keepFields: unknown field %q (all, none, or any of priority version timestamp hostname)", p.Prefix, f)
			}
		}
	}
	return sp, nil
}

// parse builds the event of one whole message (its framing removed).
// incomplete flags a message cut at eventSize.
func (sp *syslogParser) parse(raw []byte, incomplete bool) flow.Event {
	ev := flow.Event{Headers: map[string]string{}}
	pri, rest, ok := parsePriority(raw)
	if !ok {
		ev.Headers[HeaderFacility] = "0"
		ev.Headers[HeaderSeverity] = "0"
		ev.Headers[HeaderSyslogStatus] = statusInvalid
		ev.Body = bytes.Clone(raw)
		return ev
	}
	ev.Headers[HeaderFacility] = strconv.Itoa(pri / 8)
	ev.Headers[HeaderSeverity] = strconv.Itoa(pri % 8)
	if incomplete {
		ev.Headers[HeaderSyslogStatus] = statusIncomplete
	}
	h, ok := parse5424(rest)
	if !ok {
		h, ok = sp.parse3164(rest)
	}
	if !ok {
		// Neither format: the whole message is the body, as in Flume.
		ev.Body = bytes.Clone(raw)
		return ev
	}
	ev.Headers[HeaderPriority] = strconv.Itoa(pri)
	if h.version != "" {
		ev.Headers[HeaderVersion] = h.version
	}
	if !h.ts.IsZero() {
		ev.Headers[HeaderTimestamp] = strconv.FormatInt(h.ts.UnixMilli(), 10)
	}
	if h.host != "" {
		ev.Headers[HeaderHost] = h.host
	}
	if sp.keepAll {
		ev.Body = bytes.Clone(raw)
		return ev
	}
	body := h.msg
	if sp.keep["hostname"] {
		body = h.hostRaw + " " + body
	}
	if sp.keep["timestamp"] {
		body = h.tsRaw + " " + body
	}
	if sp.keep["version"] && h.version != "" {
		body = h.version + " " + body
	}
	if sp.keep["priority"] {
		body = "<" + strconv.Itoa(pri) + ">" + body
	}
	ev.Body = []byte(body)
	return ev
}

// parsePriority reads "<PRI>": one to three digits.
func parsePriority(raw []byte) (pri int, rest []byte, ok bool) {
	if len(raw) < 3 || raw[0] != '<' {
		return 0, nil, false
	}
	end := bytes.IndexByte(raw[:min(len(raw), 5)], '>')
	if end < 2 {
		return 0, nil, false
	}
	for _, c := range raw[1:end] {
		if c < '0' || c > '9' {
			return 0, nil, false
		}
		pri = pri*10 + int(c-'0')
	}
	return pri, raw[end+1:], true
}

type syslogHeader struct {
	version        string
	ts             time.Time
	tsRaw, hostRaw string
	host           string
	msg            string
}

// cutField splits s at its first space.
func cutField(s string) (field, rest string, ok bool) {
	i := strings.IndexByte(s, ' ')
	if i <= 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// validHost is Flume's host name pattern: a word character, then word
// characters, digits, '.', '@' or '-'.
func validHost(h string) bool {
	for i, c := range h {
		word := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !word && (i == 0 || c != '.' && c != '@' && c != '-') {
			return false
		}
	}
	return h != ""
}

// parse5424 reads "VERSION TIMESTAMP HOSTNAME REST" (RFC 5424 section
// 6); the rest (app-name, procid, msgid, structured data, message) is the
// body, as in Flume. A missing version is tolerated as Flume does.
func parse5424(b []byte) (syslogHeader, bool) {
	s := string(b)
	var h syslogHeader
	if len(s) > 0 && s[0] >= '1' && s[0] <= '9' {
		i := 1
		for i < len(s) && i < 3 && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		h.version, s = s[:i], s[i:]
		s = strings.TrimPrefix(s, " ")
	}
	ts, rest, ok := cutField(s)
	if !ok {
		return h, false
	}
	if ts != "-" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || !strings.Contains(ts, "T") {
			return h, false
		}
		h.ts = t
	}
	h.tsRaw = ts
	host, msg, ok := cutField(rest)
	if !ok {
		return h, false
	}
	if host != "-" {
		if !validHost(host) {
			return h, false
		}
		h.host = host
	}
	h.hostRaw, h.msg = host, msg
	return h, true
}

// parse3164 reads "Mmm dd hh:mm:ss HOST MSG" (RFC 3164 section 4.1.2),
// with an optional version digit before it as Flume allows. The year is
// the one that puts the stamp at most a month ahead of now.
func (sp *syslogParser) parse3164(b []byte) (syslogHeader, bool) {
	s := string(b)
	var h syslogHeader
	if len(s) > 0 && s[0] >= '0' && s[0] <= '9' {
		h.version, s = s[:1], strings.TrimPrefix(s[1:], " ")
	}
	// "Oct 11 22:14:15" or "Oct  1 22:14:15": 15 bytes either way.
	if len(s) < 16 || s[15] != ' ' {
		return h, false
	}
	h.tsRaw = s[:15]
	t, err := time.ParseInLocation("Jan _2 15:04:05", h.tsRaw, sp.loc)
	if err != nil {
		return h, false
	}
	now := sp.now().In(sp.loc)
	t = t.AddDate(now.Year(), 0, 0)
	if t.After(now.AddDate(0, 1, 0)) {
		t = t.AddDate(-1, 0, 0)
	} else if t.Before(now.AddDate(0, -11, 0)) {
		t = t.AddDate(1, 0, 0)
	}
	h.ts = t
	host, msg, ok := cutField(s[16:])
	if !ok || !validHost(host) {
		return h, false
	}
	h.host, h.hostRaw, h.msg = host, host, msg
	return h, true
}

// readSyslogFrame reads one message from a TCP stream: newline-framed as
// Flume reads it, or octet-counted (RFC 6587 "LEN SP MSG", which
// `logger --octet-count` and rsyslog send). A message longer than max is
// cut there and flagged incomplete; for newline framing, as in Flume, the
// rest of the line is the next message.
func readSyslogFrame(r *bufio.Reader, max int) (frame []byte, incomplete bool, err error) {
	for {
		c, err := r.ReadByte()
		if err != nil {
			return nil, false, err
		}
		if c == '\n' || c == '\r' {
			continue // blank lines between messages
		}
		_ = r.UnreadByte()
		break
	}
	if n, ok := octetCount(r); ok {
		take := min(n, max)
		frame = make([]byte, take)
		if _, err := io.ReadFull(r, frame); err != nil {
			return nil, false, noEOF(err)
		}
		if n > take {
			if _, err := r.Discard(n - take); err != nil {
				return nil, false, noEOF(err)
			}
		}
		return bytes.TrimSuffix(frame, []byte("\n")), n > take, nil
	}
	for len(frame) < max {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && len(frame) > 0 {
				return frame, false, nil // last message, client closed
			}
			return nil, false, err
		}
		if c == '\n' {
			return frame, false, nil
		}
		frame = append(frame, c)
	}
	return frame, true, nil
}

// octetCount consumes "LEN SP" when the stream is at one.
func octetCount(r *bufio.Reader) (int, bool) {
	b, _ := r.Peek(8)
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(b) || b[i] != ' ' || b[0] == '0' {
		return 0, false
	}
	n, err := strconv.Atoi(string(b[:i]))
	if err != nil || n > 1<<20 {
		return 0, false
	}
	_, _ = r.Discard(i + 1)
	return n, true
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
