package source

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent/flow"
)

// ncSend pipes input through OpenBSD's nc and returns what the source
// answered.
func ncSend(t *testing.T, port, input string, args ...string) string {
	t.Helper()
	nc := needTool(t, "nc")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nc, append(args, "127.0.0.1", port)...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.Output()
	require.NoError(t, err, "nc: %s", out)
	return string(out)
}

func TestNetcatWithNc(t *testing.T) {
	needTool(t, "nc")
	proc := &fakeProc{}
	s := startSource(t, "netcat", map[string]string{"bind": "127.0.0.1", "port": "0"}, proc)
	// -N: shut the socket down after EOF on stdin, then read the answers.
	out := ncSend(t, portOf(t, s, 0), "hello\nworld\r\nlast without EOL", "-N")
	assert.Equal(t, "OK\nOK\nOK\n", out)
	assert.Equal(t, []string{"hello", "world", "last without EOL"}, proc.bodies())
	assert.EqualValues(t, 3, s.Counters().Get(flow.EventReceivedCount))
	assert.EqualValues(t, 3, s.Counters().Get(flow.EventAcceptedCount))
}

func TestNetcatMaxLineLength(t *testing.T) {
	proc := &fakeProc{}
	s := startSource(t, "org.apache.flume.source.NetcatSource", map[string]string{
		"bind": "127.0.0.1", "port": "0", "max-line-length": "10"}, proc)
	c, err := net.Dial("tcp", "127.0.0.1:"+portOf(t, s, 0))
	require.NoError(t, err)
	defer c.Close()
	// 9 chars + EOL fit exactly; 10 + EOL do not.
	_, err = c.Write([]byte("123456789\n1234567890\n" + strings.Repeat("x", 5000) + "\nok\n"))
	require.NoError(t, err)
	r := bufio.NewReader(c)
	var replies []string
	for range 4 {
		l, err := r.ReadString('\n')
		require.NoError(t, err)
		replies = append(replies, l)
	}
	fail := "FAILED: Event exceeds the maximum length (10 chars, including EOL)\n"
	assert.Equal(t, []string{"OK\n", fail, fail, "OK\n"}, replies)
	assert.Equal(t, []string{"123456789", "ok"}, proc.bodies())
}

// "OK" comes only after the channel committed: while it is full the
// client gets no answer and the source reads no further; then every line
// arrives, in order, each answered.
func TestNetcatBackPressureAcksAfterCommit(t *testing.T) {
	proc := &fakeProc{full: true}
	s := startSource(t, "netcat", map[string]string{"bind": "127.0.0.1", "port": "0"}, proc)
	c, err := net.Dial("tcp", "127.0.0.1:"+portOf(t, s, 0))
	require.NoError(t, err)
	defer c.Close()
	var sb strings.Builder
	for i := range 300 {
		sb.WriteString("line " + strconv.Itoa(i) + "\n")
	}
	_, err = c.Write([]byte(sb.String()))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return proc.refusals() >= 3 }, 10*time.Second, 5*time.Millisecond)
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	n, _ := c.Read(make([]byte, 10))
	assert.Zero(t, n, "no OK before the commit")
	_ = c.SetReadDeadline(time.Time{})

	proc.setFull(false)
	r := bufio.NewReader(c)
	for range 300 {
		l, err := r.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "OK\n", l)
	}
	bodies := proc.bodies()
	require.Len(t, bodies, 300)
	for i, b := range bodies {
		assert.Equal(t, "line "+strconv.Itoa(i), b)
	}
}

func TestNetcatFailedChannelAnswersFailed(t *testing.T) {
	proc := &fakeProc{failWith: flow.ErrTxFull}
	s := startSource(t, "netcat", map[string]string{"bind": "127.0.0.1", "port": "0"}, proc)
	c, err := net.Dial("tcp", "127.0.0.1:"+portOf(t, s, 0))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("x\n"))
	require.NoError(t, err)
	l, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(l, "FAILED: "), l)
	assert.EqualValues(t, 1, s.Counters().Get(flow.OpenConnectionCount))
	c.Close()
	require.Eventually(t, func() bool { return s.Counters().Get(flow.OpenConnectionCount) == 0 }, 10*time.Second, 5*time.Millisecond)
	assert.EqualValues(t, 1, s.Counters().Get(flow.ChannelWriteFail))
}

func TestNetcatUDP(t *testing.T) {
	proc := &fakeProc{}
	s := startSource(t, "netcatudp", map[string]string{"bind": "127.0.0.1", "port": "0", "remoteAddressHeader": "from"}, proc)
	c, err := net.Dial("udp", "127.0.0.1:"+portOf(t, s, 0))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("datagram one\n"))
	require.NoError(t, err)
	evs := proc.waitEvents(t, 1)
	assert.Equal(t, "datagram one", string(evs[0].Body))
	assert.Equal(t, c.LocalAddr().String(), evs[0].Headers["from"])
}

func TestSourceStopIsClean(t *testing.T) {
	proc := &fakeProc{full: true}
	s, err := buildSource(t, "netcat", map[string]string{"bind": "127.0.0.1", "port": "0"}, proc)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	c, err := net.Dial("tcp", "127.0.0.1:"+portOf(t, s, 0))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("stuck\n"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return proc.refusals() >= 1 }, 10*time.Second, 5*time.Millisecond)
	// The channel never drains: Stop gives up at its deadline and returns.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	assert.Error(t, s.Stop(ctx))
	assert.Empty(t, proc.events())
}
