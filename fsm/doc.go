// Package fsm holds Sluice's Raft state machines: the partition log
// (segments, index, retention, snapshots) and the cluster metadata.
//
// # Partition log on disk
//
// A partition replica's log directory holds segments named by the offset of
// their first record: 00000000000000000000.log with its index
// 00000000000000000000.index. A .log file is a sequence of frames:
//
//	uint64  Raft index of the entry that carried the batch
//	uint32  CRC-32C over the Raft index and the batch's first 21 bytes
//	[]byte  the Kafka record batch v2, exactly as served to fetchers
//
// The batch's own CRC-32C covers attributes..end; the frame CRC covers the
// base offset, length, leader epoch, magic and CRC that it leaves out, and
// the Raft index. So every stored byte is checked, and the Raft index of
// every batch can be recovered from the .log alone.
//
// The .index is dense, one 40-byte entry per batch (offset, position, Raft
// index, record count, frame size, max timestamp). It is derived data: on
// open the active segment is rescanned and its index rewritten if it
// disagrees; a sealed segment's index is checked against its file and
// rebuilt by a scan if inconsistent. A torn or corrupt tail of the active
// segment is truncated (and logged); corruption inside a sealed segment
// fails the open instead of leaving a hole in the offsets.
//
// Segments roll past LogConfig.SegmentBytes; a sealed segment is fsynced as
// it is rolled, so Log.Sync only needs the active one.
//
// A small checksummed "state" file (state.go) records the start offset and
// the last durable Raft index on their own, so they survive retention
// deleting every segment that held them.
//
// # Raft integration
//
// Offsets are assigned when an append is applied. A Raft entry whose index
// is at or below Log.LastRaftIndex was applied before a restart: it is not
// appended again, but it still rebuilds producer state and reports its
// original offsets; if the stored batch at its Raft index differs, the
// partition stops with ErrReplayMismatch. Partition.Snapshot fsyncs the log and Persist streams a
// msgpack header (offsets, Raft indexes, group offsets, producer state)
// followed by every stored frame, ended by a zeroed frame header. Restore
// keeps the local log when it already covers the snapshot; otherwise it
// writes the frames into "<dir>.restore", fsyncs it and swaps it in through
// "<dir>.old" (NewPartition finishes or undoes an interrupted swap).
package fsm
