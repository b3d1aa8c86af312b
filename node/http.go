package node

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// startHTTP serves /healthz, /v1/status, /metrics, the agents' counters
// and the status page.
func (n *Node) startHTTP() error {
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen http %s: %w", n.cfg.HTTPAddr, err)
	}
	n.httpLn = ln
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		leader, _ := n.metaLeader()
		status := "ok"
		if leader == "" {
			// Serving, but the cluster has no metadata leader yet.
			status = "no-metadata-leader"
		}
		json.NewEncoder(w).Encode(map[string]string{"status": status, "node": n.cfg.ID})
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(n.Status())
	})
	n.agentHTTP(mux)
	n.statusHTTP(mux)
	pprofHTTP(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.metrics.registry, promhttp.HandlerOpts{}))
	n.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	n.goLoop("http", func() {
		if err := n.http.Serve(ln); err != nil && err != http.ErrServerClosed {
			n.logger.Error("http server stopped", "err", err)
		}
	})
	return nil
}
