package node

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sluice-io/sluice/transport"
)

// metrics holds the node's Prometheus registry (one per node, no globals).
type metrics struct {
	registry      *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	bytesIn       *prometheus.CounterVec
	bytesOut      *prometheus.CounterVec
	leaderChanges prometheus.Counter
	diskFull      prometheus.Counter
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_rpc_requests_total", Help: "Client and node RPCs handled, by method and result code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_rpc_duration_seconds", Help: "RPC handling time by method (fetch includes long-poll waits).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_produce_bytes_total", Help: "Record batch bytes appended, by partition.",
		}, []string{"topic", "partition"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_fetch_bytes_total", Help: "Record batch bytes served, by partition.",
		}, []string{"topic", "partition"}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_partition_leader_changes_total", Help: "Leadership gains and losses of hosted replicas.",
		}),
		diskFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_writes_refused_disk_full_total", Help: "Produces and offset commits refused below the free-space floor (--min-free-bytes).",
		}),
	}
	beats := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "sluice_raft_heartbeats_sent_total", Help: "Raft heartbeats this node's groups sent to other nodes.",
	}, func() float64 { return float64(n.heartbeats.sentBeats.Load()) })
	beatRequests := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "sluice_raft_heartbeat_requests_total", Help: "Requests that carried those heartbeats, coalesced per destination node.",
	}, func() float64 { return float64(n.heartbeats.sentRequests.Load()) })
	hurried := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "sluice_raft_elections_hurried_total", Help: "Raft groups whose election this node started early because their leader's process was gone (its port refused connections).",
	}, func() float64 { return float64(n.hurried.Load()) })
	m.registry.MustRegister(m.requests, m.latency, m.bytesIn, m.bytesOut, m.leaderChanges, m.diskFull, beats, beatRequests, hurried,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&raftCollector{n: n})
	return m
}

func (m *metrics) observeRPC(method transport.Method, d time.Duration, err error) {
	code := "ok"
	if err != nil {
		if c := transport.CodeOf(err); c != 0 {
			code = c.String()
		} else {
			code = "error"
		}
	}
	m.requests.WithLabelValues(method.String(), code).Inc()
	m.latency.WithLabelValues(method.String()).Observe(d.Seconds())
}

func (m *metrics) produced(k partKey, n int) {
	m.bytesIn.WithLabelValues(k.topic, strconv.Itoa(int(k.partition))).Add(float64(n))
}

func (m *metrics) fetched(k partKey, n int) {
	m.bytesOut.WithLabelValues(k.topic, strconv.Itoa(int(k.partition))).Add(float64(n))
}

// raftCollector reads Raft state at scrape time, per hosted partition.
type raftCollector struct{ n *Node }

var (
	descState  = prometheus.NewDesc("sluice_partition_raft_state", "Raft state of the local replica: 0 follower, 1 candidate, 2 leader, 3 shutdown.", []string{"topic", "partition"}, nil)
	descCommit = prometheus.NewDesc("sluice_partition_commit_index", "Raft commit index of the local replica.", []string{"topic", "partition"}, nil)
	descHW     = prometheus.NewDesc("sluice_partition_high_watermark", "Next offset to be assigned in the local replica.", []string{"topic", "partition"}, nil)
	descTerm   = prometheus.NewDesc("sluice_partition_term", "Raft term of the local replica.", []string{"topic", "partition"}, nil)
	descMeta   = prometheus.NewDesc("sluice_metadata_raft_state", "Raft state of the local metadata replica.", nil, nil)
)

func (c *raftCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descState
	ch <- descCommit
	ch <- descHW
	ch <- descTerm
	ch <- descMeta
}

func (c *raftCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.n.replicaList() {
		labels := []string{r.key.topic, strconv.Itoa(int(r.key.partition))}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, float64(r.raft().State()), labels...)
		ch <- prometheus.MustNewConstMetric(descCommit, prometheus.GaugeValue, float64(r.raft().CommitIndex()), labels...)
		ch <- prometheus.MustNewConstMetric(descHW, prometheus.GaugeValue, float64(r.fsm.HighWatermark()), labels...)
		ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(r.raft().CurrentTerm()), labels...)
	}
	if c.n.metaRG != nil {
		ch <- prometheus.MustNewConstMetric(descMeta, prometheus.GaugeValue, float64(c.n.metaRG.raft.State()))
	}
}
