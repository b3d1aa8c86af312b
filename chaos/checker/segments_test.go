package checker

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluice-io/sluice/chaos/history"
)

// window builds one window of a windowed history: values lo..hi-1 sent in
// order (each at its offset), a segment read of [lo, hi), and whatever
// tweak adds.
func window(lo, hi int64, t0 int64, tweak func(b *builder)) []history.Op {
	b := &builder{}
	var vals []string
	for o := lo; o < hi; o++ {
		v := fmt.Sprint(o)
		vals = append(vals, v)
		b.send(1, v, history.OK, o, t0+10*o, t0+10*o+5)
	}
	if tweak != nil {
		tweak(b)
	}
	f := b.final("", t0+10*hi+100, t0+10*hi+110, recs(lo, vals...))
	f.Offset, f.HighWatermark = lo, hi
	return b.ops
}

func TestWindowedCheck(t *testing.T) {
	segs := NewSegments()
	w1 := window(0, 10, 0, nil)
	res := Check(w1, Config{Segments: segs})
	require.Equal(t, Pass, res.Verdict, "%+v", res.Anomalies)
	segs.Advance(w1)
	require.Equal(t, int64(10), segs.Start("t", 0))

	// The next window knows nothing of values 0..9 but a lagging consumer
	// reads them again: checked against the established log, and the
	// model starts at length 10.
	w2 := window(10, 20, 1000, func(b *builder) {
		b.poll(7, 5, 1200, 1201, recs(5, "5", "6", "7", "8", "9", "10"))
	})
	res = Check(w2, Config{Segments: segs})
	require.Equal(t, Pass, res.Verdict, "%+v %v", res.Anomalies, res.Inconclusive)
	require.Equal(t, "ok", res.Linearizability[0].Result)

	// A read below the window that disagrees with the established log.
	bad := window(10, 20, 1000, func(b *builder) {
		b.poll(7, 8, 1200, 1201, recs(8, "8", "99"))
	})
	res = Check(bad, Config{Segments: segs})
	require.Equal(t, 1, res.Counts[InconsistentOffsets], "%+v", res.Anomalies)

	// A window's acknowledged record missing from its segment read.
	lost := window(10, 20, 1000, nil)
	for i := range lost {
		if lost[i].F == history.FFinalRead {
			lost[i].Records = append(lost[i].Records[:3:3], lost[i].Records[4:]...)
			for j := 3; j < len(lost[i].Records); j++ {
				lost[i].Records[j].Offset--
			}
		}
	}
	res = Check(lost, Config{Segments: segs})
	require.Equal(t, Fail, res.Verdict)
	require.Positive(t, res.Counts[LostWrite]+res.Counts[InconsistentOffsets], "%v", res.Counts)

	segs.Advance(w2)
	require.Equal(t, int64(20), segs.Start("t", 0))
	// Without the segments the second window alone is not linearizable:
	// its first append claims offset 10 of an empty log.
	res = Check(w2, Config{})
	require.Equal(t, Fail, res.Verdict)
}
