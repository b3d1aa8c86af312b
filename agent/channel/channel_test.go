package channel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/agent/flow"
)

func ev(s string) flow.Event {
	return flow.Event{Headers: map[string]string{"n": s}, Body: []byte(s)}
}

func put(t *testing.T, c flow.Channel, bodies ...string) error {
	t.Helper()
	tx, err := c.Begin()
	require.NoError(t, err)
	for _, b := range bodies {
		if err := tx.Put(ev(b)); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		tx.Rollback()
		return err
	}
	return nil
}

func takeN(t *testing.T, c flow.Channel, n int, commit bool) []string {
	t.Helper()
	tx, err := c.Begin()
	require.NoError(t, err)
	var out []string
	for range n {
		e, ok, err := tx.Take()
		require.NoError(t, err)
		if !ok {
			break
		}
		require.Equal(t, string(e.Body), e.Headers["n"])
		out = append(out, string(e.Body))
	}
	if commit {
		require.NoError(t, tx.Commit())
	} else {
		require.NoError(t, tx.Rollback())
	}
	return out
}

func memory(t *testing.T, props map[string]string) flow.Channel {
	t.Helper()
	c, err := NewMemory("c1", flow.NewProps("a1.channels.c1", props), flow.Deps{})
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	return c
}

func TestMemoryTransactions(t *testing.T) {
	c := memory(t, map[string]string{"capacity": "5", "transactionCapacity": "3", "keep-alive": "0"})
	// Uncommitted puts are invisible; rolled-back puts vanish.
	tx, _ := c.Begin()
	require.NoError(t, tx.Put(ev("x")))
	require.Empty(t, takeN(t, c, 1, true))
	require.NoError(t, tx.Rollback())
	require.Empty(t, takeN(t, c, 1, true))

	require.NoError(t, put(t, c, "a", "b", "c"))
	// The put list is bounded by transactionCapacity.
	err := put(t, c, "1", "2", "3", "4")
	require.ErrorIs(t, err, flow.ErrTxFull)
	// Capacity is enforced at commit: 3 + 3 > 5.
	require.ErrorIs(t, put(t, c, "d", "e", "f"), flow.ErrChannelFull)
	require.NoError(t, put(t, c, "d", "e"))
	// Rolled-back takes return to the head, in order.
	require.Equal(t, []string{"a", "b"}, takeN(t, c, 2, false))
	require.Equal(t, []string{"a", "b", "c"}, takeN(t, c, 3, true))
	require.Equal(t, []string{"d", "e"}, takeN(t, c, 3, true))
	cnt := c.Counters()
	require.Equal(t, int64(5), cnt.Get(flow.EventPutSuccessCount))
	require.Equal(t, int64(5), cnt.Get(flow.EventTakeSuccessCount))
	require.Equal(t, int64(0), cnt.Get(flow.ChannelSize))
	require.Equal(t, "0", cnt.Snapshot()[flow.ChannelFillPercentage])
}

func TestMemoryKeepAliveWaitsForSpace(t *testing.T) {
	c := memory(t, map[string]string{"capacity": "2", "transactionCapacity": "2", "keep-alive": "10"})
	require.NoError(t, put(t, c, "a", "b"))
	done := make(chan error, 1)
	go func() { done <- put(t, c, "c") }()
	// The put waits for space, which a committed take frees.
	require.Equal(t, []string{"a"}, takeN(t, c, 1, true))
	require.NoError(t, <-done)
	require.Equal(t, []string{"b", "c"}, takeN(t, c, 2, true))
}

func TestMemoryByteCapacity(t *testing.T) {
	c := memory(t, map[string]string{"byteCapacity": "10", "byteCapacityBufferPercentage": "0", "keep-alive": "0"})
	require.NoError(t, put(t, c, "12345", "6789"))
	require.ErrorIs(t, put(t, c, "ab"), flow.ErrChannelFull)
	require.NoError(t, put(t, c, "a"))
}

func TestMemoryRejectsBadProps(t *testing.T) {
	_, err := NewMemory("c1", flow.NewProps("a1.channels.c1", map[string]string{"capacity": "ten"}), flow.Deps{})
	require.ErrorContains(t, err, "a1.channels.c1.capacity")
	_, err = NewMemory("c1", flow.NewProps("a1.channels.c1", map[string]string{"capacity": "10", "transactionCapacity": "20"}), flow.Deps{})
	require.ErrorContains(t, err, "a1.channels.c1.transactionCapacity")
}

