package source

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadLines(t *testing.T) {
	data := "one\r\ntwo\n" + strings.Repeat("x", 25) + "\npartial"
	r := strings.NewReader(data)
	str := func(ls [][]byte) []string {
		var out []string
		for _, l := range ls {
			out = append(out, string(l))
		}
		return out
	}
	lines, pos, err := readLines(r, 0, 100, 10, false)
	require.NoError(t, err)
	assert.Equal(t, []string{"one", "two", "xxxxxxxxxx", "xxxxxxxxxx", "xxxxx"}, str(lines))
	assert.EqualValues(t, len(data)-len("partial"), pos, "a partial last line waits")

	lines, pos2, err := readLines(r, pos, 100, 10, true)
	require.NoError(t, err)
	assert.Equal(t, []string{"partial"}, str(lines))
	assert.EqualValues(t, len(data), pos2)

	// Batches resume exactly, in the middle of a cut line too.
	var all []string
	for off := int64(0); off < int64(len(data)); {
		lines, next, err := readLines(r, off, 2, 10, true)
		require.NoError(t, err)
		require.Greater(t, next, off)
		all = append(all, str(lines)...)
		off = next
	}
	assert.Equal(t, []string{"one", "two", "xxxxxxxxxx", "xxxxxxxxxx", "xxxxx", "partial"}, all)
}
