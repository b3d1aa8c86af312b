package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/transport"
)

// newClient builds a client from the --server flag.
func newClient(cmd *cobra.Command) (*client.Client, error) {
	servers, _ := cmd.Flags().GetString("server")
	var seeds []string
	for _, s := range strings.Split(servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			seeds = append(seeds, s)
		}
	}
	tlsCfg, err := clientTLS(cmd)
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{
		Servers: seeds,
		TLS:     tlsCfg,
		Logger:  slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
}

// addClientTLSFlags registers the TLS flags every client command shares
// (`sluice node` has its own, with the same names, for its identity).
func addClientTLSFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.String("tls-ca", os.Getenv("SLUICE_TLS_CA"), "connect over TLS, trusting this CA certificate (PEM) (env SLUICE_TLS_CA)")
	f.String("tls-cert", os.Getenv("SLUICE_TLS_CERT"), "client certificate (PEM) for nodes that require one (env SLUICE_TLS_CERT)")
	f.String("tls-key", os.Getenv("SLUICE_TLS_KEY"), "client private key (PEM) (env SLUICE_TLS_KEY)")
}

// clientTLS builds the client's TLS configuration from the flags; nil
// when --tls-ca is not set.
func clientTLS(cmd *cobra.Command) (*tls.Config, error) {
	ca, _ := cmd.Flags().GetString("tls-ca")
	cert, _ := cmd.Flags().GetString("tls-cert")
	key, _ := cmd.Flags().GetString("tls-key")
	if ca == "" {
		if cert != "" || key != "" {
			return nil, errors.New("--tls-cert and --tls-key need --tls-ca")
		}
		return nil, nil
	}
	return transport.ClientTLS(transport.TLSFiles{CA: ca, Cert: cert, Key: key})
}

// withClient adapts a command body that needs a client: it builds one
// from --server and closes it afterwards.
func withClient(run func(cmd *cobra.Command, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		return run(cmd, c, args)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// waitForLeaders polls metadata until every partition of topic has a
// leader, so that a produce right after `topic create` goes through.
func waitForLeaders(ctx context.Context, c *client.Client, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		md, err := c.Metadata(ctx, topic)
		if err == nil && len(md.Topics) == 1 {
			ready := true
			for _, p := range md.Topics[0].Partitions {
				if p.Leader == "" {
					ready = false
				}
			}
			if ready {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s: partitions have no leader yet: %w", topic, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
