package interceptor

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/sluice-io/sluice/agent/flow"
)

// newTimestamp: Flume's TimestampInterceptor, the event's arrival time in
// ms since the epoch.
func newTimestamp(p *flow.Props, _ flow.Deps) (flow.Interceptor, error) {
	name := p.String("headerName", "timestamp")
	preserve := p.Bool("preserveExisting", false)
	if err := p.Err(); err != nil {
		return nil, err
	}
	return headerFunc(func(ev *flow.Event) {
		setHeader(ev, name, strconv.FormatInt(time.Now().UnixMilli(), 10), preserve)
	}), nil
}

// newHost: Flume's HostInterceptor. useIP (the default) gives the host's
// first non-loopback address, as InetAddress.getLocalHost does on a
// machine with a resolvable name; otherwise its host name.
func newHost(p *flow.Props, _ flow.Deps) (flow.Interceptor, error) {
	name := p.String("hostHeader", "host")
	useIP := p.Bool("useIP", true)
	preserve := p.Bool("preserveExisting", false)
	if err := p.Err(); err != nil {
		return nil, err
	}
	host, err := localHost(useIP)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Prefix, err)
	}
	return headerFunc(func(ev *flow.Event) { setHeader(ev, name, host, preserve) }), nil
}

func localHost(useIP bool) (string, error) {
	name, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("host name: %w", err)
	}
	if !useIP {
		return name, nil
	}
	if addrs, err := net.LookupHost(name); err == nil {
		for _, a := range addrs {
			if ip := net.ParseIP(a); ip != nil && ip.To4() != nil {
				return a, nil
			}
		}
		if len(addrs) > 0 {
			return addrs[0], nil
		}
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("interface addresses: %w", err)
	}
	for _, a := range ifaddrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String(), nil
		}
	}
	return "127.0.0.1", nil
}

// newStatic: Flume's StaticInterceptor, one constant header.
func newStatic(p *flow.Props, _ flow.Deps) (flow.Interceptor, error) {
	key := p.String("key", "key")
	value := p.String("value", "value")
	preserve := p.Bool("preserveExisting", true)
	if err := p.Err(); err != nil {
		return nil, err
	}
	return headerFunc(func(ev *flow.Event) { setHeader(ev, key, value, preserve) }), nil
}

// newRemoveHeader: Flume's RemoveHeaderInterceptor. A header goes when its
// name is withName, is in fromList, or matches the matching regex.
func newRemoveHeader(p *flow.Props, _ flow.Deps) (flow.Interceptor, error) {
	withName := p.String("withName", "")
	fromList := p.String("fromList", "")
	sep, err := compile(p, "fromListSeparator", p.String("fromListSeparator", `\s*,\s*`))
	if err != nil {
		return nil, err
	}
	var matching *regexp.Regexp
	if p.Has("matching") {
		// Java's Matcher.matches: the whole name must match.
		expr := p.String("matching", "")
		if _, err := compile(p, "matching", expr); err != nil {
			return nil, err
		}
		matching = regexp.MustCompile(`^(?:` + expr + `)$`)
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	names := map[string]bool{}
	if withName != "" {
		names[withName] = true
	}
	if fromList != "" {
		for _, n := range sep.Split(fromList, -1) {
			if n != "" {
				names[n] = true
			}
		}
	}
	return headerFunc(func(ev *flow.Event) {
		for k := range ev.Headers {
			if names[k] || (matching != nil && matching.MatchString(k)) {
				delete(ev.Headers, k)
			}
		}
	}), nil
}

// newUUID: Flume's UUIDInterceptor, a random (version 4) UUID per event.
func newUUID(p *flow.Props, _ flow.Deps) (flow.Interceptor, error) {
	name := p.String("headerName", "id")
	preserve := p.Bool("preserveExisting", true)
	prefix := p.String("prefix", "")
	if err := p.Err(); err != nil {
		return nil, err
	}
	return headerFunc(func(ev *flow.Event) {
		if preserve {
			if _, ok := ev.Headers[name]; ok {
				return
			}
		}
		ev.SetHeader(name, prefix+uuid4())
	}), nil
}

func uuid4() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// compile compiles a Java-style regex property with Go's RE2 syntax (the
// common subset is the same; look-arounds and back-references are not
// supported and say so).
func compile(p *flow.Props, key, expr string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("%s.%s: %q is not a valid regular expression: %w", p.Prefix, key, expr, err)
	}
	return re, nil
}
