// Package selector holds Flume's channel selectors: replicating (every
// channel, some optional) and multiplexing (channels by a header value).
package selector

import (
	"fmt"
	"strings"

	"github.com/sluice-io/sluice/agent/flow"
)

// Types lists the selector type names accepted (aliases and Flume FQCNs).
var types = map[string]string{
	"replicating":  "replicating",
	"multiplexing": "multiplexing",
	"org.apache.flume.channel.replicatingchannelselector":  "replicating",
	"org.apache.flume.channel.multiplexingchannelselector": "multiplexing",
}

// Known reports whether typ names a selector.
func Known(typ string) bool { _, ok := types[strings.ToLower(strings.TrimSpace(typ))]; return ok }

// New builds the selector of a source from its selector properties
// (Sub("selector")) and the source's channels, by name.
func New(p *flow.Props, channels []flow.Channel) (flow.Selector, error) {
	typ := p.String("type", "replicating")
	kind, ok := types[strings.ToLower(strings.TrimSpace(typ))]
	if !ok {
		return nil, fmt.Errorf("%s.type: unknown channel selector type %q", p.Prefix, typ)
	}
	byName := map[string]flow.Channel{}
	for _, c := range channels {
		byName[c.Name()] = c
	}
	resolve := func(key string) ([]flow.Channel, error) {
		var out []flow.Channel
		for _, n := range p.List(key) {
			c, ok := byName[n]
			if !ok {
				return nil, fmt.Errorf("%s.%s: channel %q is not among the source's channels", p.Prefix, key, n)
			}
			out = append(out, c)
		}
		return out, nil
	}
	if kind == "replicating" {
		opt, err := resolve("optional")
		if err != nil {
			return nil, err
		}
		r := &Replicating{}
		for _, c := range channels {
			if contains(opt, c) {
				r.optional = append(r.optional, c)
			} else {
				r.required = append(r.required, c)
			}
		}
		return r, nil
	}
	m := &Multiplexing{
		header:   p.String("header", "flume.selector.header"),
		mapping:  map[string][]flow.Channel{},
		optional: map[string][]flow.Channel{},
	}
	var err error
	if m.def, err = resolve("default"); err != nil {
		return nil, err
	}
	for _, k := range p.Keys() {
		var v string
		var into map[string][]flow.Channel
		switch {
		case strings.HasPrefix(k, "mapping."):
			v, into = k[len("mapping."):], m.mapping
		case strings.HasPrefix(k, "optional."):
			v, into = k[len("optional."):], m.optional
		default:
			continue
		}
		cs, err := resolve(k)
		if err != nil {
			return nil, err
		}
		into[v] = cs
	}
	// A channel both required and optional for a value counts as required.
	for v, opt := range m.optional {
		var keep []flow.Channel
		for _, c := range opt {
			if !contains(m.mapping[v], c) {
				keep = append(keep, c)
			}
		}
		m.optional[v] = keep
	}
	return m, nil
}

func contains(cs []flow.Channel, c flow.Channel) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// Replicating puts every event into every channel; failures of the
// optional ones are ignored.
type Replicating struct{ required, optional []flow.Channel }

func (r *Replicating) Select(flow.Event) (required, optional []flow.Channel) {
	return r.required, r.optional
}

// Multiplexing routes by the value of one header: mapping.<value> lists
// the required channels, optional.<value> the optional ones, and events
// whose header is missing, empty or unmapped go to default.
type Multiplexing struct {
	header   string
	mapping  map[string][]flow.Channel
	optional map[string][]flow.Channel
	def      []flow.Channel
}

func (m *Multiplexing) Select(ev flow.Event) (required, optional []flow.Channel) {
	v := ev.Header(m.header)
	req, ok := m.mapping[v]
	if v == "" || !ok || len(req) == 0 {
		req = m.def
	}
	return req, m.optional[v]
}
