package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	require.NoError(t, err)
	return b
}

// rawFrame builds a length-prefixed frame around an arbitrary body.
func rawFrame(body []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	return append(out, body...)
}

func readOne(b []byte, max int) (Frame, error) {
	return ReadFrame(bufio.NewReader(bytes.NewReader(b)), max)
}

func TestFrameRoundTrip(t *testing.T) {
	produce := mustMarshal(t, ProduceRequest{Topic: "t", Partition: 3, Batch: []byte{1, 2, 3}, TimeoutMs: 50})
	cases := []Frame{
		{ID: 1, Method: MethodProduce, Kind: KindRequest, Body: produce},
		{ID: 1<<64 - 1, Method: MethodFetch, Kind: KindResponse, Body: mustMarshal(t, FetchResponse{Batches: [][]byte{{9}}})},
		{ID: 7, Method: MethodMetadata, Kind: KindResponse, Err: &Error{Code: ErrNotLeader, Message: "no", Leader: "127.0.0.2:7071"}},
		{ID: 0, Method: Method(255), Kind: KindRequest}, // empty body travels as nil
	}
	var stream bytes.Buffer
	for _, f := range cases {
		require.NoError(t, WriteFrame(&stream, f))
	}
	r := bufio.NewReader(&stream)
	for _, want := range cases {
		got, err := ReadFrame(r, 0)
		require.NoError(t, err)
		if len(want.Body) == 0 {
			want.Body = []byte{nilCode}
		}
		assert.Equal(t, want, got)
	}
	_, err := ReadFrame(r, 0)
	assert.Equal(t, io.EOF, err, "clean end of stream is a bare io.EOF")

	var back ProduceRequest
	require.NoError(t, msgpack.Unmarshal(cases[0].Body, &back))
	assert.Equal(t, "t", back.Topic)
}

func TestReadFrameErrors(t *testing.T) {
	good, err := appendFrame(nil, Frame{ID: 1, Method: MethodStatus, Kind: KindRequest, Body: mustMarshal(t, Empty{})})
	require.NoError(t, err)
	goodBody := good[4:]

	envelope := func(fields ...any) []byte { return rawFrame(mustMarshal(t, fields)) }
	deep := append(bytes.Repeat([]byte{0x91}, 100), 0x01) // [[[...1...]]]

	cases := map[string]struct {
		in      []byte
		max     int
		wantErr error
	}{
		"oversized":          {in: rawFrame(make([]byte, 100)), max: 99, wantErr: ErrFrameTooLarge},
		"oversized default":  {in: binary.BigEndian.AppendUint32(nil, DefaultMaxFrameBytes+1), wantErr: ErrFrameTooLarge},
		"empty":              {in: rawFrame(nil), wantErr: ErrMalformedFrame},
		"garbage":            {in: rawFrame([]byte("hello, world")), wantErr: ErrMalformedFrame},
		"invalid code":       {in: rawFrame([]byte{0xc1}), wantErr: ErrMalformedFrame},
		"not an array":       {in: rawFrame(mustMarshal(t, map[string]int{"id": 1})), wantErr: ErrMalformedFrame},
		"too few fields":     {in: envelope(1, 1, 1, nil), wantErr: ErrMalformedFrame},
		"unknown kind":       {in: envelope(1, 1, 3, nil, nil), wantErr: ErrMalformedFrame},
		"method overflow":    {in: envelope(1, 300, 1, nil, nil), wantErr: ErrMalformedFrame},
		"id not a number":    {in: envelope("x", 1, 1, nil, nil), wantErr: ErrMalformedFrame},
		"error not a map":    {in: envelope(1, 1, 2, "boom", nil), wantErr: ErrMalformedFrame},
		"trailing bytes":     {in: rawFrame(append(append([]byte{}, goodBody...), 0x00)), wantErr: ErrMalformedFrame},
		"truncated value":    {in: rawFrame(goodBody[:len(goodBody)-1]), wantErr: ErrMalformedFrame},
		"deep nesting":       {in: envelope(1, 1, 1, nil, msgpack.RawMessage(deep)), wantErr: ErrMalformedFrame},
		"huge string header": {in: rawFrame([]byte{0x95, 1, 1, 1, 0xc0, 0xdb, 0xff, 0xff, 0xff, 0xff}), wantErr: ErrMalformedFrame},
		"huge array header":  {in: rawFrame([]byte{0x95, 1, 1, 1, 0xc0, 0xdd, 0xff, 0xff, 0xff, 0xff}), wantErr: ErrMalformedFrame},
		"truncated body":     {in: good[:len(good)-1], wantErr: io.ErrUnexpectedEOF},
		"truncated length":   {in: good[:2], wantErr: io.ErrUnexpectedEOF},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := readOne(tc.in, tc.max)
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.wantErr)
		})
	}
}

