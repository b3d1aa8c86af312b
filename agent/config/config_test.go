package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent/flow"
)

func TestParsePropertiesJavaSyntax(t *testing.T) {
	in := "# comment\n" +
		"  ! another comment\n" +
		"a1.sources = r1 \\\n    r2\n" +
		"a1.k\\=ey:value # not a comment\n" +
		"a1.tab\\tkey value\\u0041\\\\w+\n" +
		"a1.empty\n" +
		"a1.sources = r3\n"
	es, err := ParseProperties(strings.NewReader(in))
	require.NoError(t, err)
	m := map[string]string{}
	for _, e := range es {
		m[e.Key] = e.Value
	}
	require.Equal(t, "r3", m["a1.sources"], "a later key overrides")
	require.Equal(t, "value # not a comment", m["a1.k=ey"])
	require.Equal(t, `valueA\w+`, m["a1.tab\tkey"])
	require.Contains(t, m, "a1.empty")
	es, err = ParseProperties(strings.NewReader("a1.sources = r1 \\\n  r2\n"))
	require.NoError(t, err)
	require.Equal(t, "r1 r2", es[0].Value)
	_, err = ParseProperties(strings.NewReader("a1.x = \\u00zz\n"))
	require.ErrorContains(t, err, "line 1")
}

var testCatalog = Catalog{
	Source:  func(t string) bool { return t == "netcat" || t == "seq" },
	Channel: func(t string) bool { return t == "memory" || t == "file" },
	Sink: func(t string) bool {
		return t == "null" || t == "logger" || t == "org.apache.flume.sink.kafka.KafkaSink"
	},
	Interceptor: func(t string) bool { return t == "timestamp" },
	Processor:   func(t string) bool { return t == "default" || t == "failover" },
	Selector:    func(t string) bool { return t == "replicating" || t == "multiplexing" },
	TxCapacity: func(typ string, p *flow.Props) int64 {
		if typ == "memory" {
			return p.Int("transactionCapacity", 100)
		}
		return 0
	},
}

const good = `
a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = netcat
a1.sources.r1.port = ${env:PORT}
a1.sources.r1.bind = ${HOST}
a1.sources.r1.channels = c1
a1.sources.r1.interceptors = i1
a1.sources.r1.interceptors.i1.type = timestamp
a1.channels.c1.type = memory
a1.sinks.k1.type = null
a1.sinks.k1.channel = c1
a2.sources = s
a2.channels = c
a2.sources.s.type = seq
a2.sources.s.channels = c
a2.channels.c.type = memory
`

