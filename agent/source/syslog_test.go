package source

import (
	"bufio"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent/flow"
)

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func TestSyslogParserRFCExamples(t *testing.T) {
	now := time.Date(2003, 10, 20, 0, 0, 0, 0, time.UTC)
	sp := &syslogParser{keep: map[string]bool{}, now: func() time.Time { return now }, loc: time.UTC}
	tests := []struct {
		name    string
		raw     string
		headers map[string]string
		body    string
	}{
		{"RFC 3164 4.3.3 example", "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
			map[string]string{"Facility": "4", "Severity": "2", "priority": "34", "host": "mymachine",
				"timestamp": ms(time.Date(2003, 10, 11, 22, 14, 15, 0, time.UTC))},
			"su: 'su root' failed for lonvick on /dev/pts/8"},
		{"RFC 3164 single-digit day", "<13>Oct  1 02:03:04 host-1.example.com app[12]: hi",
			map[string]string{"Facility": "1", "Severity": "5", "priority": "13", "host": "host-1.example.com",
				"timestamp": ms(time.Date(2003, 10, 1, 2, 3, 4, 0, time.UTC))},
			"app[12]: hi"},
		{"RFC 3164 December stamp seen in January is last year", "<13>Dec 31 23:59:59 h m",
			map[string]string{"Facility": "1", "Severity": "5", "priority": "13", "host": "h",
				"timestamp": ms(time.Date(2002, 12, 31, 23, 59, 59, 0, time.UTC))},
			"m"},
		{"RFC 5424 6.5 example 1", "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed for lonvick on /dev/pts/8",
			map[string]string{"Facility": "4", "Severity": "2", "priority": "34", "version": "1", "host": "mymachine.example.com",
				"timestamp": ms(time.Date(2003, 10, 11, 22, 14, 15, 3e6, time.UTC))},
			"su - ID47 - BOM'su root' failed for lonvick on /dev/pts/8"},
		{"RFC 5424 6.5 example 2 (offset)", "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
			map[string]string{"Facility": "20", "Severity": "5", "priority": "165", "version": "1", "host": "192.0.2.1",
				"timestamp": ms(time.Date(2003, 8, 24, 12, 14, 15, 3000, time.UTC))},
			"myproc 8710 - - %% It's time to make the do-nuts."},
		{"RFC 5424 6.5 example 3 (structured data)", `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] BOMAn application event log entry...`,
			map[string]string{"Facility": "20", "Severity": "5", "priority": "165", "version": "1", "host": "mymachine.example.com",
				"timestamp": ms(time.Date(2003, 10, 11, 22, 14, 15, 3e6, time.UTC))},
			`evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] BOMAn application event log entry...`},
		{"RFC 5424 nil timestamp and host", "<14>1 - - app - - - msg",
			map[string]string{"Facility": "1", "Severity": "6", "priority": "14", "version": "1"},
			"app - - - msg"},
		{"neither format: whole message is the body", "<13>just some text",
			map[string]string{"Facility": "1", "Severity": "5"}, "<13>just some text"},
		{"no priority is invalid", "Oct 11 22:14:15 mymachine su: x",
			map[string]string{"Facility": "0", "Severity": "0", "flume.syslog.status": "Invalid"}, "Oct 11 22:14:15 mymachine su: x"},
		{"bad priority is invalid", "<1a>x", map[string]string{"Facility": "0", "Severity": "0", "flume.syslog.status": "Invalid"}, "<1a>x"},
		{"empty priority is invalid", "<>x", map[string]string{"Facility": "0", "Severity": "0", "flume.syslog.status": "Invalid"}, "<>x"},
		{"four-digit priority is invalid", "<1234>x", map[string]string{"Facility": "0", "Severity": "0", "flume.syslog.status": "Invalid"}, "<1234>x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := sp.parse([]byte(tc.raw), false)
			assert.Equal(t, tc.headers, ev.Headers)
			assert.Equal(t, tc.body, string(ev.Body))
		})
	}
}

