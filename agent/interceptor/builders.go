// Package interceptor holds Flume's interceptors: timestamp, host, static,
// remove_header, uuid, search_replace, regex_filter and regex_extractor,
// with Flume's property names and defaults.
package interceptor

import "github.com/sluice-io/sluice/agent/flow"

const flumeInterceptor = "org.apache.flume.interceptor."

// Builders returns every interceptor builder keyed by its type alias and
// by the Flume $Builder class it stands in for.
func Builders() map[string]flow.InterceptorBuilder {
	m := map[string]flow.InterceptorBuilder{}
	add := func(b flow.InterceptorBuilder, names ...string) {
		for _, n := range names {
			m[n] = b
		}
	}
	add(newTimestamp, "timestamp", flumeInterceptor+"TimestampInterceptor$Builder")
	add(newHost, "host", flumeInterceptor+"HostInterceptor$Builder")
	add(newStatic, "static", flumeInterceptor+"StaticInterceptor$Builder")
	add(newRemoveHeader, "remove_header", flumeInterceptor+"RemoveHeaderInterceptor$Builder")
	add(newUUID, "uuid", "org.apache.flume.sink.solr.morphline.UUIDInterceptor$Builder")
	add(newSearchReplace, "search_replace", flumeInterceptor+"SearchAndReplaceInterceptor$Builder")
	add(newRegexFilter, "regex_filter", flumeInterceptor+"RegexFilteringInterceptor$Builder")
	add(newRegexExtractor, "regex_extractor", flumeInterceptor+"RegexExtractorInterceptor$Builder")
	return m
}

// headerFunc is an interceptor that sets or edits headers of every event
// and keeps them all.
type headerFunc func(ev *flow.Event)

func (f headerFunc) Intercept(events []flow.Event) []flow.Event {
	for i := range events {
		f(&events[i])
	}
	return events
}

// setHeader sets k unless preserve is on and k is already there.
func setHeader(ev *flow.Event, k, v string, preserve bool) {
	if preserve {
		if _, ok := ev.Headers[k]; ok {
			return
		}
	}
	ev.SetHeader(k, v)
}
