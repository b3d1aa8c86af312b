package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLatencyHistQuantiles(t *testing.T) {
	var h latencyHist
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	require.InDelta(t, 500, h.quantile(0.5), 500*0.01)
	require.InDelta(t, 990, h.quantile(0.99), 990*0.01)
	require.Equal(t, 1000.0, h.maxMs())
	require.Equal(t, 1000.0, h.quantile(1))
	require.InDelta(t, 500.5, h.meanMs(), 0.01)
	var empty latencyHist
	require.Zero(t, empty.quantile(0.99))
}

func TestHistBucketsCoverValues(t *testing.T) {
	for _, us := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 123456, 1 << 40} {
		i := histIndex(us)
		require.GreaterOrEqual(t, histUpper(i), us, "value %d bucket %d", us, i)
		if i > 0 {
			require.Less(t, histUpper(i-1), us, "value %d bucket %d", us, i)
		}
	}
}
