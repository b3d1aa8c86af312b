package agent

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-io/sluice/agent/flow"
)

// Collector exports agent counters to Prometheus: every Flume counter
// becomes sluice_agent_<snake_case name>{agent, kind, component}, e.g.
// sluice_agent_channel_size{agent="a1",kind="CHANNEL",component="c1"}.
type Collector struct {
	Agent    string
	Counters func() []*flow.Counters
}

// Describe sends nothing: the counter set changes with reloads (an
// unchecked collector).
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, g := range c.Counters() {
		snap := g.Snapshot()
		for _, name := range flow.SortedNames(snap) {
			v, err := strconv.ParseFloat(snap[name], 64)
			if err != nil {
				continue // "Type"
			}
			desc := prometheus.NewDesc("sluice_agent_"+snake(name), "Flume counter "+name+" of agent components.", []string{"agent", "kind", "component"}, nil)
			m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, v, c.Agent, string(g.Kind), g.Name)
			if err == nil {
				ch <- m
			}
		}
	}
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