func env(m map[string]string) Options {
	return Options{Env: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
}

func TestLoadSelectsAgentAndSubstitutes(t *testing.T) {
	a, probs, err := Load(strings.NewReader(good), "a1", testCatalog, env(map[string]string{"PORT": "5999", "HOST": "127.0.0.1"}))
	require.NoError(t, err)
	require.Empty(t, probs)
	require.Len(t, a.Sources, 1)
	require.Equal(t, "5999", a.Sources[0].Props.String("port", ""))
	require.Equal(t, "127.0.0.1", a.Sources[0].Props.String("bind", ""))
	require.Equal(t, "timestamp", a.Sources[0].Interceptors[0].Type)
	require.Equal(t, "c1", a.Sinks[0].Channel)

	b, _, err := Load(strings.NewReader(good), "a2", testCatalog, env(nil))
	require.NoError(t, err)
	require.Equal(t, "s", b.Sources[0].Name)
	require.Empty(t, b.Sinks)

	_, _, err = Load(strings.NewReader(good), "a3", testCatalog, env(nil))
	require.ErrorContains(t, err, `agent "a3" is not configured (agents in the file: a1, a2)`)
}

const base = `
a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = seq
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.sinks.k1.type = null
a1.sinks.k1.channel = c1
`

// Each broken configuration drops the component with a problem naming
// the key and the reason, and the rest still loads.
func TestBrokenConfigurations(t *testing.T) {
	cases := []struct {
		name, extra, key, reason string
		sources, sinks, groups   int
	}{
		{"unknown source type", "a1.sources = r1 r2\na1.sources.r2.type = bogus\na1.sources.r2.channels = c1\n",
			"a1.sources.r2.type", `unknown source type "bogus"`, 1, 1, 0},
		{"missing type", "a1.sinks = k1 k2\na1.sinks.k2.channel = c1\n",
			"a1.sinks.k2.type", "required property is missing", 1, 1, 0},
		{"dangling channel reference", "a1.sources = r1 r2\na1.sources.r2.type = seq\na1.sources.r2.channels = c9\n",
			"a1.sources.r2.channels", `channel "c9" is not a valid channel`, 1, 1, 0},
		{"sink without channel", "a1.sinks = k1 k2\na1.sinks.k2.type = null\n",
			"a1.sinks.k2.channel", "required property is missing", 1, 1, 0},
		{"sink with plural channels", "a1.sinks = k1 k2\na1.sinks.k2.type = null\na1.sinks.k2.channels = c1\n",
			"a1.sinks.k2.channel", `"channel", singular`, 1, 1, 0},
		{"sink on a dangling channel", "a1.sinks = k1 k2\na1.sinks.k2.type = null\na1.sinks.k2.channel = nope\n",
			"a1.sinks.k2.channel", `channel "nope" is not a valid channel`, 1, 1, 0},
		{"sink in two groups", "a1.sinks = k1 k2\na1.sinks.k2.type = null\na1.sinks.k2.channel = c1\na1.sinkgroups = g1 g2\n" +
			"a1.sinkgroups.g1.sinks = k1 k2\na1.sinkgroups.g1.processor.type = failover\na1.sinkgroups.g2.sinks = k2\n",
			"a1.sinkgroups.g2.sinks", `sink "k2" is already in sink group "g1"`, 1, 2, 1},
		{"batchSize above transactionCapacity", "a1.channels.c1.transactionCapacity = 10\na1.sinks.k1.batchSize = 50\n",
			"a1.sinks.k1.batchSize", "above the transactionCapacity (10)", 1, 0, 0},
		{"source batchSize above transactionCapacity", "a1.sources.r1.batchSize = 500\n",
			"a1.sources.r1.batchSize", "above the transactionCapacity (100)", 0, 1, 0},
		{"Kafka sink flumeBatchSize above transactionCapacity", "a1.sinks = k1 k2\na1.sinks.k2.type = org.apache.flume.sink.kafka.KafkaSink\na1.sinks.k2.channel = c1\na1.sinks.k2.flumeBatchSize = 101\n",
			"a1.sinks.k2.flumeBatchSize", "above the transactionCapacity", 1, 1, 0},
		{"unknown interceptor", "a1.sources.r1.interceptors = i1\na1.sources.r1.interceptors.i1.type = nope\n",
			"a1.sources.r1.interceptors.i1.type", `unknown interceptor type "nope"`, 0, 1, 0},
		{"selector channel not the source's", "a1.channels = c1 c2\na1.channels.c2.type = memory\na1.sources.r1.selector.type = multiplexing\na1.sources.r1.selector.default = c2\n",
			"a1.sources.r1.selector.default", `channel "c2" is not among the source's channels`, 0, 1, 0},
		{"unknown processor", "a1.sinkgroups = g1\na1.sinkgroups.g1.sinks = k1\na1.sinkgroups.g1.processor.type = magic\n",
			"a1.sinkgroups.g1.processor.type", `unknown sink processor type "magic"`, 1, 1, 0},
		{"unlisted component", "a1.sinks.k9.type = null\n", "a1.sinks.k9", "not listed", 1, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, probs, err := Load(strings.NewReader(base+tc.extra), "a1", testCatalog, env(nil))
			require.NoError(t, err)
			var found bool
			for _, p := range probs {
				if p.Key == tc.key && strings.Contains(p.Reason, tc.reason) {
					found = true
				}
			}
			require.True(t, found, "no problem %s: %s in %v", tc.key, tc.reason, probs)
			require.Len(t, a.Sources, tc.sources)
			require.Len(t, a.Sinks, tc.sinks)
			require.Len(t, a.SinkGroups, tc.groups)
		})
	}
}

func TestNothingValidLeftIsAnError(t *testing.T) {
	_, probs, err := Load(strings.NewReader("a1.sources = r1\na1.channels = c1\na1.sources.r1.type = seq\na1.sources.r1.channels = c1\na1.channels.c1.type = bogus\n"), "a1", testCatalog, env(nil))
	require.ErrorIs(t, err, ErrNothingValid)
	require.ErrorContains(t, err, `a1.channels.c1.type: unknown channel type "bogus"`)
	require.NotEmpty(t, probs)
	_, _, err = Load(strings.NewReader("a1.channels = c1\na1.channels.c1.type = memory\n"), "a1", testCatalog, env(nil))
	require.ErrorIs(t, err, ErrNothingValid)
}

func TestKeysWithoutAgentOrValueWarn(t *testing.T) {
	f, err := Parse(strings.NewReader("nodot = 1\na1.x =\na1.y = ${env:NOPE}\n"), env(nil))
	require.NoError(t, err)
	require.Len(t, f.Warnings, 3)
	require.Equal(t, "${env:NOPE}", f.Agents["a1"]["y"])
}
