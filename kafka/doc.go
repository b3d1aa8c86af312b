// Package kafka is Sluice's Kafka wire-protocol listener. It decodes
// requests and encodes responses with franz-go's kmsg, answers them in
// order per connection, and serves each API by calling the node through
// the small Cluster and Groups interfaces defined here. It owns no
// storage: records, offsets and topics live in the node's Raft groups, and
// stored record batches are handed back byte for byte.
package kafka