func fileProps(dir string, extra ...string) map[string]string {
	m := map[string]string{
		"checkpointDir":        filepath.Join(dir, "ckpt"),
		"dataDirs":             filepath.Join(dir, "data"),
		"minimumRequiredSpace": "0",
		"keep-alive":           "0",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

func openFile(t *testing.T, props map[string]string) *File {
	t.Helper()
	c, err := NewFile("c1", flow.NewProps("a1.channels.c1", props), flow.Deps{Agent: "a1"})
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	return c.(*File)
}

// crash abandons the channel without a checkpoint, as kill -9 would.
func crash(fc *File) {
	close(fc.stop)
	fc.wg.Wait()
	fc.f.Close()
}

func TestFileChannelReplay(t *testing.T) {
	dir := t.TempDir()
	props := fileProps(dir, "capacity", "100", "transactionCapacity", "10")
	c := openFile(t, props)
	for i := range 5 {
		require.NoError(t, put(t, c, fmt.Sprint(i*2), fmt.Sprint(i*2+1)))
	}
	require.Equal(t, []string{"0", "1", "2"}, takeN(t, c, 3, true))
	// An in-flight take and an uncommitted put at the crash.
	tx, _ := c.Begin()
	_, _, err := tx.Take()
	require.NoError(t, err)
	require.NoError(t, tx.Put(ev("lost")))
	crash(c)

	c = openFile(t, props)
	require.Equal(t, []string{"3", "4", "5", "6", "7", "8", "9"}, takeN(t, c, 10, false))
	// After a clean stop (checkpoint, old logs deleted) the same content.
	require.NoError(t, c.Stop(context.Background()))
	c = openFile(t, props)
	require.Equal(t, []string{"3", "4"}, takeN(t, c, 2, true))
	require.NoError(t, put(t, c, "10"))
	crash(c)
	c = openFile(t, props)
	require.Equal(t, []string{"5", "6", "7", "8", "9", "10"}, takeN(t, c, 10, true))
	require.NoError(t, c.Stop(context.Background()))
}

func TestFileChannelCheckpointKeepsInFlightTakes(t *testing.T) {
	dir := t.TempDir()
	props := fileProps(dir)
	c := openFile(t, props)
	require.NoError(t, put(t, c, "a", "b"))
	tx, _ := c.Begin()
	_, _, err := tx.Take()
	require.NoError(t, err)
	require.NoError(t, c.checkpoint()) // a taken, not committed: still in the checkpoint
	crash(c)
	c = openFile(t, props)
	require.Equal(t, []string{"a", "b"}, takeN(t, c, 5, true))
	require.NoError(t, c.Stop(context.Background()))
}

func lastLog(t *testing.T, dir string) string {
	seqs, err := listLogs(filepath.Join(dir, "data"))
	require.NoError(t, err)
	require.NotEmpty(t, seqs)
	return filepath.Join(dir, "data", logName(seqs[len(seqs)-1]))
}

func TestFileChannelTornTail(t *testing.T) {
	dir := t.TempDir()
	props := fileProps(dir)
	c := openFile(t, props)
	require.NoError(t, put(t, c, "a"))
	require.NoError(t, put(t, c, "b", "c"))
	crash(c)
	// Cut the last record short: the commit that was being written.
	path := lastLog(t, dir)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(path, st.Size()-3))
	c = openFile(t, props)
	require.Equal(t, []string{"a"}, takeN(t, c, 5, false))
	require.NoError(t, put(t, c, "d"))
	crash(c)
	c = openFile(t, props)
	require.Equal(t, []string{"a", "d"}, takeN(t, c, 5, true))
	require.NoError(t, c.Stop(context.Background()))
}

func TestFileChannelCorruptionRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	props := fileProps(dir)
	c := openFile(t, props)
	require.NoError(t, put(t, c, "aaaa"))
	require.NoError(t, put(t, c, "bbbb"))
	crash(c)
	path := lastLog(t, dir)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[recordHeader+3] ^= 0xff // inside the first record, a whole record follows
	require.NoError(t, os.WriteFile(path, b, 0o644))
	fc, err := NewFile("c1", flow.NewProps("a1.channels.c1", props), flow.Deps{})
	require.NoError(t, err)
	err = fc.Start(context.Background())
	require.ErrorIs(t, err, errCorrupt)
	require.ErrorContains(t, err, "refuses to start")
}

