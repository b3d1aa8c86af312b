package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/client"
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
	return client.New(client.Config{
		Servers: seeds,
		Logger:  slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
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
