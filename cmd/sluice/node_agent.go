package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluice-io/sluice/node"
)

// waitForStop blocks until ctx ends; SIGHUP meanwhile reloads the
// node's colocated agent.
func waitForStop(ctx context.Context, n *node.Node) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			n.ReloadAgent(context.Background())
		}
	}
}
