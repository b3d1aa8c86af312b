// Package config reads Flume agent configurations: Java properties whose
// keys start with the agent name (a1.sources = r1, a1.sources.r1.type =
// netcat, ...), several agents per file, ${env:X} substitution, and the
// validation rules of Flume's FlumeConfiguration: an invalid component is
// dropped with a warning naming the offending property and the reason,
// and the agent is refused only when nothing valid is left.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/sluice-io/sluice/agent/flow"
)

// Problem is one configuration error: the key at fault and why.
type Problem struct {
	Key    string
	Reason string
}

func (p Problem) Error() string { return p.Key + ": " + p.Reason }

// Component is one named, typed component and its properties (prefix
// removed).
type Component struct {
	Name  string
	Type  string
	Props *flow.Props
}

// Source is a source with the channels it writes to, its interceptors and
// its selector's properties (Sub("selector")).
type Source struct {
	Component
	Channels     []string
	Interceptors []Component
	Selector     *flow.Props
}

// Sink is a sink and the one channel it reads.
type Sink struct {
	Component
	Channel string
}

// SinkGroup is a sink group: its sinks in order and its processor's
// properties (Sub("processor")).
type SinkGroup struct {
	Name      string
	Sinks     []string
	Processor *flow.Props
}

// Agent is one agent's valid components, in configuration order.
type Agent struct {
	Name       string
	Sources    []*Source
	Channels   []*Component
	Sinks      []*Sink
	SinkGroups []*SinkGroup
}

// Catalog tells the validator which types exist. Each function reports
// whether a type name (alias or FQCN, as written) is known.
type Catalog struct {
	Source, Channel, Sink, Interceptor, Processor, Selector func(typ string) bool
	// TxCapacity is the transactionCapacity of a channel of typ with
	// props p (its default when unset), 0 when the type has no limit.
	TxCapacity func(typ string, p *flow.Props) int64
}

// Options tunes Load and Parse.
type Options struct {
	// Env resolves ${env:X} and ${X}; default os.LookupEnv.
	Env func(string) (string, bool)
	// Sys resolves ${sys:X} (Java system properties have no counterpart
	// here); default: the environment too.
	Sys func(string) (string, bool)
}

// File is a parsed configuration file: every agent's keys, with the agent
// prefix removed.
type File struct {
	Agents   map[string]map[string]string
	Warnings []Problem
}

var varRE = regexp.MustCompile(`\$\{([^}]*)\}`)

// Parse reads a properties file and splits it by agent.
func Parse(r io.Reader, opt Options) (*File, error) {
	if opt.Env == nil {
		opt.Env = os.LookupEnv
	}
	if opt.Sys == nil {
		opt.Sys = opt.Env
	}
	entries, err := ParseProperties(r)
	if err != nil {
		return nil, err
	}
	f := &File{Agents: map[string]map[string]string{}}
	for _, e := range entries {
		agent, rest, ok := strings.Cut(e.Key, ".")
		if !ok || agent == "" || rest == "" {
			f.Warnings = append(f.Warnings, Problem{e.Key, fmt.Sprintf("line %d: key has no agent prefix (<agent>.<...>); ignored", e.Line)})
			continue
		}
		v := strings.TrimSpace(e.Value)
		if v == "" {
			f.Warnings = append(f.Warnings, Problem{e.Key, fmt.Sprintf("line %d: empty value; ignored", e.Line)})
			continue
		}
		v = varRE.ReplaceAllStringFunc(v, func(m string) string {
			name := m[2 : len(m)-1]
			look := opt.Env
			switch {
			case strings.HasPrefix(name, "env:"):
				name = name[4:]
			case strings.HasPrefix(name, "sys:"):
				name, look = name[4:], opt.Sys
			}
			if val, ok := look(name); ok {
				return val
			}
			f.Warnings = append(f.Warnings, Problem{e.Key, fmt.Sprintf("line %d: %s is not defined; left as written", e.Line, m)})
			return m
		})
		if f.Agents[agent] == nil {
			f.Agents[agent] = map[string]string{}
		}
		f.Agents[agent][rest] = v
	}
	return f, nil
}

