package fsm

import (
	"time"

	"github.com/sluice-io/sluice/transport"
)

// Bounds on consumer-group offset commits, so no client can grow a
// partition's snapshot header without limit.
const (
	// MaxGroupNameBytes bounds a group id (Kafka's practical limit).
	MaxGroupNameBytes = 255
	// MaxCommitMetadataBytes bounds commit metadata (Kafka's
	// offset.metadata.max.bytes default).
	MaxCommitMetadataBytes = 4096
	// DefaultMaxGroups bounds the groups one partition remembers.
	DefaultMaxGroups = 10000
	// DefaultOffsetsRetention is how long a group's offsets live after its
	// last commit (Kafka's offsets.retention.minutes default: 7 days).
	DefaultOffsetsRetention = 7 * 24 * time.Hour
)

// ValidateOffsetCommit checks a commit's group id and metadata against the
// limits the state machine enforces, so a node can refuse it before it
// enters the Raft log.
func ValidateOffsetCommit(group, metadata string) error {
	switch {
	case group == "":
		return transport.Errorf(transport.ErrInvalidRequest, "offset commit without a group")
	case len(group) > MaxGroupNameBytes:
		return transport.Errorf(transport.ErrInvalidRequest, "group id of %d bytes exceeds the limit of %d", len(group), MaxGroupNameBytes)
	case len(metadata) > MaxCommitMetadataBytes:
		return transport.Errorf(transport.ErrRecordTooLarge, "commit metadata of %d bytes exceeds the limit of %d", len(metadata), MaxCommitMetadataBytes)
	}
	return nil
}

// advanceClock moves the partition's clock to a command's timestamp (unix
// ms) and expires old group offsets when due. The clock only ever comes
// from Raft commands, never from the local time at apply, so every
// replica expires the same groups at the same entry. Call with p.mu held.
func (p *Partition) advanceClockLocked(ms int64) {
	if ms <= p.clock {
		return
	}
	p.clock = ms
	ret := p.cfg.OffsetsRetention
	if ret <= 0 || p.clock < p.nextExpiry {
		return
	}
	p.expireGroupsLocked()
	// Scan again after 1% of the retention (at least a minute): expiry is
	// that much late at most, and the scan cost stays negligible.
	p.nextExpiry = p.clock + max(ret.Milliseconds()/100, time.Minute.Milliseconds())
}

// expireGroupsLocked drops groups whose last commit is older than the
// retention, as of the partition clock.
func (p *Partition) expireGroupsLocked() {
	if p.cfg.OffsetsRetention <= 0 {
		return
	}
	cutoff := p.clock - p.cfg.OffsetsRetention.Milliseconds()
	for g, o := range p.groups {
		if o.Time == 0 {
			// Committed before commits carried a time: its clock starts now.
			o.Time = p.clock
			p.groups[g] = o
			continue
		}
		if o.Time < cutoff {
			delete(p.groups, g)
			p.logger.Debug("expired consumer group offset", "group", g, "last_commit_ms", o.Time)
		}
	}
}

// commitOffset applies an offset commit.
func (p *Partition) commitOffset(c offsetCommitCmd) error {
	if err := ValidateOffsetCommit(c.Group, c.Metadata); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advanceClockLocked(c.Time)
	at := c.Time
	if at == 0 {
		at = p.clock // a command from before commits carried a time
	}
	if _, ok := p.groups[c.Group]; !ok && len(p.groups) >= p.cfg.MaxGroups {
		p.expireGroupsLocked()
		if len(p.groups) >= p.cfg.MaxGroups {
			return transport.Errorf(transport.ErrInvalidRequest, "partition already holds offsets of %d consumer groups, the limit; group %q not added", len(p.groups), c.Group)
		}
	}
	p.groups[c.Group] = groupOffset{Offset: c.Offset, Metadata: c.Metadata, Time: at}
	return nil
}
