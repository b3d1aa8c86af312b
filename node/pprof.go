package node

import (
	"net/http"
	"net/http/pprof"
)

// pprofHTTP registers Go's profiling endpoints under /debug/pprof/ (CPU
// profile, heap, goroutines, mutex and block profiles, execution trace), so
// a running node can be profiled with `go tool pprof
// http://HOST:HTTPPORT/debug/pprof/profile?seconds=30`. They are registered
// on the node's own mux, never on http.DefaultServeMux.
func pprofHTTP(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
