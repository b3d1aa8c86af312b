package batch

import (
	"testing"
)

// FuzzValidateAndWalk feeds arbitrary bytes to the decoder: it must never
// panic or allocate beyond its bound, and whatever Validate accepts as
// uncompressed must hold no more records than its bytes allow.
func FuzzValidateAndWalk(f *testing.F) {
	f.Add(NewBatch(testRecords(3, 10), 1, 0, 0, testTime))
	f.Add(forgedCountBatch())
	for _, c := range []Compression{Gzip, Snappy, LZ4, Zstd} {
		b, err := Build(testRecords(4, 100), Options{ProducerID: -1, Timestamp: testTime, Compress: c})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Validate(b)
		if err == nil && h.Attributes.Compression() == None && int(h.NumRecords)*MinRecordBytes > len(b)-HeaderLen {
			t.Fatalf("accepted %d records in %d bytes", h.NumRecords, len(b))
		}
		n := int32(0)
		h2, werr := Walk(b, 1<<20, func(r Record) error {
			n++
			for range r.Headers() {
			}
			return nil
		})
		if werr == nil {
			if err != nil {
				t.Fatalf("Walk accepted what Validate refused: %v", err)
			}
			if n != h2.NumRecords {
				t.Fatalf("walked %d records of %d", n, h2.NumRecords)
			}
		}
	})
}
