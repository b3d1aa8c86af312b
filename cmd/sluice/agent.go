package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/agent"
	"github.com/sluice-io/sluice/agent/flow"
)

func newAgentCmd() *cobra.Command {
	var (
		conf, name, httpAddr, dataDir, logLevel string
		poll, drain                             time.Duration
	)
	cmd := &cobra.Command{
		Use:         "agent",
		Annotations: longRunning,
		Short:       "Run a Flume-style agent from a properties file (like flume-ng agent -n a1 -f FILE)",
		Long: `Run the agent NAME of the Flume properties file FILE. Sluice sinks write to
the cluster given by --server, or to their own servers (RPC) or
kafka.bootstrap.servers (the nodes' Kafka listeners, as Flume's KafkaSink).
SIGHUP or a change of the file (checked every --poll-interval) reloads the
configuration; SIGTERM drains in-flight transactions and stops.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			servers, _ := cmd.Flags().GetString("server")
			var seeds []string
			for _, s := range strings.Split(servers, ",") {
				if s = strings.TrimSpace(s); s != "" {
					seeds = append(seeds, s)
				}
			}
			tlsCfg, err := clientTLS(cmd)
			if err != nil {
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)

			h, err := agent.StartHost(cmd.Context(), agent.HostConfig{
				Path: conf, Name: name,
				Registry:     agent.DefaultRegistry(nil),
				Deps:         flow.Deps{Agent: name, Logger: logger, Servers: seeds, DataDir: dataDir, TLS: tlsCfg},
				Poll:         poll,
				DrainTimeout: drain,
			})
			if err != nil {
				return err
			}
			var srv *http.Server
			if httpAddr != "" {
				ln, err := net.Listen("tcp", httpAddr)
				if err != nil {
					h.Close(context.Background())
					return fmt.Errorf("--http-addr: %w", err)
				}
				reg := prometheus.NewRegistry()
				reg.MustRegister(&agent.Collector{Agent: name, Counters: h.Counters})
				mux := http.NewServeMux()
				mux.Handle("GET /v1/agents", agent.CountersHandler(h.Counters))
				mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
				srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
				go func() {
					if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
						logger.Error("http server stopped", "err", err)
					}
				}()
				logger.Info("agent monitoring", "http", ln.Addr().String())
			}
			for {
				select {
				case <-hup:
					logger.Info("SIGHUP: reloading", "conf", conf)
					h.Reload(context.Background())
					continue
				case <-cmd.Context().Done():
				}
				break
			}
			logger.Info("signal received, draining the agent")
			if srv != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				srv.Shutdown(ctx)
				cancel()
			}
			return h.Close(context.Background())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&conf, "conf", "f", "", "Flume properties file (required)")
	f.StringVarP(&name, "name", "n", "a1", "agent name: the key prefix of the block to run")
	f.StringVar(&httpAddr, "http-addr", "", "serve /v1/agents (Flume JSON counters) and /metrics here (empty disables)")
	f.StringVar(&dataDir, "data-dir", "", "default directory for file channels without checkpointDir/dataDirs (default ~/.sluice)")
	f.DurationVar(&poll, "poll-interval", 30*time.Second, "how often the file is checked for changes (negative disables)")
	f.DurationVar(&drain, "drain-timeout", 30*time.Second, "how long a stop or reload waits for in-flight batches")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.MarkFlagRequired("conf")
	return cmd
}
