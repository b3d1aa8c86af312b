package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// chromiumPath finds a headless-capable Chromium (make deps installs
// Debian's chromium).
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// testOutputDir is where tests leave files for people to look at:
// store/tests/<test> at the repository root (ignored by git, beside the
// chaos results).
func testOutputDir(t *testing.T) string {
	dir := filepath.Join("..", "store", "tests", t.Name())
	require.NoError(t, os.MkdirAll(dir, 0o755))
	abs, _ := filepath.Abs(dir)
	return abs
}

// TestStatusPageInChromium loads the status page in headless Chromium: it
// shows the three nodes and every partition with its leader, logs no
// console error, and follows a leader change without a reload.
func TestStatusPageInChromium(t *testing.T) {
	skipShort(t)
	chrome := chromiumPath()
	if chrome == "" {
		t.Skip("no chromium on PATH (make deps installs it)")
	}
	used := map[int]bool{}
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.HTTPAddr = "127.0.0.1:" + strconv.Itoa(freePort(t, used))
	})
	cl := c.client()
	c.createTopic(cl, "orders", 3, 3)

	// Serve the page from n1; stop the leader of a partition led elsewhere.
	const page = 0
	url := "http://" + c.cfgs[page].HTTPAddr + "/"

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(412, 915))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, tcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer tcancel()

	var mu sync.Mutex
	var consoleErrors []string
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value))
				}
				consoleErrors = append(consoleErrors, strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			consoleErrors = append(consoleErrors, "exception: "+e.ExceptionDetails.Text)
		}
	}))

	leaderOn := func(part int) (string, error) {
		return chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
			`(document.querySelector('#partitions tr[data-topic="orders"][data-partition="%d"] td.leader') || {}).textContent || ""`, part)))
	}
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`#partitions tr[data-topic="orders"][data-partition="2"]`)),
	))
	members, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#members tbody tr').length`))
	require.NoError(t, err)
	require.Equal(t, 3, members, "the page lists every node")
	// Leadership may still settle after creation: wait until the page and
	// the replicas agree on the leader of a partition not led by n1.
	part, old := -1, -1
	require.Eventually(t, func() bool {
		for p := range 3 {
			idx := c.leaderIndex("orders", int32(p))
			shown, err := leaderOn(p)
			if err == nil && idx != page && shown == c.cfgs[idx].ID {
				part, old = p, idx
				return true
			}
		}
		return false
	}, 30*time.Second, 250*time.Millisecond, "the page never showed the partitions' leaders")

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	out := testOutputDir(t)
	require.NoError(t, os.WriteFile(filepath.Join(out, "status-page.png"), shot, 0o644))

	c.stop(old)
	require.Eventually(t, func() bool {
		now, err := leaderOn(part)
		if err != nil {
			return false
		}
		return now != "" && now != "(none)" && now != c.cfgs[old].ID
	}, 60*time.Second, 250*time.Millisecond, "the page never showed the new leader of orders/%d", part)
	shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(out, "status-page-after-failover.png"), shot, 0o644))
	t.Logf("screenshots in %s", out)

	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, consoleErrors, fmt.Sprintf("console errors on %s", url))
}
