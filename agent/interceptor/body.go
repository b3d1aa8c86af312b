package interceptor

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
)

// newSearchReplace: Flume's SearchAndReplaceInterceptor, Java's
// String.replaceAll on the body. replaceString uses Java's $1 group
// references.
func newSearchReplace(p *flow.Props, _ flow.Deps) (flow.Interceptor, error) {
	// Not Required: that trims, and spaces in a pattern are significant.
	pattern := p.String("searchPattern", "")
	if pattern == "" {
		p.Required("searchPattern")
	}
	repl := p.String("replaceString", "")
	charset := strings.ToUpper(p.String("charset", "UTF-8"))
	if err := p.Err(); err != nil {
		return nil, err
	}
	if charset != "UTF-8" && charset != "UTF8" {
		return nil, fmt.Errorf("%s.charset: %q is not supported (UTF-8 only)", p.Prefix, charset)
	}
	re, err := compile(p, "searchPattern", pattern)
	if err != nil {
		return nil, err
	}
	goRepl := []byte(javaReplacement(repl))
	return headerFunc(func(ev *flow.Event) {
		ev.Body = re.ReplaceAll(ev.Body, goRepl)
	}), nil
}

// javaReplacement turns a Java replacement string ($1, \$) into Go's
// regexp template syntax (${1}, $$).
func javaReplacement(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			if s[i] == '$' {
				b.WriteString("$$")
			} else {
				b.WriteByte(s[i])
			}
		case c == '$' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			b.WriteString("${" + s[i+1:j] + "}")
			i = j - 1
		case c == '$' && i+1 < len(s) && s[i+1] == '{':
			// Java's named group ${name} is Go's too.
			b.WriteByte('$')
		case c == '$':
			b.WriteString("$$")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// regexFilter is Flume's RegexFilteringInterceptor: keep the events whose
// body matches (Matcher.find), or drop them with excludeEvents.
type regexFilter struct {
	re      *regexp.Regexp
	exclude bool
}

func newRegexFilter(p *flow.Props, _ flow.Deps) (flow.Interceptor, error) {
	expr := p.String("regex", ".*")
	exclude := p.Bool("excludeEvents", false)
	if err := p.Err(); err != nil {
		return nil, err
	}
	re, err := compile(p, "regex", expr)
	if err != nil {
		return nil, err
	}
	return &regexFilter{re: re, exclude: exclude}, nil
}

func (f *regexFilter) Intercept(events []flow.Event) []flow.Event {
	out := events[:0]
	for _, ev := range events {
		if f.re.Match(ev.Body) != f.exclude {
			out = append(out, ev)
		}
	}
	return out
}

// regexExtractor is Flume's RegexExtractorInterceptor: group i of the
// first match goes, through serializer i, into the serializer's header.
type regexExtractor struct {
	re          *regexp.Regexp
	serializers []serializer
}

type serializer struct {
	name string
	// millis, when set, parses the value as a date into ms since epoch.
	millis string
}

const (
	passThroughFQCN = "org.apache.flume.interceptor.RegexExtractorInterceptorPassThroughSerializer"
	millisFQCN      = "org.apache.flume.interceptor.RegexExtractorInterceptorMillisSerializer"
)

func newRegexExtractor(p *flow.Props, _ flow.Deps) (flow.Interceptor, error) {
	expr := p.String("regex", "")
	if expr == "" {
		p.Required("regex")
	}
	names := p.List("serializers")
	if len(names) == 0 {
		p.Required("serializers")
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	re, err := compile(p, "regex", expr)
	if err != nil {
		return nil, err
	}
	x := &regexExtractor{re: re}
	for _, n := range names {
		sp := p.Sub("serializers." + n)
		s := serializer{name: sp.Required("name")}
		switch typ := sp.String("type", "default"); strings.ToLower(typ) {
		case "default", "passthrough", strings.ToLower(passThroughFQCN):
		case "millis", strings.ToLower(millisFQCN):
			pattern := sp.Required("pattern")
			if sp.Err() == nil {
				layout, err := javaDateLayout(pattern)
				if err != nil {
					return nil, fmt.Errorf("%s.pattern: %w", sp.Prefix, err)
				}
				s.millis = layout
			}
		default:
			return nil, fmt.Errorf("%s.type: unknown serializer %q (default, or %s)", sp.Prefix, typ, millisFQCN)
		}
		if err := sp.Err(); err != nil {
			return nil, err
		}
		x.serializers = append(x.serializers, s)
	}
	return x, nil
}

func (x *regexExtractor) Intercept(events []flow.Event) []flow.Event {
	for i := range events {
		ev := &events[i]
		m := x.re.FindSubmatch(ev.Body)
		if m == nil {
			continue
		}
		for g := 1; g < len(m) && g <= len(x.serializers); g++ {
			s := x.serializers[g-1]
			v := string(m[g])
			if s.millis != "" {
				t, err := time.ParseInLocation(s.millis, v, time.Local)
				if err != nil {
					// Flume's serializer would throw and lose the event's
					// batch; leaving the header out keeps the event.
					continue
				}
				v = fmt.Sprint(t.UnixMilli())
			}
			ev.SetHeader(s.name, v)
		}
	}
	return events
}

// javaDateLayout converts a Joda/SimpleDateFormat pattern (what Flume's
// MillisSerializer takes) into a Go time layout. It covers the usual
// letters; others are refused with a clear error.
func javaDateLayout(p string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(p); {
		c := p[i]
		if c == '\'' {
			j := strings.IndexByte(p[i+1:], '\'')
			if j < 0 {
				return "", fmt.Errorf("unterminated quote in date pattern %q", p)
			}
			if j == 0 {
				b.WriteByte('\'')
			} else {
				b.WriteString(p[i+1 : i+1+j])
			}
			i += j + 2
			continue
		}
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			b.WriteByte(c)
			i++
			continue
		}
		n := 1
		for i+n < len(p) && p[i+n] == c {
			n++
		}
		tok := p[i : i+n]
		i += n
		var g string
		switch {
		case c == 'y' && n == 2:
			g = "06"
		case c == 'y':
			g = "2006"
		case c == 'M' && n == 1:
			g = "1"
		case c == 'M' && n == 2:
			g = "01"
		case c == 'M' && n == 3:
			g = "Jan"
		case c == 'M':
			g = "January"
		case c == 'd' && n == 1:
			g = "2"
		case c == 'd':
			g = "02"
		case c == 'H':
			g = "15"
		case c == 'h' && n == 1:
			g = "3"
		case c == 'h':
			g = "03"
		case c == 'm' && n == 1:
			g = "4"
		case c == 'm':
			g = "04"
		case c == 's' && n == 1:
			g = "5"
		case c == 's':
			g = "05"
		case c == 'S':
			g = strings.Repeat("0", n)
			if !strings.HasSuffix(b.String(), ".") && !strings.HasSuffix(b.String(), ",") {
				return "", fmt.Errorf("fraction %q must follow '.' or ',' in date pattern %q", tok, p)
			}
		case c == 'a':
			g = "PM"
		case c == 'E' && n <= 3:
			g = "Mon"
		case c == 'E':
			g = "Monday"
		case c == 'Z':
			g = "-0700"
		case c == 'z':
			g = "MST"
		default:
			return "", fmt.Errorf("unsupported letter %q in date pattern %q", tok, p)
		}
		b.WriteString(g)
	}
	return b.String(), nil
}
