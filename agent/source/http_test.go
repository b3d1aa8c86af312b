package source

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent/flow"
)

// curlPost posts data with curl and returns the HTTP status it got.
func curlPost(t *testing.T, port, data string, extra ...string) string {
	t.Helper()
	curl := needTool(t, "curl")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := append([]string{"-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-d", data}, extra...)
	out, err := exec.CommandContext(ctx, curl, append(args, "http://127.0.0.1:"+port+"/")...).Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

func TestHTTPWithCurl(t *testing.T) {
	needTool(t, "curl")
	proc := &fakeProc{}
	s := startSource(t, "http", map[string]string{"bind": "127.0.0.1", "port": "0"}, proc)
	port := portOf(t, s, 0)

	assert.Equal(t, "200", curlPost(t, port, `[{"headers":{"host":"web1"},"body":"hello"},{"body":"two"}]`,
		"-H", "Content-Type: application/json; charset=UTF-8"))
	evs := proc.events()
	require.Len(t, evs, 2, "one POST is one batch, committed before the 200")
	require.Len(t, proc.batches, 1)
	assert.Equal(t, map[string]string{"host": "web1"}, evs[0].Headers)
	assert.Equal(t, "hello", string(evs[0].Body))
	assert.Equal(t, "two", string(evs[1].Body))

	for _, bad := range []string{`{"body":"not an array"}`, `[{"body":`, `null`, `[{"headers":{"n":1}}]`, `[] []`} {
		assert.Equal(t, "400", curlPost(t, port, bad), bad)
	}
	assert.Equal(t, "400", curlPost(t, port, `[]`, "-H", "Content-Type: application/json; charset=UTF-16"))

	proc.setFull(true)
	assert.Equal(t, "503", curlPost(t, port, `[{"body":"refused"}]`))
	proc.setFull(false)
	assert.Equal(t, "200", curlPost(t, port, `[{"body":"retried"}]`))
	assert.Equal(t, []string{"hello", "two", "retried"}, proc.bodies())

	c := s.Counters()
	assert.EqualValues(t, 4, c.Get(flow.EventReceivedCount))
	assert.EqualValues(t, 3, c.Get(flow.EventAcceptedCount))
	assert.EqualValues(t, 2, c.Get(flow.AppendBatchAcceptedCount))
	assert.EqualValues(t, 1, c.Get(flow.ChannelWriteFail))
}

func TestHTTPBadConfig(t *testing.T) {
	_, err := buildSource(t, "http", map[string]string{}, &fakeProc{})
	assert.ErrorContains(t, err, "a1.sources.r1.port")
	_, err = buildSource(t, "http", map[string]string{"port": "0", "handler": "org.example.Mine"}, &fakeProc{})
	assert.ErrorContains(t, err, "a1.sources.r1.handler")
}

func TestSeq(t *testing.T) {
	proc := &fakeProc{}
	startSource(t, "org.apache.flume.source.SequenceGeneratorSource", map[string]string{"batchSize": "7", "totalEvents": "50"}, proc)
	bodies := proc.waitEvents(t, 50)
	for i, ev := range bodies {
		assert.Equal(t, strconv.Itoa(i), string(ev.Body))
	}
	proc.mu.Lock()
	assert.Len(t, proc.batches, 8)
	proc.mu.Unlock()
}
