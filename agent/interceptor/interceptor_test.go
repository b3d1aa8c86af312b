package interceptor

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent/flow"
)

func build(t *testing.T, typ string, props map[string]string) flow.Interceptor {
	t.Helper()
	b, ok := Builders()[typ]
	require.True(t, ok, "no builder for %s", typ)
	i, err := b(flow.NewProps("a1.sources.r1.interceptors.i1", props), flow.Deps{})
	require.NoError(t, err)
	return i
}

func ev(body string, headers ...string) flow.Event {
	e := flow.Event{Body: []byte(body), Headers: map[string]string{}}
	for i := 0; i+1 < len(headers); i += 2 {
		e.Headers[headers[i]] = headers[i+1]
	}
	return e
}

func TestBuildersHaveAliasesAndFQCNs(t *testing.T) {
	b := Builders()
	for _, name := range []string{
		"timestamp", "host", "static", "remove_header", "uuid", "search_replace", "regex_filter", "regex_extractor",
		"org.apache.flume.interceptor.TimestampInterceptor$Builder",
		"org.apache.flume.interceptor.HostInterceptor$Builder",
		"org.apache.flume.interceptor.StaticInterceptor$Builder",
		"org.apache.flume.interceptor.RemoveHeaderInterceptor$Builder",
		"org.apache.flume.sink.solr.morphline.UUIDInterceptor$Builder",
		"org.apache.flume.interceptor.SearchAndReplaceInterceptor$Builder",
		"org.apache.flume.interceptor.RegexFilteringInterceptor$Builder",
		"org.apache.flume.interceptor.RegexExtractorInterceptor$Builder",
	} {
		assert.Contains(t, b, name)
	}
}

