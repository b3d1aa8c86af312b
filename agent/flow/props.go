package flow

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Props is one component's properties, with the component prefix
// ("a1.sources.r1.") removed: {"type": "netcat", "port": "5142", ...}.
// The getters record the first bad value; Err reports it, naming the
// property, so a factory reads every property and checks once.
type Props struct {
	// Prefix is the full key prefix, for error messages ("a1.sources.r1").
	Prefix string
	Values map[string]string
	err    error
}

// NewProps wraps values read for the component whose keys start with
// prefix.
func NewProps(prefix string, values map[string]string) *Props {
	if values == nil {
		values = map[string]string{}
	}
	return &Props{Prefix: prefix, Values: values}
}

func (p *Props) fail(key, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%s.%s: %s", p.Prefix, key, fmt.Sprintf(format, args...))
	}
}

// Err is the first error any getter met, or nil.
func (p *Props) Err() error { return p.err }

// Has reports whether key is set.
func (p *Props) Has(key string) bool { _, ok := p.Values[key]; return ok }

// String returns key's value or def.
func (p *Props) String(key, def string) string {
	if v, ok := p.Values[key]; ok {
		return v
	}
	return def
}

// Required returns key's value and records an error when it is missing
// or empty.
func (p *Props) Required(key string) string {
	v := strings.TrimSpace(p.Values[key])
	if v == "" {
		p.fail(key, "required property is missing")
	}
	return v
}

// Int returns key's value as an integer, or def.
func (p *Props) Int(key string, def int64) int64 {
	v, ok := p.Values[key]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		p.fail(key, "%q is not an integer", v)
		return def
	}
	return n
}

// Bool returns key's value as a boolean, or def.
func (p *Props) Bool(key string, def bool) bool {
	v, ok := p.Values[key]
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		p.fail(key, "%q is not true or false", v)
		return def
	}
	return b
}

// Millis returns key's value, a count of milliseconds as Flume writes
// durations, or def.
func (p *Props) Millis(key string, def time.Duration) time.Duration {
	v, ok := p.Values[key]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		p.fail(key, "%q is not a non-negative number of milliseconds", v)
		return def
	}
	return time.Duration(n) * time.Millisecond
}

// Seconds is Millis for properties Flume counts in seconds (keep-alive).
func (p *Props) Seconds(key string, def time.Duration) time.Duration {
	v, ok := p.Values[key]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		p.fail(key, "%q is not a non-negative number of seconds", v)
		return def
	}
	return time.Duration(n) * time.Second
}

// List returns key's value split on whitespace (Flume's component lists).
func (p *Props) List(key string) []string { return strings.Fields(p.Values[key]) }

// Sub returns the properties under key. ("interceptors.i1.type" is "type"
// in Sub("interceptors.i1")).
func (p *Props) Sub(key string) *Props {
	pre := key + "."
	sub := map[string]string{}
	for k, v := range p.Values {
		if strings.HasPrefix(k, pre) {
			sub[k[len(pre):]] = v
		}
	}
	return NewProps(p.Prefix+"."+key, sub)
}

// Keys returns every key, sorted.
func (p *Props) Keys() []string {
	keys := make([]string, 0, len(p.Values))
	for k := range p.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
