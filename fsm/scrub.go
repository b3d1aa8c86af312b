package fsm

import (
	"errors"
	"fmt"
	"time"
)

// scrub reads every sealed segment once, checking each frame's CRCs, so
// damage that open does not see (it trusts a sealed segment whose index is
// consistent) is found without waiting for a reader. A corrupt frame is a
// *corruptFrameError. It returns early when stop is closed.
func (l *Log) scrub(stop <-chan struct{}) error {
	ls, err := l.snapshot()
	if err != nil {
		return err
	}
	defer ls.release()
	for _, v := range ls.views[:len(ls.views)-1] { // the active one was scanned on open
		for i := 0; i < v.n; {
			select {
			case <-stop:
				return nil
			default:
			}
			chunk, err := v.chunkEntries(i, 4<<20)
			if err != nil {
				return err
			}
			if _, err := v.readFrames(chunk); err != nil {
				return err
			}
			i += len(chunk)
		}
	}
	return nil
}

// startScrub runs Log.scrub in the background until Close; damage stops
// the partition (ErrCorruptLog) so the node rebuilds it.
func (p *Partition) startScrub() {
	lg := p.log
	go func() {
		defer close(p.scrubDone)
		start := time.Now()
		if err := lg.scrub(p.stopScrub); err != nil {
			var corrupt *corruptFrameError
			// Only the log still in service: a restore may have replaced it.
			if errors.As(err, &corrupt) && p.currentLog() == lg {
				p.fail(fmt.Errorf("%w: scrub: %w", ErrCorruptLog, err))
				return
			}
			p.logger.Warn("scrub of sealed segments stopped", "err", err)
			return
		}
		p.logger.Debug("scrubbed sealed segments", "took", time.Since(start))
	}()
}