func TestSyslogKeepFields(t *testing.T) {
	raw := "<34>1 2003-10-11T22:14:15.003Z mymachine su - - - hi"
	for keep, body := range map[string]string{
		"none":               "su - - - hi",
		"false":              "su - - - hi",
		"all":                raw,
		"true":               raw,
		"hostname":           "mymachine su - - - hi",
		"timestamp hostname": "2003-10-11T22:14:15.003Z mymachine su - - - hi",
		"priority version":   "<34>1 su - - - hi",
	} {
		sp, err := newSyslogParser(flow.NewProps("a1.sources.r1", map[string]string{"keepFields": keep}))
		require.NoError(t, err)
		assert.Equal(t, body, string(sp.parse([]byte(raw), false).Body), keep)
	}
	_, err := newSyslogParser(flow.NewProps("a1.sources.r1", map[string]string{"keepFields": "host"}))
	assert.ErrorContains(t, err, "a1.sources.r1.keepFields")
}

func TestSyslogFraming(t *testing.T) {
	in := "\n<13>Oct 11 22:14:15 h one\n\n<13>Oct 11 22:14:15 h two\n" +
		"15 <13>1 - - three" + // octet counted, no newline
		"<13>Oct 11 22:14:15 h 0123456789abcdefXYZ\n" +
		"<13>last"
	r := bufio.NewReader(strings.NewReader(in))
	type frame struct {
		s          string
		incomplete bool
	}
	var got []frame
	for {
		f, inc, err := readSyslogFrame(r, 40)
		if err != nil {
			break
		}
		got = append(got, frame{string(f), inc})
	}
	assert.Equal(t, []frame{
		{"<13>Oct 11 22:14:15 h one", false},
		{"<13>Oct 11 22:14:15 h two", false},
		{"<13>1 - - three", false},
		{"<13>Oct 11 22:14:15 h 0123456789abcdefXY", true},
		{"Z", false},
		{"<13>last", false},
	}, got)
}

// loggerSend runs util-linux's logger against a source.
func loggerSend(t *testing.T, proto, rfc, port string, prio, msg string) {
	t.Helper()
	logger := needTool(t, "logger")
	run(t, logger, "--"+proto, "--"+rfc, "--server", "127.0.0.1", "--port", port, "-p", prio, "-t", "app", msg)
}

func checkLoggerEvent(t *testing.T, ev flow.Event, facility, severity, msg string, start time.Time) {
	t.Helper()
	host, _ := os.Hostname()
	assert.Equal(t, facility, ev.Headers["Facility"])
	assert.Equal(t, severity, ev.Headers["Severity"])
	assert.Empty(t, ev.Headers["flume.syslog.status"])
	assert.Equal(t, strings.SplitN(host, ".", 2)[0], strings.SplitN(ev.Headers["host"], ".", 2)[0])
	ts, err := strconv.ParseInt(ev.Headers["timestamp"], 10, 64)
	require.NoError(t, err, ev.Headers)
	// RFC 3164 stamps have whole seconds.
	assert.GreaterOrEqual(t, ts, start.Truncate(time.Second).UnixMilli())
	assert.LessOrEqual(t, ts, time.Now().Add(time.Second).UnixMilli())
	assert.Contains(t, string(ev.Body), msg)
	assert.False(t, strings.HasPrefix(string(ev.Body), "<"), "header stays out of the body: %q", ev.Body)
}

func TestSyslogTCPWithLogger(t *testing.T) {
	needTool(t, "logger")
	proc := &fakeProc{}
	s := startSource(t, "syslogtcp", map[string]string{"host": "127.0.0.1", "port": "0"}, proc)
	port := portOf(t, s, 0)
	start := time.Now()
	loggerSend(t, "tcp", "rfc3164", port, "local3.warning", "payment failed id=42")
	loggerSend(t, "tcp", "rfc5424", port, "user.err", "second message")
	evs := proc.waitEvents(t, 2)
	checkLoggerEvent(t, evs[0], "19", "4", "app", start)
	assert.True(t, strings.HasSuffix(string(evs[0].Body), "payment failed id=42"), "%q", evs[0].Body)
	checkLoggerEvent(t, evs[1], "1", "3", "second message", start)
	assert.Equal(t, "1", evs[1].Headers["version"])
	// RFC 6587 octet counting, as logger --octet-count frames messages.
	run(t, needTool(t, "logger"), "--tcp", "--rfc5424", "--octet-count", "--server", "127.0.0.1", "--port", port, "-p", "user.info", "-t", "app", "counted")
	evs = proc.waitEvents(t, 3)
	checkLoggerEvent(t, evs[2], "1", "6", "counted", start)
	assert.EqualValues(t, 3, s.Counters().Get(flow.EventAcceptedCount))
}

