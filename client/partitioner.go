package client

// murmur2 is Kafka's 32-bit murmur2 (org.apache.kafka.common.utils.Utils
// .murmur2): seed 0x9747b28c, little-endian 4-byte blocks, then the tail.
// Keeping Kafka's exact hash means keys land on the same partitions as with
// Kafka's default partitioner.
func murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := n &^ 3
	switch n % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// KeyPartition returns the partition Kafka's default partitioner picks for
// key among n partitions: toPositive(murmur2(key)) % n.
func KeyPartition(key []byte, n int) int32 {
	if n <= 0 {
		return 0
	}
	return int32(uint32(murmur2(key))&0x7fffffff) % int32(n)
}
