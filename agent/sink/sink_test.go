package sink

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent/channel"
	"github.com/sluice-io/sluice/agent/flow"
	"github.com/sluice-io/sluice/client"
)

type fakeWriter struct {
	mu     sync.Mutex
	parts  int
	local  []int32
	fail   error
	writes map[string][]client.Record // "topic/part"
}

func (w *fakeWriter) Partitions(context.Context, string) (int, error) { return w.parts, nil }
func (w *fakeWriter) LocalPartitions(string) []int32                  { return w.local }
func (w *fakeWriter) Write(_ context.Context, topic string, part int32, recs []client.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return w.fail
	}
	k := topic + "/" + string(rune('0'+part))
	w.writes[k] = append(w.writes[k], recs...)
	return nil
}

func memChan(t *testing.T) flow.Channel {
	ch, err := channel.NewMemory("c1", flow.NewProps("a1.channels.c1", map[string]string{"capacity": "1000", "transactionCapacity": "1000"}), flow.Deps{})
	require.NoError(t, err)
	require.NoError(t, ch.Start(context.Background()))
	return ch
}

func putEvents(t *testing.T, ch flow.Channel, evs ...flow.Event) {
	tx, err := ch.Begin()
	require.NoError(t, err)
	for _, ev := range evs {
		require.NoError(t, tx.Put(ev))
	}
	require.NoError(t, tx.Commit())
}

func TestSluiceSinkRoutesByHeaders(t *testing.T) {
	ch := memChan(t)
	w := &fakeWriter{parts: 4, local: []int32{2}, writes: map[string][]client.Record{}}
	s, err := NewSluice("k1", flow.NewProps("a1.sinks.k1", map[string]string{"topic": "logs", "partitionIdHeader": "p"}), ch, flow.Deps{}, w)
	require.NoError(t, err)
	putEvents(t, ch,
		flow.Event{Headers: map[string]string{"key": "user-7", "host": "a"}, Body: []byte("keyed")},
		flow.Event{Body: []byte("unkeyed1")},
		flow.Event{Headers: map[string]string{"p": "3"}, Body: []byte("pinned")},
		flow.Event{Headers: map[string]string{"topic": "other"}, Body: []byte("elsewhere")},
		flow.Event{Body: []byte("unkeyed2")},
	)
	st, err := s.Process(context.Background())
	require.NoError(t, err)
	require.Equal(t, flow.Ready, st)
	kp := client.KeyPartition([]byte("user-7"), 4)
	keyed := w.writes["logs/"+string(rune('0'+kp))]
	require.Equal(t, "user-7", string(keyed[0].Key))
	require.Equal(t, []client.Header{{Key: "host", Value: []byte("a")}, {Key: "key", Value: []byte("user-7")}}, keyed[0].Headers)
	var local []string
	for _, r := range w.writes["logs/2"] {
		local = append(local, string(r.Value))
	}
	require.Contains(t, strings.Join(local, ","), "unkeyed1,unkeyed2", "unkeyed events of a batch share a locally led partition, in order")
	require.Equal(t, "pinned", string(w.writes["logs/3"][0].Value))
	require.Len(t, w.writes["other/2"], 1, "the topic header overrides the topic")
	require.Equal(t, int64(5), s.Counters().Get(flow.EventDrainSuccessCount))
}

func TestSluiceSinkFailureKeepsEventsInTheChannel(t *testing.T) {
	ch := memChan(t)
	w := &fakeWriter{parts: 1, fail: errors.New("no quorum"), writes: map[string][]client.Record{}}
	s, err := NewSluice("k1", flow.NewProps("a1.sinks.k1", map[string]string{"topic": "logs"}), ch, flow.Deps{}, w)
	require.NoError(t, err)
	putEvents(t, ch, flow.Event{Body: []byte("a")}, flow.Event{Body: []byte("b")})
	_, err = s.Process(context.Background())
	require.ErrorContains(t, err, "no quorum")
	w.fail = nil
	_, err = s.Process(context.Background())
	require.NoError(t, err)
	require.Equal(t, "a", string(w.writes["logs/0"][0].Value))
	require.Equal(t, "b", string(w.writes["logs/0"][1].Value))
	st, err := s.Process(context.Background())
	require.NoError(t, err)
	require.Equal(t, flow.Backoff, st, "empty channel")
}

func TestSluiceSinkBadPartitionHeaderRollsBack(t *testing.T) {
	ch := memChan(t)
	w := &fakeWriter{parts: 2, writes: map[string][]client.Record{}}
	s, err := NewSluice("k1", flow.NewProps("a1.sinks.k1", map[string]string{"partitionIdHeader": "p"}), ch, flow.Deps{}, w)
	require.NoError(t, err)
	putEvents(t, ch, flow.Event{Headers: map[string]string{"p": "9"}, Body: []byte("x")})
	_, err = s.Process(context.Background())
	require.ErrorContains(t, err, `header p="9" is not a partition of topic "default-flume-topic"`)
	require.Equal(t, int64(1), ch.Counters().Get(flow.ChannelSize))
}

