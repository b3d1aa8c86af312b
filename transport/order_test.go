package transport

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// TestOrderedRequestsEnterInSendOrder starts requests of an ordered method
// one after another on one connection, lets their handlers reach InOrder
// in reverse order, and checks they enter in the order sent. Between them
// run requests of another method that never enter (one blocks until the
// end) and ordered requests that return before entering: neither holds up
// the chain.
func TestOrderedRequestsEnterInSendOrder(t *testing.T) {
	const n = 40
	var (
		mu      sync.Mutex
		entered []int
		gates   [n]chan struct{}
	)
	for i := range gates {
		gates[i] = make(chan struct{})
	}
	blockFetch := make(chan struct{})
	defer close(blockFetch)
	h := func(ctx context.Context, method Method, body []byte) (any, error) {
		if method == MethodFetch {
			<-blockFetch
			return nil, nil
		}
		var i int
		if err := msgpack.Unmarshal(body, &i); err != nil {
			return nil, err
		}
		if i < 0 {
			return nil, Errorf(ErrInvalidRequest, "refused before entering")
		}
		<-gates[i]
		leave, err := InOrder(ctx)
		if err != nil {
			return nil, err
		}
		defer leave()
		mu.Lock()
		entered = append(entered, i)
		mu.Unlock()
		return i, nil
	}
	m, _ := newMux(t, "", 0)
	m.ordered = map[Method]bool{MethodProduce: true}
	serve(t, m, h)
	c := dial(t, m.Addr().String(), DialOptions{})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Start(ctx, MethodFetch, 0)
	require.NoError(t, err)
	var pending []*Pending
	for i := range n {
		if i%7 == 3 {
			refused, err := c.Start(ctx, MethodProduce, -1)
			require.NoError(t, err)
			pending = append(pending, refused)
		}
		p, err := c.Start(ctx, MethodProduce, i)
		require.NoError(t, err)
		pending = append(pending, p)
	}
	for i := n - 1; i >= 0; i-- {
		close(gates[i])
	}
	for _, p := range pending {
		var got int
		err := p.Wait(ctx, &got)
		var te *Error
		if errors.As(err, &te) {
			assert.Equal(t, ErrInvalidRequest, te.Code)
			continue
		}
		require.NoError(t, err)
	}
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	require.Equal(t, want, entered)
}

// TestInOrderOutsideOrderedRequest: a plain context (an in-process call)
// enters at once.
func TestInOrderOutsideOrderedRequest(t *testing.T) {
	leave, err := InOrder(context.Background())
	require.NoError(t, err)
	leave()
}
