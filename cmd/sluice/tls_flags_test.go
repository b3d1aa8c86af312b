package main

import (
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClientTLSFlags(t *testing.T) {
	newCmd := func(args ...string) *cobra.Command {
		root := &cobra.Command{Use: "x"}
		addClientTLSFlags(root)
		require.NoError(t, root.ParseFlags(args))
		return root
	}
	cfg, err := clientTLS(newCmd())
	require.NoError(t, err)
	assert.Nil(t, cfg, "no TLS without --tls-ca")
	_, err = clientTLS(newCmd("--tls-cert", "c.pem", "--tls-key", "k.pem"))
	assert.ErrorContains(t, err, "need --tls-ca")
	_, err = clientTLS(newCmd("--tls-ca", "/nonexistent/ca.pem"))
	assert.ErrorContains(t, err, "ca.pem")
}
