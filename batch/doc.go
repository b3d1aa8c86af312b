// Package batch is Sluice's codec for Kafka record batches (magic 2), the
// format every stored and served batch has. It is shared by the client
// library, the partition state machine and the Kafka listener, and imports
// nothing of the server.
//
// Validate checks a batch in place without allocating: the length field,
// magic 2, the CRC-32C, the record count against LastOffsetDelta and against
// the bytes present (every record takes at least MinRecordBytes, so a header
// cannot claim more records than its body can hold). Walk then visits the
// records one by one, each with key, value and headers aliasing the batch
// (or the decompressed body), never allocating from a count or length read
// off the wire. Compressed batches (gzip, snappy raw or xerial-framed, lz4
// frames, zstd) are decompressed up to a caller-given bound; anything larger
// fails with ErrTooLarge instead of exhausting memory.
//
// NewBatch and Build encode batches with franz-go's kmsg, optionally
// compressed.
package batch
