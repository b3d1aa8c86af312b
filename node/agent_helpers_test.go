package node

import (
	"io"
	"net/http"
	"os"
)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
