package fsm

import "github.com/hashicorp/raft"

// AppendedBatch returns the record batch an append command carries (either
// encoding: with or without the leader's clock), or false when l is not an
// append command. It reads a stored Raft entry without applying it.
func AppendedBatch(l *raft.Log) ([]byte, bool) {
	if l.Type != raft.LogCommand || len(l.Data) == 0 {
		return nil, false
	}
	switch l.Data[0] {
	case cmdAppend:
		return l.Data[1:], true
	case cmdAppendAt:
		if len(l.Data) < 9 {
			return nil, false
		}
		return l.Data[9:], true
	}
	return nil, false
}
