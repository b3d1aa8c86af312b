package transport

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzConnHeader feeds the mux's header parsing what may follow a new
// connection's first byte: a Raft group header, or the start of a client
// frame whose method is peeked before the frame is read. Neither may
// panic, read past what it parses, or disagree with the encoders and the
// full frame decoder.
func FuzzConnHeader(f *testing.F) {
	f.Add(raftHeader("meta"))
	f.Add(raftHeader("orders-0"))
	f.Add([]byte{protoRaft, 0, 0})
	f.Add([]byte{protoRaft, 0xff, 0xff, 'x'})
	f.Add([]byte{protoRaft})
	req, err := appendFrame(nil, Frame{ID: 300, Method: MethodProduce, Kind: KindRequest, Body: mustMarshal(f, ProduceRequest{Topic: "t"})})
	require.NoError(f, err)
	f.Add(append([]byte{protoClient}, req...))
	f.Add([]byte{protoClient, 0, 0x10, 0, 0, 0xdc, 0, 5, 0xcf, 1, 2, 3, 4, 5, 6, 7, 8, 4})
	f.Add([]byte{protoClient, 0, 0, 0, 9, 0x95, 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte("GET / HTTP/1.1\r\n"))

	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		rest := in[1:]
		switch in[0] {
		case protoRaft:
			r := bytes.NewReader(rest)
			group, err := readRaftGroup(r)
			if err != nil {
				return
			}
			hdr := raftHeader(group)
			require.True(t, bytes.HasPrefix(in, hdr), "group %q does not re-encode to the input", group)
			assert.Equal(t, len(rest)-(len(hdr)-1), r.Len(), "read past the header")
		case protoClient:
			if len(rest) < 4 {
				return
			}
			body := rest[4:]
			id, method, err := parseRequestHead(body[:min(len(body), maxHeadLen)])
			if err != nil {
				return
			}
			// What the peek found is what the full decode finds.
			fr, ferr := readOne(rawFrame(body), len(body)+1)
			if ferr == nil {
				assert.Equal(t, fr.ID, id)
				assert.Equal(t, fr.Method, method)
			}
			// And a prefix of the head never claims a different answer.
			for k := range min(len(body), maxHeadLen) {
				pid, pm, perr := parseRequestHead(body[:k])
				if perr == nil {
					assert.Equal(t, id, pid)
					assert.Equal(t, method, pm)
				}
			}
		}
	})
}

func TestReadRaftGroupReadsOnlyTheHeader(t *testing.T) {
	in := append(raftHeader("g1")[1:], "raft bytes"...)
	r := bytes.NewReader(in)
	g, err := readRaftGroup(r)
	require.NoError(t, err)
	assert.Equal(t, "g1", g)
	rest, _ := io.ReadAll(r)
	assert.Equal(t, "raft bytes", string(rest))
	_, err = readRaftGroup(bytes.NewReader(binary.BigEndian.AppendUint16(nil, 5)))
	assert.ErrorContains(t, err, "reading group name")
}