func TestFileChannelCapacityAtPutAndRotation(t *testing.T) {
	dir := t.TempDir()
	c := openFile(t, fileProps(dir, "capacity", "3", "transactionCapacity", "3", "maxFileSize", "65536"))
	tx, _ := c.Begin()
	require.NoError(t, tx.Put(ev("a")))
	require.NoError(t, tx.Put(ev("b")))
	require.NoError(t, tx.Put(ev("c")))
	tx2, _ := c.Begin()
	require.ErrorIs(t, tx2.Put(ev("d")), flow.ErrChannelFull) // capacity counts uncommitted puts
	require.NoError(t, tx2.Rollback())
	require.NoError(t, tx.Commit())
	require.Equal(t, []string{"a", "b", "c"}, takeN(t, c, 3, true))
	big := make([]byte, 30000)
	for range 4 {
		tx, _ := c.Begin()
		require.NoError(t, tx.Put(flow.Event{Body: big}))
		require.NoError(t, tx.Commit())
		tx, _ = c.Begin()
		_, _, _ = tx.Take()
		require.NoError(t, tx.Commit())
	}
	seqs, err := listLogs(filepath.Join(dir, "data"))
	require.NoError(t, err)
	require.Greater(t, len(seqs), 1, "maxFileSize rolls the log")
	require.NoError(t, c.Stop(context.Background()))
}

func TestFileChannelMinimumRequiredSpace(t *testing.T) {
	dir := t.TempDir()
	c := openFile(t, fileProps(dir, "minimumRequiredSpace", "9223372036854775807"))
	err := put(t, c, "a")
	require.ErrorIs(t, err, flow.ErrChannelFull)
	require.ErrorContains(t, err, "usable space exhausted")
	require.NoError(t, c.Stop(context.Background()))
}

func TestDecodeRecordRoundTrip(t *testing.T) {
	puts := []item{{id: 7, ev: ev("x")}, {id: 8, ev: flow.Event{Body: []byte{}}}}
	b := encodeRecord(nil, puts, []item{{id: 3}})
	rec, n, err := decodeRecord(b)
	require.NoError(t, err)
	require.Equal(t, len(b), n)
	require.Equal(t, []uint64{3}, rec.takes)
	require.Equal(t, uint64(7), rec.puts[0].id)
	require.Equal(t, "x", rec.puts[0].ev.Headers["n"])
	_, _, err = decodeRecord(b[:len(b)-1])
	require.True(t, errors.Is(err, errShort))
}

// FuzzDecodeRecord: any bytes decode to a record or an error, never a
// panic, and a record that decodes re-encodes to the same event content.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(nil, []item{{id: 1, ev: ev("hello")}}, nil))
	f.Add(encodeRecord(nil, nil, []item{{id: 1}, {id: 2}}))
	f.Add([]byte{0, 0, 0, 5, 1, 2, 3, 4, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, n, err := decodeRecord(b)
		if err != nil {
			return
		}
		if n < recordHeader || n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		takes := make([]item, len(rec.takes))
		for i, id := range rec.takes {
			takes[i] = item{id: id}
		}
		again, _, err := decodeRecord(encodeRecord(nil, rec.puts, takes))
		if err != nil || len(again.puts) != len(rec.puts) || len(again.takes) != len(rec.takes) {
			t.Fatalf("re-encoding failed: %v", err)
		}
	})
}

func TestFileChannelStopDrainsOpenTransactions(t *testing.T) {
	c := openFile(t, fileProps(t.TempDir()))
	tx, _ := c.Begin()
	require.NoError(t, tx.Put(ev("a")))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.Error(t, c.Stop(ctx), "an open transaction makes a bounded stop report it")
}

// Concurrent commits share fsyncs (group commit); checkpoints run in
// between; after a crash every committed event is there exactly once.
func TestFileChannelGroupCommitAndCheckpointUnderLoad(t *testing.T) {
	dir := t.TempDir()
	props := fileProps(dir, "capacity", "100000", "transactionCapacity", "100")
	c := openFile(t, props)
	const writers, perWriter = 8, 50
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range perWriter {
				if err := put(t, c, fmt.Sprintf("%d-%d", w, i)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	stopCk := make(chan struct{})
	ckDone := make(chan struct{})
	go func() {
		defer close(ckDone)
		for {
			select {
			case <-stopCk:
				return
			default:
				if err := c.checkpoint(); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	for range writers {
		require.NoError(t, <-errs)
	}
	close(stopCk)
	<-ckDone
	require.Len(t, takeN(t, c, 10, true), 10)
	crash(c)
	c = openFile(t, props)
	var got []string
	for {
		batch := takeN(t, c, 100, true)
		if len(batch) == 0 {
			break
		}
		got = append(got, batch...)
	}
	require.Len(t, got, writers*perWriter-10)
	seen := map[string]bool{}
	for _, g := range got {
		require.False(t, seen[g], "duplicate %s", g)
		seen[g] = true
	}
	require.NoError(t, c.Stop(context.Background()))
}