func TestKafkaSinkPropertiesAndBadAcks(t *testing.T) {
	ch := memChan(t)
	build := func(typ string, props map[string]string) (flow.Sink, error) {
		return Builders(nil)[typ]("k1", flow.NewProps("a1.sinks.k1", props), ch, flow.Deps{Servers: []string{"127.0.0.1:1"}})
	}
	// Flume's KafkaSink, unchanged: the Kafka protocol, whatever the
	// producer properties (unknown ones are ignored).
	s, err := build(KafkaSinkClass, map[string]string{
		"kafka.bootstrap.servers": "127.0.0.1:1", "kafka.topic": "t", "flumeBatchSize": "7", "kafka.producer.acks": "1",
		"kafka.producer.compression.type": "lz4", "kafka.producer.client.id": "flume", "kafka.producer.linger.ms": "5",
		"kafka.producer.max.in.flight.requests.per.connection": "1", "kafka.producer.security.protocol": "PLAINTEXT",
	})
	require.NoError(t, err)
	ss := s.(*Sluice)
	require.Equal(t, "t", ss.topic)
	require.Equal(t, 7, ss.batch)
	require.IsType(t, &KafkaWriter{}, ss.w)
	require.NoError(t, s.Stop(context.Background()))
	// kafka.bootstrap.servers on a plain sluice sink means Kafka too.
	s, err = build("sluice", map[string]string{"kafka.bootstrap.servers": "127.0.0.1:1"})
	require.NoError(t, err)
	require.IsType(t, &KafkaWriter{}, s.(*Sluice).w)
	require.NoError(t, s.Stop(context.Background()))
	// servers, or nothing, is the native RPC client, as before.
	for _, props := range []map[string]string{{"servers": "127.0.0.1:1"}, {}} {
		s, err = build("sluice", props)
		require.NoError(t, err)
		require.IsType(t, ClientWriter{}, s.(*Sluice).w)
		require.NoError(t, s.Stop(context.Background()))
	}

	_, err = build(KafkaSinkClass, map[string]string{"kafka.topic": "t"})
	require.ErrorContains(t, err, "a1.sinks.k1.kafka.bootstrap.servers: required property is missing")
	_, err = build(KafkaSinkClass, map[string]string{"kafka.bootstrap.servers": "127.0.0.1:1", "servers": "127.0.0.1:2"})
	require.ErrorContains(t, err, "both set")
	_, err = build(KafkaSinkClass, map[string]string{"kafka.bootstrap.servers": "127.0.0.1:1", "kafka.producer.compression.type": "brotli"})
	require.ErrorContains(t, err, "a1.sinks.k1.kafka.producer.compression.type")
	_, err = build(KafkaSinkClass, map[string]string{"kafka.bootstrap.servers": "127.0.0.1:1", "kafka.producer.security.protocol": "SASL_SSL"})
	require.ErrorContains(t, err, "a1.sinks.k1.kafka.producer.security.protocol")
	_, err = NewSluice("k1", flow.NewProps("a1.sinks.k1", map[string]string{"acks": "most"}), ch, flow.Deps{}, &fakeWriter{})
	require.ErrorContains(t, err, "a1.sinks.k1.acks")
}

func TestFileRollWritesLines(t *testing.T) {
	ch := memChan(t)
	dir := t.TempDir()
	s, err := NewFileRoll("k1", flow.NewProps("a1.sinks.k1", map[string]string{"sink.directory": dir, "sink.rollInterval": "0"}), ch, flow.Deps{})
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	putEvents(t, ch, flow.Event{Body: []byte("one")}, flow.Event{Body: []byte("two")})
	_, err = s.Process(context.Background())
	require.NoError(t, err)
	require.NoError(t, s.Stop(context.Background()))
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	require.Len(t, files, 1)
	b, _ := os.ReadFile(files[0])
	require.Equal(t, "one\ntwo\n", string(b))
	_, err = NewFileRoll("k1", flow.NewProps("a1.sinks.k1", nil), ch, flow.Deps{})
	require.ErrorContains(t, err, "a1.sinks.k1.sink.directory: required property is missing")
}

func TestHTTPSinkPostsBodiesAndRollsBackOnErrors(t *testing.T) {
	var mu sync.Mutex
	var got []string
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if status == http.StatusOK {
			got = append(got, string(b))
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	ch := memChan(t)
	s, err := NewHTTP("k1", flow.NewProps("a1.sinks.k1", map[string]string{"endpoint": srv.URL}), ch, flow.Deps{})
	require.NoError(t, err)
	putEvents(t, ch, flow.Event{Body: []byte("a")}, flow.Event{Body: []byte("b")})
	mu.Lock()
	status = http.StatusServiceUnavailable
	mu.Unlock()
	_, err = s.Process(context.Background())
	require.ErrorContains(t, err, "503")
	require.Equal(t, int64(2), ch.Counters().Get(flow.ChannelSize), "a failed POST leaves the batch in the channel")
	mu.Lock()
	status = http.StatusOK
	mu.Unlock()
	_, err = s.Process(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, got)
}