func TestSyslogUDPWithLogger(t *testing.T) {
	needTool(t, "logger")
	proc := &fakeProc{}
	s := startSource(t, "syslogudp", map[string]string{"host": "127.0.0.1", "port": "0", "clientIPHeader": "ip"}, proc)
	port := portOf(t, s, 0)
	start := time.Now()
	loggerSend(t, "udp", "rfc3164", port, "daemon.info", "udp 3164")
	proc.waitEvents(t, 1)
	loggerSend(t, "udp", "rfc5424", port, "local0.crit", "udp 5424")
	evs := proc.waitEvents(t, 2)
	checkLoggerEvent(t, evs[0], "3", "6", "udp 3164", start)
	checkLoggerEvent(t, evs[1], "16", "2", "udp 5424", start)
	assert.Equal(t, "127.0.0.1", evs[1].Headers["ip"])
}

func TestMultiportSyslogWithLogger(t *testing.T) {
	needTool(t, "logger")
	proc := &fakeProc{}
	s := startSource(t, "org.apache.flume.source.MultiportSyslogTCPSource", map[string]string{
		"host": "127.0.0.1", "ports": "0 0", "portHeader": "port"}, proc)
	p0, p1 := portOf(t, s, 0), portOf(t, s, 1)
	start := time.Now()
	loggerSend(t, "tcp", "rfc3164", p0, "mail.notice", "on first port")
	proc.waitEvents(t, 1)
	loggerSend(t, "tcp", "rfc5424", p1, "local7.debug", "on second port")
	evs := proc.waitEvents(t, 2)
	checkLoggerEvent(t, evs[0], "2", "5", "on first port", start)
	assert.Equal(t, p0, evs[0].Headers["port"])
	checkLoggerEvent(t, evs[1], "23", "7", "on second port", start)
	assert.Equal(t, p1, evs[1].Headers["port"])
}

// A full channel stops the TCP source reading: nothing is lost, the
// messages arrive once the channel drains.
func TestSyslogTCPBackPressure(t *testing.T) {
	proc := &fakeProc{full: true}
	s := startSource(t, "syslogtcp", map[string]string{"host": "127.0.0.1", "port": "0"}, proc)
	c, err := net.Dial("tcp", "127.0.0.1:"+portOf(t, s, 0))
	require.NoError(t, err)
	defer c.Close()
	for i := range 50 {
		_, err := c.Write([]byte("<13>Oct 11 22:14:15 h msg " + strconv.Itoa(i) + "\n"))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return proc.refusals() >= 3 }, 10*time.Second, 5*time.Millisecond)
	assert.Empty(t, proc.events())
	proc.setFull(false)
	evs := proc.waitEvents(t, 50)
	for i, ev := range evs {
		assert.Equal(t, "msg "+strconv.Itoa(i), string(ev.Body))
	}
	assert.Positive(t, s.Counters().Get(flow.ChannelWriteFail))
}

func TestSyslogIncompleteAndInvalidAreFlagged(t *testing.T) {
	proc := &fakeProc{}
	s := startSource(t, "syslogtcp", map[string]string{"host": "127.0.0.1", "port": "0", "eventSize": "20"}, proc)
	c, err := net.Dial("tcp", "127.0.0.1:"+portOf(t, s, 0))
	require.NoError(t, err)
	_, err = c.Write([]byte("no priority here\n<13>0123456789abcdefghijkl\n"))
	require.NoError(t, err)
	c.Close()
	evs := proc.waitEvents(t, 3)
	assert.Equal(t, "Invalid", evs[0].Headers["flume.syslog.status"])
	assert.Equal(t, "Incomplete", evs[1].Headers["flume.syslog.status"])
	assert.Equal(t, "<13>0123456789abcdef", string(evs[1].Body))
	assert.Equal(t, "Invalid", evs[2].Headers["flume.syslog.status"])
	assert.Equal(t, "ghijkl", string(evs[2].Body))
}

func TestSyslogBadConfig(t *testing.T) {
	for typ, props := range map[string]map[string]string{
		"syslogtcp":           {"port": "1"},
		"syslogudp":           {"host": "127.0.0.1"},
		"multiport_syslogtcp": {"host": "127.0.0.1"},
	} {
		_, err := buildSource(t, typ, props, &fakeProc{})
		assert.ErrorContains(t, err, "a1.sources.r1.", typ)
	}
	_, err := buildSource(t, "syslogtcp", map[string]string{"host": "127.0.0.1", "port": "0", "eventSize": "big"}, &fakeProc{})
	assert.ErrorContains(t, err, "a1.sources.r1.eventSize")
}
