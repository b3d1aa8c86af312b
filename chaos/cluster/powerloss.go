package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/sluice-io/sluice/chaos/lazyfs"
)

// mountLazy mounts a lazy filesystem over every node's data directory
// (process mode): the backing folder data/nN.backing, durable copies in
// data/nN.durable.
func (c *Cluster) mountLazy() error {
	c.lazy = map[string]*lazyfs.FS{}
	for _, n := range c.nodes {
		f, err := lazyfs.New(n.DataDir+".backing", n.DataDir+".durable", n.DataDir, c.cfg.LazyFSOptions)
		if err == nil {
			err = f.Mount()
		}
		if err != nil {
			return errors.Join(fmt.Errorf("cluster: lazyfs for %s: %w", n.ID, err), c.unmountLazy())
		}
		c.lazy[n.ID] = f
	}
	return nil
}

func (c *Cluster) unmountLazy() error {
	var errs []error
	for id, f := range c.lazy {
		if err := f.Unmount(); err != nil {
			errs = append(errs, err)
		}
		delete(c.lazy, id)
	}
	return errors.Join(errs...)
}

// CanPowerLoss reports whether the nodes' data directories are on lazy
// filesystems, so that PowerLoss can discard unsynced data.
func (c *Cluster) CanPowerLoss() bool { return len(c.lazy) > 0 }

// PowerLoss cuts a node's power: kill -9, then everything it wrote but did
// not fsync is discarded. The node stays down until Start.
func (c *Cluster) PowerLoss(ctx context.Context, id string) error {
	f := c.lazy[id]
	if f == nil {
		return fmt.Errorf("cluster: power loss of %s: no lazy filesystem (run with Config.LazyFS)", id)
	}
	if err := c.Kill(ctx, id); err != nil {
		return err
	}
	if err := f.Crash(); err != nil {
		return fmt.Errorf("cluster: power loss of %s: %w", id, err)
	}
	c.logger.Info("power cut: unsynced data discarded", "node", id, "data", filepath.Base(c.byID[id].DataDir))
	return nil
}
