package history

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRecorderRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	r := NewRecorder(time.Now(), &buf)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				inv := r.Now()
				r.Add(Op{Process: p, F: FSend, Type: OK, Invoke: inv, Complete: r.Now(), Topic: "t", Value: "v", Offset: int64(j)})
			}
		}(i)
	}
	wg.Wait()
	require.NoError(t, r.Flush())
	ops, err := Read(&buf)
	require.NoError(t, err)
	require.Len(t, ops, 400)
	seen := map[int64]bool{}
	for _, op := range ops {
		require.False(t, seen[op.Index], "index %d twice", op.Index)
		seen[op.Index] = true
		require.LessOrEqual(t, op.Invoke, op.Complete)
	}
	require.Equal(t, r.Ops(), ops)
}

func TestReadTornTail(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, []Op{{Index: 0, F: FSend, Type: OK}, {Index: 1, F: FPoll, Type: Fail}}))
	torn := buf.String() + `{"index":2,"f":"se`
	ops, err := Read(strings.NewReader(torn))
	require.NoError(t, err)
	require.Len(t, ops, 2)

	_, err = Read(strings.NewReader(`{"index":0}` + "\n" + `nonsense` + "\n"))
	require.Error(t, err)
}

func TestSortByInvoke(t *testing.T) {
	ops := []Op{{Index: 0, Invoke: 5}, {Index: 1, Invoke: 1}, {Index: 2, Invoke: 5}}
	SortByInvoke(ops)
	require.Equal(t, []int64{1, 0, 2}, []int64{ops[0].Index, ops[1].Index, ops[2].Index})
}

func TestRecorderDrain(t *testing.T) {
	r := NewRecorder(time.Now(), nil)
	r.Add(Op{F: FSend})
	r.Add(Op{F: FPoll})
	got := r.Drain()
	require.Len(t, got, 2)
	require.Empty(t, r.Ops())
	op := r.Add(Op{F: FSend})
	require.Equal(t, int64(2), op.Index, "indexes go on across drains")
	require.Len(t, r.Drain(), 1)
}