// AgentNames lists the agents the file defines, sorted.
func (f *File) AgentNames() []string {
	names := make([]string, 0, len(f.Agents))
	for n := range f.Agents {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ErrNothingValid is returned (wrapped) when the agent has no valid
// channel, or neither a valid source nor a valid sink.
var ErrNothingValid = errors.New("no valid configuration left")

// LoadFile reads path and validates agent name.
func LoadFile(path, name string, cat Catalog, opt Options) (*Agent, []Problem, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer fh.Close()
	return Load(fh, name, cat, opt)
}

// Load parses a configuration and validates agent name. The problems are
// warnings about what was dropped; err is set when the agent cannot run.
func Load(r io.Reader, name string, cat Catalog, opt Options) (*Agent, []Problem, error) {
	f, err := Parse(r, opt)
	if err != nil {
		return nil, nil, err
	}
	keys, ok := f.Agents[name]
	if !ok {
		return nil, f.Warnings, fmt.Errorf("agent %q is not configured (agents in the file: %s)", name, strings.Join(f.AgentNames(), ", "))
	}
	a, probs := Validate(name, keys, cat)
	probs = append(f.Warnings, probs...)
	if len(a.Channels) == 0 || (len(a.Sources) == 0 && len(a.Sinks) == 0) {
		return nil, probs, fmt.Errorf("agent %q: %w (it needs a valid channel and a valid source or sink)%s", name, ErrNothingValid, describe(probs))
	}
	return a, probs, nil
}

func describe(probs []Problem) string {
	if len(probs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(":")
	for _, p := range probs {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// sinkBatchKeys are the batch-size properties of the sinks (the Kafka
// sink's flumeBatchSize, file_roll's sink.batchSize, the avro-style
// batch-size).
var sinkBatchKeys = []string{"batchSize", "flumeBatchSize", "sink.batchSize", "batch-size"}

// Validate checks one agent's keys (agent prefix removed) and returns its
// valid components plus a problem for everything dropped.
func Validate(name string, keys map[string]string, cat Catalog) (*Agent, []Problem) {
	v := &validator{name: name, keys: keys, cat: cat, a: &Agent{Name: name}}
	v.run()
	return v.a, v.probs
}

type validator struct {
	name  string
	keys  map[string]string
	cat   Catalog
	a     *Agent
	probs []Problem
}

func (v *validator) warn(key, format string, args ...any) {
	v.probs = append(v.probs, Problem{v.name + "." + key, fmt.Sprintf(format, args...)})
}

func (v *validator) props(prefix string) *flow.Props {
	pre := prefix + "."
	m := map[string]string{}
	for k, val := range v.keys {
		if strings.HasPrefix(k, pre) {
			m[k[len(pre):]] = val
		}
	}
	return flow.NewProps(v.name+"."+prefix, m)
}

func known(f func(string) bool, typ string) bool { return f != nil && f(typ) }

// component checks the type of kind.name and returns its props.
func (v *validator) component(kind, name string, isKnown func(string) bool) (*Component, bool) {
	p := v.props(kind + "." + name)
	typ := strings.TrimSpace(p.String("type", ""))
	if typ == "" {
		v.warn(kind+"."+name+".type", "required property is missing; %s %q dropped", singular(kind), name)
		return nil, false
	}
	if !known(isKnown, typ) {
		v.warn(kind+"."+name+".type", "unknown %s type %q; %s %q dropped", singular(kind), typ, singular(kind), name)
		return nil, false
	}
	return &Component{Name: name, Type: typ, Props: p}, true
}

func singular(kind string) string {
	switch kind {
	case "sources":
		return "source"
	case "channels":
		return "channel"
	case "sinks":
		return "sink"
	}
	return kind
}

func (v *validator) list(key string) []string {
	var out []string
	for _, n := range strings.Fields(v.keys[key]) {
		if slices.Contains(out, n) {
			v.warn(key, "%q listed twice; counted once", n)
			continue
		}
		out = append(out, n)
	}
	return out
}

func (v *validator) run() {
	v.unlisted()
	txCap := map[string]int64{}
	for _, cn := range v.list("channels") {
		c, ok := v.component("channels", cn, v.cat.Channel)
		if !ok {
			continue
		}
		if v.cat.TxCapacity != nil {
			txCap[cn] = v.cat.TxCapacity(c.Type, c.Props)
		}
		v.a.Channels = append(v.a.Channels, c)
	}
	valid := func(ch string) bool { _, ok := txCap[ch]; return ok || v.hasChannel(ch) }

	for _, sn := range v.list("sources") {
		if s := v.source(sn, valid, txCap); s != nil {
			v.a.Sources = append(v.a.Sources, s)
		}
	}
	sinks := map[string]bool{}
	for _, kn := range v.list("sinks") {
		c, ok := v.component("sinks", kn, v.cat.Sink)
		if !ok {
			continue
		}
		ch := strings.TrimSpace(c.Props.String("channel", ""))
		if ch == "" {
			if c.Props.Has("channels") {
				v.warn("sinks."+kn+".channel", "required property is missing (a sink reads one channel: \"channel\", singular, not \"channels\"); sink %q dropped", kn)
			} else {
				v.warn("sinks."+kn+".channel", "required property is missing: a sink needs a channel; sink %q dropped", kn)
			}
			continue
		}
		if len(strings.Fields(ch)) != 1 {
			v.warn("sinks."+kn+".channel", "a sink reads exactly one channel, got %q; sink %q dropped", ch, kn)
			continue
		}
		if !valid(ch) {
			v.warn("sinks."+kn+".channel", "channel %q is not a valid channel of agent %s; sink %q dropped", ch, v.name, kn)
			continue
		}
		if bad := v.batchTooBig(c.Props, ch, txCap, sinkBatchKeys); bad != "" {
			v.warn("sinks."+kn+"."+bad, "%s (%s) is above the transactionCapacity (%d) of channel %q; sink %q dropped", bad, c.Props.String(bad, ""), txCap[ch], ch, kn)
			continue
		}
		sinks[kn] = true
		v.a.Sinks = append(v.a.Sinks, &Sink{Component: *c, Channel: ch})
	}
	grouped := map[string]string{}
	for _, gn := range v.list("sinkgroups") {
		key := "sinkgroups." + gn
		p := v.props(key)
		members := strings.Fields(p.String("sinks", ""))
		if len(members) == 0 {
			v.warn(key+".sinks", "required property is missing; sink group %q dropped", gn)
			continue
		}
		proc := p.Sub("processor")
		if typ := proc.String("type", "default"); !known(v.cat.Processor, typ) {
			v.warn(key+".processor.type", "unknown sink processor type %q; sink group %q dropped", typ, gn)
			continue
		}
		ok := true
		var keep []string
		for _, m := range members {
			if g, in := grouped[m]; in {
				v.warn(key+".sinks", "sink %q is already in sink group %q (a sink may belong to one group only); sink group %q dropped", m, g, gn)
				ok = false
				break
			}
			if !sinks[m] {
				v.warn(key+".sinks", "sink %q is not a valid sink of agent %s; left out of group %q", m, v.name, gn)
				continue
			}
			keep = append(keep, m)
		}
		if !ok {
			continue
		}
		if len(keep) == 0 {
			v.warn(key+".sinks", "no valid sink left; sink group %q dropped", gn)
			continue
		}
		for _, m := range keep {
			grouped[m] = gn
		}
		v.a.SinkGroups = append(v.a.SinkGroups, &SinkGroup{Name: gn, Sinks: keep, Processor: proc})
	}
}

func (v *validator) hasChannel(name string) bool {
	for _, c := range v.a.Channels {
		if c.Name == name {
			return true
		}
	}
	return false
}

func (v *validator) batchTooBig(p *flow.Props, ch string, txCap map[string]int64, keys []string) string {
	limit := txCap[ch]
	if limit <= 0 {
		return ""
	}
	for _, k := range keys {
		if p.Has(k) {
			if n := p.Int(k, 0); n > limit {
				return k
			}
		}
	}
	return ""
}

func (v *validator) source(sn string, valid func(string) bool, txCap map[string]int64) *Source {
	c, ok := v.component("sources", sn, v.cat.Source)
	if !ok {
		return nil
	}
	key := "sources." + sn
	chans := strings.Fields(c.Props.String("channels", ""))
	if len(chans) == 0 {
		if c.Props.Has("channel") {
			v.warn(key+".channels", "required property is missing (a source writes to \"channels\", plural); source %q dropped", sn)
		} else {
			v.warn(key+".channels", "required property is missing: a source needs at least one channel; source %q dropped", sn)
		}
		return nil
	}
	for _, ch := range chans {
		if !valid(ch) {
			v.warn(key+".channels", "channel %q is not a valid channel of agent %s; source %q dropped", ch, v.name, sn)
			return nil
		}
	}
	for _, ch := range chans {
		if bad := v.batchTooBig(c.Props, ch, txCap, []string{"batchSize"}); bad != "" {
			v.warn(key+"."+bad, "%s (%s) is above the transactionCapacity (%d) of channel %q; source %q dropped", bad, c.Props.String(bad, ""), txCap[ch], ch, sn)
			return nil
		}
	}
	s := &Source{Component: *c, Channels: chans, Selector: c.Props.Sub("selector")}
	for _, in := range strings.Fields(c.Props.String("interceptors", "")) {
		ip := c.Props.Sub("interceptors." + in)
		typ := strings.TrimSpace(ip.String("type", ""))
		if typ == "" {
			v.warn(key+".interceptors."+in+".type", "required property is missing; source %q dropped", sn)
			return nil
		}
		if !known(v.cat.Interceptor, typ) {
			v.warn(key+".interceptors."+in+".type", "unknown interceptor type %q; source %q dropped", typ, sn)
			return nil
		}
		s.Interceptors = append(s.Interceptors, Component{Name: in, Type: typ, Props: ip})
	}
	sel := s.Selector
	if typ := sel.String("type", "replicating"); !known(v.cat.Selector, typ) {
		v.warn(key+".selector.type", "unknown channel selector type %q; source %q dropped", typ, sn)
		return nil
	}
	for _, k := range sel.Keys() {
		if k != "optional" && k != "default" && !strings.HasPrefix(k, "mapping.") && !strings.HasPrefix(k, "optional.") {
			continue
		}
		for _, ch := range sel.List(k) {
			if !slices.Contains(chans, ch) {
				v.warn(key+".selector."+k, "channel %q is not among the source's channels (%s); source %q dropped", ch, strings.Join(chans, " "), sn)
				return nil
			}
		}
	}
	return s
}

// unlisted warns about components that have properties but are not
// listed (Flume ignores them too) and about unknown top-level keys.
func (v *validator) unlisted() {
	listed := map[string]map[string]bool{}
	for _, kind := range []string{"sources", "channels", "sinks", "sinkgroups"} {
		listed[kind] = map[string]bool{}
		for _, n := range strings.Fields(v.keys[kind]) {
			listed[kind][n] = true
		}
	}
	seen := map[string]bool{}
	keys := make([]string, 0, len(v.keys))
	for k := range v.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kind, rest, ok := strings.Cut(k, ".")
		if _, isKind := listed[kind]; !isKind {
			if kind == "configfilters" {
				v.warn(k, "config filters are not supported; ignored")
			} else {
				v.warn(k, "unknown key (expected sources, channels, sinks or sinkgroups); ignored")
			}
			continue
		}
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, ".")
		if !listed[kind][name] && !seen[kind+"."+name] {
			seen[kind+"."+name] = true
			v.warn(kind+"."+name, "%s %q has properties but is not listed in %s.%s; ignored", singular(kind), name, v.name, kind)
		}
	}
}
