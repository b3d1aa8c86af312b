package fsm

import (
	"github.com/sluice-io/sluice/transport"
)

// MaxTopicNameLen is Kafka's limit on topic name length.
const MaxTopicNameLen = 249

// ValidateTopicName applies Kafka's rules: 1 to 249 characters from
// [a-zA-Z0-9._-], and neither "." nor "..". Errors are *transport.Error
// with ErrInvalidTopic.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return transport.Errorf(transport.ErrInvalidTopic, "topic name is empty")
	case len(name) > MaxTopicNameLen:
		return transport.Errorf(transport.ErrInvalidTopic, "topic name is %d characters long; the limit is %d", len(name), MaxTopicNameLen)
	case name == "." || name == "..":
		return transport.Errorf(transport.ErrInvalidTopic, "topic name cannot be %q", name)
	}
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return transport.Errorf(transport.ErrInvalidTopic, "topic name %q has invalid character %q at byte %d; allowed are ASCII letters, digits, '.', '_' and '-'", name, c, i)
		}
	}
	return nil
}
