package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-io/sluice/client"
	"github.com/sluice-io/sluice/fsm"
	"github.com/sluice-io/sluice/transport"
)

// smallFS mounts a tmpfs of the given size for the test, or skips.
func smallFS(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs for the full-disk test")
	}
	dir := filepath.Join(t.TempDir(), "fs")
	require.NoError(t, os.Mkdir(dir, 0o755))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s); skipping the full-disk test", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func freeBytes(t *testing.T, dir string) int64 {
	var st syscall.Statfs_t
	require.NoError(t, syscall.Statfs(dir, &st))
	return int64(st.Bavail) * st.Bsize
}

// fill writes a ballast file until free space is about left bytes.
func fill(t *testing.T, dir string, left int64) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("ballast-%d", time.Now().UnixNano()))
	size := freeBytes(t, dir) - left
	require.Greater(t, size, int64(0))
	f, err := os.Create(path)
	require.NoError(t, err)
	buf := make([]byte, 1<<20)
	for size > 0 {
		n := min(int64(len(buf)), size)
		_, err := f.Write(buf[:n])
		if err != nil {
			break // full already
		}
		size -= n
	}
	require.NoError(t, f.Close())
	return path
}

// TestFreeSpaceFloor fills the data dirs' filesystem below the floor:
// produces and offset commits are refused with a retriable error naming
// the cause, reads go on, and writing resumes by itself once space is
// back.
func TestFreeSpaceFloor(t *testing.T) {
	skipShort(t)
	fs := smallFS(t, "96m")
	const floor = 24 << 20
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.DataDir = filepath.Join(fs, cfg.ID)
		cfg.MinFreeBytes = floor
	})
	cl := c.client()
	c.createTopic(cl, "disk", 1, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := cl.ProduceBatch(ctx, "disk", 0, []client.Record{{Value: []byte("before")}})
	require.NoError(t, err)

	ballast := fill(t, fs, floor/2)
	leader := c.nodes[c.leaderIndex("disk", 0)]
	var resp transport.ProduceResponse
	err = leader.pool.Call(ctx, leader.Addr(), transport.MethodProduce, transport.ProduceRequest{Topic: "disk", Partition: 0, Batch: testBatch(t, "refused")}, &resp)
	require.Error(t, err, "a produce below the free-space floor must be refused")
	assert.True(t, transport.CodeOf(err).Retriable(), "refusal must be retriable: %v", err)
	assert.Contains(t, err.Error(), "free")
	err = leader.pool.Call(ctx, leader.Addr(), transport.MethodOffsetCommit, transport.OffsetCommitRequest{Group: "g", Topic: "disk", Partition: 0, Offset: 1}, &transport.Empty{})
	require.Error(t, err, "an offset commit below the floor must be refused")
	assert.True(t, transport.CodeOf(err).Retriable(), "%v", err)

	// Reads go on.
	recs := readAll(t, cl, "", "disk", 0)
	require.Len(t, recs, 1)

	// A produce that waits (retrying) goes through once space is back.
	done := make(chan error, 1)
	go func() {
		_, err := cl.ProduceBatch(ctx, "disk", 0, []client.Record{{Value: []byte("after")}})
		done <- err
	}()
	require.NoError(t, os.Remove(ballast))
	require.NoError(t, <-done)
	require.Len(t, readAll(t, cl, "", "disk", 0), 2)
}

// testBatch is a valid batch of one record without a producer id.
func testBatch(t *testing.T, value string) []byte {
	t.Helper()
	return fsm.NewBatch([]kmsg.Record{{Value: []byte(value)}}, -1, -1, -1, time.Now())
}
