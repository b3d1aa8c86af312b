package source

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSluiceSourceBadConfig(t *testing.T) {
	for key, props := range map[string]map[string]string{
		"kafka.topics":                     {},
		"kafka.topics.regex":               {"kafka.topics.regex": ".*"},
		"kafka.consumer.auto.offset.reset": {"topic": "t", "kafka.consumer.auto.offset.reset": "none"},
		"batchSize":                        {"topic": "t", "batchSize": "-1"},
	} {
		_, err := buildSource(t, "sluice", props, &fakeProc{})
		assert.ErrorContains(t, err, "a1.sources.r1."+key)
	}
}