func TestReadFrameForwardCompatible(t *testing.T) {
	// A newer peer may append envelope fields; they are ignored.
	body := mustMarshal(t, Empty{})
	in := rawFrame(mustMarshal(t, []any{5, 8, 1, nil, msgpack.RawMessage(body), "future", []int{1, 2}}))
	f, err := readOne(in, 0)
	require.NoError(t, err)
	assert.Equal(t, Frame{ID: 5, Method: MethodStatus, Kind: KindRequest, Body: body}, f)
}

func TestReadFrameLargeBody(t *testing.T) {
	// Exercises the chunked read path (bodies over 1 MiB).
	batch := bytes.Repeat([]byte("x"), 3<<20+17)
	want := Frame{ID: 9, Method: MethodProduce, Kind: KindRequest, Body: mustMarshal(t, ProduceRequest{Batch: batch})}
	buf, err := appendFrame(nil, want)
	require.NoError(t, err)
	got, err := readOne(buf, 0)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	_, err = readOne(buf[:len(buf)-10], 0)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

func TestWriteFrameRejectsBadBody(t *testing.T) {
	var w bytes.Buffer
	err := WriteFrame(&w, Frame{ID: 1, Kind: KindRequest, Body: []byte{0x92, 1}})
	require.Error(t, err, "incomplete msgpack body")
	err = WriteFrame(&w, Frame{ID: 1, Kind: KindRequest, Body: []byte{1, 2}})
	require.Error(t, err, "two values")
	assert.Zero(t, w.Len(), "nothing written on error")
}

// TestValueEnd cross-checks the hand-written msgpack walker against the
// library's encoder over every kind of value.
func TestValueEnd(t *testing.T) {
	ext := msgpack.RawMessage{0xd6, 0xff, 0, 0, 0, 1} // fixext4 (timestamp)
	values := []any{
		nil, true, false, 0, 1, -1, -33, 127, 128, 255, 256, 65535, 65536, 1 << 40, -1 << 40,
		float32(1.5), 2.5, "", "short", strings.Repeat("s", 40), strings.Repeat("m", 300), strings.Repeat("l", 70000),
		[]byte{}, []byte{1}, make([]byte, 300), make([]byte, 70000),
		[]int{}, make([]int, 20), make([]int, 70000), map[string]int{}, map[string]int{"a": 1},
		ext, msgpack.RawMessage{0xc7, 2, 5, 1, 2}, msgpack.RawMessage{0xd8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		MetadataResponse{Topics: []TopicMeta{{Name: "x", Partitions: []PartitionMeta{{Replicas: []string{"a", "b"}}}}}},
	}
	for _, v := range values {
		b := mustMarshal(t, v)
		n, err := valueEnd(append(b, 0xc0), maxNesting)
		require.NoError(t, err, "%T %v", v, b)
		assert.Equal(t, len(b), n, "%T", v)
		for cut := range min(len(b), 8) {
			_, err := valueEnd(b[:cut], maxNesting)
			assert.Error(t, err, "%T cut at %d", v, cut)
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	seeds := []Frame{
		{ID: 1, Method: MethodProduce, Kind: KindRequest, Body: mustMarshal(f, ProduceRequest{Topic: "t", Batch: []byte{1, 2}})},
		{ID: 2, Method: MethodMetadata, Kind: KindResponse, Body: mustMarshal(f, MetadataResponse{Topics: []TopicMeta{{Name: "t"}}})},
		{ID: 3, Method: MethodFetch, Kind: KindResponse, Err: &Error{Code: ErrNotLeader, Leader: "x"}},
	}
	for _, s := range seeds {
		b, err := appendFrame(nil, s)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Add(rawFrame([]byte("garbage")))
	f.Add(rawFrame([]byte{0x95, 1, 1, 1, 0xc0, 0xdd, 0xff, 0xff, 0xff, 0xff}))
	f.Add(rawFrame(append(bytes.Repeat([]byte{0x91}, 40), 0)))

	f.Fuzz(func(t *testing.T, in []byte) {
		fr, err := readOne(in, 1<<16)
		if err != nil {
			return
		}
		// The mux's early peek at id and method agrees with the decode.
		if len(in) >= 4 {
			if id, method, err := parseRequestHead(in[4:min(len(in), 4+maxHeadLen)]); err == nil {
				assert.Equal(t, fr.ID, id)
				assert.Equal(t, fr.Method, method)
			}
		}
		// Whatever decodes must re-encode to a frame that decodes the same.
		out, err := appendFrame(nil, fr)
		require.NoError(t, err)
		again, err := readOne(out, 1<<16+64)
		require.NoError(t, err)
		assert.Equal(t, fr, again)
	})
}
