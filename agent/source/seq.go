package source

import (
	"context"
	"math"
	"strconv"

	"github.com/sluice-io/sluice/agent/flow"
)

// seq is Flume's SequenceGeneratorSource: bodies "0", "1", ... in
// batches, up to totalEvents, for tests.
type seq struct {
	base
	batch int
	total int64
	next  int64
}

func newSeq(name string, p *flow.Props, proc flow.Processor, d flow.Deps) (flow.Source, error) {
	s := &seq{base: newBase(name, proc, d, "seq")}
	batch := p.Int("batchSize", 1)
	s.total = p.Int("totalEvents", math.MaxInt64)
	if err := p.Err(); err != nil {
		return nil, err
	}
	if err := positive(p, "batchSize", batch); err != nil {
		return nil, err
	}
	s.batch = int(batch)
	return s, nil
}

func (s *seq) Start(context.Context) error {
	s.begin()
	s.spawn(s.loop)
	return nil
}

func (s *seq) Stop(ctx context.Context) error { return s.finish(ctx, nil) }

func (s *seq) loop() {
	for s.next < s.total && !s.stopping() {
		n := int(min(int64(s.batch), s.total-s.next))
		evs := make([]flow.Event, n)
		for i := range evs {
			evs[i].Body = []byte(strconv.FormatInt(s.next+int64(i), 10))
		}
		if err := s.deliver(evs); err != nil {
			if s.run.Err() != nil {
				return
			}
			// Not a full channel: retry the same numbers after a pause,
			// as Flume's PollableSourceRunner backs off.
			s.log.Warn("batch not accepted, retrying", "err", err)
			if !s.sleep(backoffOnError) {
				return
			}
			continue
		}
		s.next += int64(n)
	}
}
