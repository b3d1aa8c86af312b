package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// latencyHist is a lock-free log-linear histogram of durations in
// microseconds: 128 buckets per power of two (at most 0.8% error), so
// millions of samples cost a fixed 60 KiB and callbacks on many goroutines
// never contend on a lock. The maximum is kept exactly.
type latencyHist struct {
	counts [histBuckets]atomic.Int64
	n      atomic.Int64
	max    atomic.Int64 // µs
	sum    atomic.Int64 // µs
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits + 1) * histSub
)

func histIndex(us uint64) int {
	if us < histSub {
		return int(us)
	}
	shift := bits.Len64(us) - histSubBits - 1
	return (shift+1)*histSub + int(us>>shift) - histSub
}

// histUpper is the largest value that falls into bucket i.
func histUpper(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	mant := uint64(i%histSub + histSub)
	return (mant+1)<<shift - 1
}

func (h *latencyHist) record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.counts[histIndex(uint64(us))].Add(1)
	h.n.Add(1)
	h.sum.Add(us)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

// quantile returns the q-quantile (0..1) in milliseconds: the upper bound
// of the bucket holding it, never above the exact maximum.
func (h *latencyHist) quantile(q float64) float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := int64(q*float64(n-1)) + 1
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(float64(histUpper(i)), float64(h.max.Load())) / 1000
		}
	}
	return h.maxMs()
}

func (h *latencyHist) maxMs() float64 { return float64(h.max.Load()) / 1000 }

func (h *latencyHist) meanMs() float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return float64(h.sum.Load()) / float64(n) / 1000
}
