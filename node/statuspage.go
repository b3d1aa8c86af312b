package node

import (
	_ "embed"
	"encoding/json"
	"net/http"
)

// statusPage is the live status page: one self-contained file (styles and
// script inline, no network fetch) polling /v1/cluster and /v1/agents.
//
//go:embed statuspage.html
var statusPage []byte

// statusHTTP serves the page at / and its JSON at /v1/cluster.
func (n *Node) statusHTTP(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(statusPage)
	})
	mux.HandleFunc("GET /v1/cluster", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(n.ClusterView(r.Context()))
	})
}