func TestHeaderInterceptors(t *testing.T) {
	now := time.Now().UnixMilli()
	tests := []struct {
		name  string
		typ   string
		props map[string]string
		in    flow.Event
		check func(t *testing.T, out flow.Event)
	}{
		{"timestamp default", "timestamp", nil, ev("x", "timestamp", "1"), func(t *testing.T, out flow.Event) {
			ts, err := strconv.ParseInt(out.Headers["timestamp"], 10, 64)
			require.NoError(t, err)
			assert.GreaterOrEqual(t, ts, now)
		}},
		{"timestamp preserve", "timestamp", map[string]string{"preserveExisting": "true", "headerName": "ts"}, ev("x", "ts", "1"), func(t *testing.T, out flow.Event) {
			assert.Equal(t, "1", out.Headers["ts"])
			assert.NotContains(t, out.Headers, "timestamp")
		}},
		{"host ip", "host", nil, ev("x"), func(t *testing.T, out flow.Event) {
			assert.Regexp(t, `^[0-9a-f.:]+$`, out.Headers["host"])
		}},
		{"host name, overwrite", "host", map[string]string{"useIP": "false", "hostHeader": "h"}, ev("x", "h", "old"), func(t *testing.T, out flow.Event) {
			assert.NotEqual(t, "old", out.Headers["h"])
			assert.NotEmpty(t, out.Headers["h"])
		}},
		{"host preserve", "host", map[string]string{"preserveExisting": "true"}, ev("x", "host", "web1"), func(t *testing.T, out flow.Event) {
			assert.Equal(t, "web1", out.Headers["host"])
		}},
		{"static defaults", "static", nil, ev("x"), func(t *testing.T, out flow.Event) {
			assert.Equal(t, "value", out.Headers["key"])
		}},
		{"static preserves by default", "static", map[string]string{"key": "dc", "value": "eu"}, ev("x", "dc", "us"), func(t *testing.T, out flow.Event) {
			assert.Equal(t, "us", out.Headers["dc"])
		}},
		{"static overwrite", "static", map[string]string{"key": "dc", "value": "eu", "preserveExisting": "false"}, ev("x", "dc", "us"), func(t *testing.T, out flow.Event) {
			assert.Equal(t, "eu", out.Headers["dc"])
		}},
		{"remove withName", "remove_header", map[string]string{"withName": "a"}, ev("x", "a", "1", "ab", "2"), func(t *testing.T, out flow.Event) {
			assert.Equal(t, map[string]string{"ab": "2"}, out.Headers)
		}},
		{"remove fromList default separator", "remove_header", map[string]string{"fromList": "a , b,c"}, ev("x", "a", "1", "b", "2", "c", "3", "d", "4"), func(t *testing.T, out flow.Event) {
			assert.Equal(t, map[string]string{"d": "4"}, out.Headers)
		}},
		{"remove fromList own separator", "remove_header", map[string]string{"fromList": "a;b", "fromListSeparator": ";"}, ev("x", "a", "1", "b", "2", "c", "3"), func(t *testing.T, out flow.Event) {
			assert.Equal(t, map[string]string{"c": "3"}, out.Headers)
		}},
		{"remove matching is a full match", "remove_header", map[string]string{"matching": "tmp.*"}, ev("x", "tmp1", "1", "tmp", "2", "xtmp", "3"), func(t *testing.T, out flow.Event) {
			assert.Equal(t, map[string]string{"xtmp": "3"}, out.Headers)
		}},
		{"uuid", "uuid", map[string]string{"prefix": "p-"}, ev("x"), func(t *testing.T, out flow.Event) {
			assert.Regexp(t, `^p-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, out.Headers["id"])
		}},
		{"uuid preserves by default", "uuid", nil, ev("x", "id", "mine"), func(t *testing.T, out flow.Event) {
			assert.Equal(t, "mine", out.Headers["id"])
		}},
		{"search_replace groups", "search_replace", map[string]string{"searchPattern": `(\w+)@(\w+)`, "replaceString": "$2 at $1"}, ev("mail bob@example now"), func(t *testing.T, out flow.Event) {
			assert.Equal(t, "mail example at bob now", string(out.Body))
		}},
		{"search_replace delete and literal dollar", "search_replace", map[string]string{"searchPattern": `secret=\S+`, "replaceString": `secret=\$x`}, ev("a secret=123 b secret=4"), func(t *testing.T, out flow.Event) {
			assert.Equal(t, "a secret=$x b secret=$x", string(out.Body))
		}},
		{"search_replace empty replacement", "search_replace", map[string]string{"searchPattern": `^\d+ `}, ev("42 hello"), func(t *testing.T, out flow.Event) {
			assert.Equal(t, "hello", string(out.Body))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			i := build(t, tc.typ, tc.props)
			out := i.Intercept([]flow.Event{tc.in})
			require.Len(t, out, 1)
			tc.check(t, out[0])
		})
	}
}

func TestUUIDsDiffer(t *testing.T) {
	i := build(t, "uuid", nil)
	out := i.Intercept([]flow.Event{ev("a"), ev("b")})
	assert.NotEqual(t, out[0].Headers["id"], out[1].Headers["id"])
}

func TestRegexFilter(t *testing.T) {
	in := func() []flow.Event { return []flow.Event{ev("DEBUG a"), ev("INFO b"), ev("x DEBUG c"), ev("ERROR d")} }
	bodies := func(evs []flow.Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, string(e.Body))
		}
		return out
	}
	tests := []struct {
		props map[string]string
		want  []string
	}{
		{nil, []string{"DEBUG a", "INFO b", "x DEBUG c", "ERROR d"}},
		{map[string]string{"regex": "^DEBUG", "excludeEvents": "true"}, []string{"INFO b", "x DEBUG c", "ERROR d"}},
		{map[string]string{"regex": "DEBUG"}, []string{"DEBUG a", "x DEBUG c"}},
		{map[string]string{"regex": "DEBUG", "excludeEvents": "true"}, []string{"INFO b", "ERROR d"}},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, bodies(build(t, "regex_filter", tc.props).Intercept(in())), "%v", tc.props)
	}
}

func TestRegexExtractor(t *testing.T) {
	// The user guide's example: "1:2:3.4foobar5" with (\d):(\d):(\d).
	i := build(t, "regex_extractor", map[string]string{
		"regex":               `(\d):(\d):(\d)`,
		"serializers":         "s1 s2 s3",
		"serializers.s1.name": "one",
		"serializers.s2.name": "two",
		"serializers.s3.name": "three",
	})
	out := i.Intercept([]flow.Event{ev("1:2:3.4foobar5"), ev("no digits")})
	assert.Equal(t, map[string]string{"one": "1", "two": "2", "three": "3"}, out[0].Headers)
	assert.Empty(t, out[1].Headers)

	// Fewer serializers than groups: the extra groups are ignored.
	i = build(t, "regex_extractor", map[string]string{
		"regex": `(\d):(\d)`, "serializers": "s1", "serializers.s1.name": "one",
		"serializers.s1.type": "default",
	})
	out = i.Intercept([]flow.Event{ev("7:8")})
	assert.Equal(t, map[string]string{"one": "7"}, out[0].Headers)

	// The millis serializer, by its FQCN, with a Joda pattern.
	i = build(t, "regex_extractor", map[string]string{
		"regex":                  `^(\d\d\d\d-\d\d-\d\d \d\d:\d\d)`,
		"serializers":            "s1",
		"serializers.s1.type":    "org.apache.flume.interceptor.RegexExtractorInterceptorMillisSerializer",
		"serializers.s1.name":    "timestamp",
		"serializers.s1.pattern": "yyyy-MM-dd HH:mm",
	})
	out = i.Intercept([]flow.Event{ev("2012-10-17 14:34 some log")})
	want := time.Date(2012, 10, 17, 14, 34, 0, 0, time.Local).UnixMilli()
	assert.Equal(t, strconv.FormatInt(want, 10), out[0].Headers["timestamp"])
}

func TestJavaDateLayout(t *testing.T) {
	for in, want := range map[string]string{
		"yyyy-MM-dd HH:mm":          "2006-01-02 15:04",
		"dd/MMM/yyyy:HH:mm:ss Z":    "02/Jan/2006:15:04:05 -0700",
		"yyyy-MM-dd'T'HH:mm:ss.SSS": "2006-01-02T15:04:05.000",
		"EEE, d MMM yy hh:mm a":     "Mon, 2 Jan 06 03:04 PM",
		"''yy''":                    "'06'",
	} {
		got, err := javaDateLayout(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"yyyy-MM-dd G", "'open", "ssSSS"} {
		_, err := javaDateLayout(bad)
		assert.Error(t, err, bad)
	}
}

func TestBadPropertiesNameTheProperty(t *testing.T) {
	tests := []struct {
		typ   string
		props map[string]string
		want  string
	}{
		{"timestamp", map[string]string{"preserveExisting": "maybe"}, "i1.preserveExisting"},
		{"regex_filter", map[string]string{"regex": "(unclosed"}, "i1.regex"},
		{"regex_filter", map[string]string{"regex": "(?=lookahead)"}, "i1.regex"},
		{"search_replace", map[string]string{}, "i1.searchPattern"},
		{"search_replace", map[string]string{"searchPattern": "x", "charset": "UTF-16"}, "i1.charset"},
		{"remove_header", map[string]string{"matching": "["}, "i1.matching"},
		{"regex_extractor", map[string]string{"regex": "(x)"}, "i1.serializers"},
		{"regex_extractor", map[string]string{"regex": "(x)", "serializers": "s1"}, "i1.serializers.s1.name"},
		{"regex_extractor", map[string]string{"regex": "(x)", "serializers": "s1", "serializers.s1.name": "n", "serializers.s1.type": "com.example.Mine"}, "i1.serializers.s1.type"},
		{"regex_extractor", map[string]string{"regex": "(x)", "serializers": "s1", "serializers.s1.name": "n", "serializers.s1.type": "millis"}, "i1.serializers.s1.pattern"},
	}
	for _, tc := range tests {
		_, err := Builders()[tc.typ](flow.NewProps("a1.sources.r1.interceptors.i1", tc.props), flow.Deps{})
		require.Error(t, err, "%s %v", tc.typ, tc.props)
		assert.Regexp(t, regexp.QuoteMeta(tc.want), err.Error())
	}
}
